package server

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/reqid"
)

// withMiddleware gives every request an id, recovers panics as 500 with
// that id, and logs one line per request.
// inflight, if not nil, counts the requests being served, so shutdown can
// wait for them before it closes the stores.
func withMiddleware(next http.Handler, logger *slog.Logger, inflight *sync.WaitGroup) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if inflight != nil {
			inflight.Add(1)
			defer inflight.Done()
		}
		start := time.Now()
		id := requestID(r)
		w.Header().Set("X-Request-Id", id)
		// Every component's log line about this request carries its id
		// (reqid.Handler, installed by New).
		r = r.WithContext(reqid.With(r.Context(), id))
		rw := &responseWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				logger.Error("panic serving request", "request_id", id, "method", r.Method, "path", r.URL.Path, "panic", p)
				if !rw.wrote {
					rw.Header().Set("Content-Type", "application/json; charset=utf-8")
					rw.WriteHeader(http.StatusInternalServerError)
					_, _ = io.WriteString(rw, `{"errors":[{"code":"UNKNOWN","message":"internal server error","detail":"request id `+id+`"}]}`)
				}
			}
			logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("request_id", id),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", rw.status),
				slog.Int64("bytes", rw.bytes),
				slog.Duration("duration", time.Since(start)),
				slog.String("remote", r.RemoteAddr),
			)
		}()
		next.ServeHTTP(rw, r)
	})
}

// requestID keeps a sane incoming X-Request-Id, else makes one.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 64 {
		ok := true
		for i := 0; i < len(id); i++ {
			c := id[i]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '.') {
				ok = false
				break
			}
		}
		if ok {
			return id
		}
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// responseWriter records the status and size of a response. It keeps
// io.ReaderFrom (sendfile for blob GETs) and Unwrap (for
// http.ResponseController) working.
type responseWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (w *responseWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status = code
		w.wrote = code >= 200
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	w.wrote = true
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	w.wrote = true
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(w.ResponseWriter, r)
	}
	w.bytes += n
	return n, err
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
