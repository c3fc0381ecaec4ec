package server

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMiddleware(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		// ReaderFrom must survive the wrapper (sendfile for blob GETs).
		if _, ok := w.(io.ReaderFrom); !ok {
			t.Error("response writer lost io.ReaderFrom")
		}
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("ResponseController cannot reach the writer: %v", err)
		}
		io.WriteString(w, "fine")
	})
	srv := httptest.NewServer(withMiddleware(mux, slog.New(slog.DiscardHandler), nil))
	defer srv.Close()

	res, err := http.Get(srv.URL + "/panic")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	id := res.Header.Get("X-Request-Id")
	if res.StatusCode != 500 || id == "" || !strings.Contains(string(body), `"code":"UNKNOWN"`) || !strings.Contains(string(body), id) {
		t.Fatalf("panic answer: %d %s %q", res.StatusCode, body, id)
	}

	req, _ := http.NewRequest("GET", srv.URL+"/ok", nil)
	req.Header.Set("X-Request-Id", "client-id.1")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Header.Get("X-Request-Id") != "client-id.1" {
		t.Fatalf("request id not kept: %q", res.Header.Get("X-Request-Id"))
	}
	req.Header.Set("X-Request-Id", "bad id <script>")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := res.Header.Get("X-Request-Id"); got == "" || strings.ContainsAny(got, " <") {
		t.Fatalf("unsafe request id echoed: %q", got)
	}
}

// TestRequestIDInComponentLogs: a log line a component writes about a
// request (here the registry's refusal) names the request's id, the one
// the client got in X-Request-Id.
func TestRequestIDInComponentLogs(t *testing.T) {
	var logs lockedBuffer
	s, err := New(t.Context(), testConfig(t), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/nope/manifests/latest", nil)
	req.Header.Set("X-Request-Id", "test-req-42")
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound || res.Header.Get("X-Request-Id") != "test-req-42" {
		t.Fatalf("status %s, X-Request-Id %q", res.Status, res.Header.Get("X-Request-Id"))
	}
	found := false
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "request refused") {
			found = true
			if !strings.Contains(l, "request_id=test-req-42") || !strings.Contains(l, "component=registry") {
				t.Errorf("the registry's log line lacks the request id: %s", l)
			}
		}
	}
	if !found {
		t.Fatalf("no registry log line:\n%s", logs.String())
	}
}
