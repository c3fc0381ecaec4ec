package main

import (
	"bytes"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/bench"
)

// TestTableFromFiles: `berth-bench table` reads the runs and limits that
// `run -json` and `limits -json` wrote and prints the ratios.
func TestTableFromFiles(t *testing.T) {
	dir := t.TempDir()
	runs := map[string]bench.Run{
		"b1.json": {Registry: "berth", Sizes: bench.Default(), Results: []bench.Result{{Scenario: "tag-put", Unit: "/s", Value: 1800, P50Ms: 5, P99Ms: 20}}},
		"b2.json": {Registry: "berth", Sizes: bench.Default(), Results: []bench.Result{{Scenario: "tag-put", Unit: "/s", Value: 2000, P50Ms: 5, P99Ms: 20}}},
		"d1.json": {Registry: "distribution", Sizes: bench.Default(), Results: []bench.Result{{Scenario: "tag-put", Unit: "/s", Value: 600}}},
	}
	args := []string{"table", "-limits", filepath.Join(dir, "limits.json")}
	for name, r := range runs {
		if err := writeJSON(filepath.Join(dir, name), r); err != nil {
			t.Fatal(err)
		}
		args = append(args, filepath.Join(dir, name))
	}
	if err := writeJSON(filepath.Join(dir, "limits.json"), bench.Limits{CPUs: 2, SHA256OneCore: 1700}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(t.Context(), args, &out, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	want := "| tag PUT, 2000 tags | 1,900 /s (1,800–2,000) | 600 /s | 3.17 | 5.00 / 20.0 |"
	if !strings.Contains(out.String(), want) {
		t.Errorf("table lacks %q:\n%s", want, out.String())
	}
	if !strings.Contains(out.String(), "sha256 1,700 MiB/s on one core") {
		t.Errorf("table lacks the limits:\n%s", out.String())
	}
}

func TestUnknownCommandAndScenario(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := run(t.Context(), []string{"frobnicate"}, io.Discard, log); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("unknown command: %v", err)
	}
	err := run(t.Context(), []string{"run", "-url", "http://127.0.0.1:1", "-scenarios", "push-mono,nope"}, io.Discard, log)
	if err == nil || !strings.Contains(err.Error(), `unknown scenario "nope"`) {
		t.Errorf("unknown scenario: %v", err)
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"scenarios", "-registry-only"}, &out, log); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); strings.Contains(got, "search") || !strings.HasPrefix(got, "push-mono,") {
		t.Errorf("registry-only scenarios: %s", got)
	}
}
