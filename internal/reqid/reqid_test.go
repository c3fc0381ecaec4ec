package reqid

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(Handler(slog.NewTextHandler(&buf, nil))).With("component", "registry")
	ctx := With(context.Background(), "abc123")
	log.InfoContext(ctx, "request failed", "status", 500)
	log.InfoContext(context.Background(), "no request")
	log.InfoContext(ctx, "named", Attr, "given")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("lines: %q", lines)
	}
	if !strings.Contains(lines[0], "request_id=abc123") || !strings.Contains(lines[0], "component=registry") {
		t.Errorf("with an id: %s", lines[0])
	}
	if strings.Contains(lines[1], "request_id") {
		t.Errorf("without an id: %s", lines[1])
	}
	if strings.Count(lines[2], "request_id") != 1 || !strings.Contains(lines[2], "request_id=given") {
		t.Errorf("a record naming its own id: %s", lines[2])
	}
	if From(context.Background()) != "" || From(ctx) != "abc123" {
		t.Error("From")
	}
	if h := Handler(Handler(slog.NewTextHandler(&buf, nil))); h.(handler).Handler == nil {
		t.Error("double wrap")
	}
}
