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
