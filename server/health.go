package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/meta"
)

// probeTimeout bounds each readiness check: a store that takes longer is
// not answering (Kubernetes' default probe timeout is 1s; its own
// timeoutSeconds should be above this).
const probeTimeout = 800 * time.Millisecond

// livez answers 200 while the process serves HTTP: it checks nothing
// else, so a slow store never gets the process restarted.
func livez(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// readiness answers /readyz: 200 when every check passes within
// probeTimeout, else 503; the JSON body names each check and its result
// ("ok", "failed", "timeout"), never an error's text (that goes to the
// log: a store's error may name a path or a connection string).
type readiness struct {
	checks  []*check
	timeout time.Duration
	log     *slog.Logger
}

// check is one readiness check. busy is set while its function runs: a
// check still stuck from an earlier probe fails at once rather than pile
// up goroutines on a store that hangs.
type check struct {
	name string
	fn   func(ctx context.Context) error
	busy atomic.Bool
}

// probeDigest is a digest no blob has (the sha256 of a fixed string
// naming the probe): a Stat of it is a read of the blob store that finds
// nothing, cheap on every driver.
var probeDigest = digest.FromString("berth readiness probe: no blob has this content")

// metaCheck: the metadata store answers a query (one repository name,
// from the read pool).
func metaCheck(md meta.Lister) *check {
	return &check{name: "metadata", fn: func(ctx context.Context) error {
		_, err := md.Repositories(ctx, "", 1)
		return err
	}}
}

// blobCheck: the blob store answers a Stat (not found is an answer).
func blobCheck(bs blob.Provider) *check {
	return &check{name: "blobs", fn: func(ctx context.Context) error {
		_, err := bs.Stat(ctx, probeDigest)
		if err == nil || errors.Is(err, blob.ErrNotFound) {
			return nil
		}
		return err
	}}
}

func newReadiness(logger *slog.Logger, checks ...*check) *readiness {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &readiness{checks: checks, timeout: probeTimeout, log: logger}
}

// readyAnswer is /readyz's body.
type readyAnswer struct {
	Status string            `json:"status"` // "ready" or "unavailable"
	Checks map[string]string `json:"checks"`
}

func (rd *readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), rd.timeout)
	defer cancel()
	results := make([]string, len(rd.checks))
	done := make(chan struct{}, len(rd.checks))
	for i, c := range rd.checks {
		go func() {
			defer func() { done <- struct{}{} }()
			results[i] = rd.run(ctx, c)
		}()
	}
	for range rd.checks {
		<-done
	}
	ans := readyAnswer{Status: "ready", Checks: map[string]string{}}
	status := http.StatusOK
	for i, c := range rd.checks {
		ans.Checks[c.name] = results[i]
		if results[i] != "ok" {
			ans.Status, status = "unavailable", http.StatusServiceUnavailable
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(ans)
}

// run runs c within ctx and returns "ok", "failed" or "timeout". A check
// that ignores ctx is left to finish on its own (and marks c busy until
// it does).
func (rd *readiness) run(ctx context.Context, c *check) string {
	if !c.busy.CompareAndSwap(false, true) {
		return "timeout"
	}
	errc := make(chan error, 1)
	go func() {
		err := c.fn(ctx)
		// Not busy before the answer is delivered: a probe right after
		// this one must not find the check still marked busy (and report
		// a timeout for a store that answered).
		c.busy.Store(false)
		errc <- err
	}()
	select {
	case err := <-errc:
		if err != nil {
			if ctx.Err() != nil {
				rd.log.Warn("readyz: check timed out", "check", c.name, "timeout", rd.timeout)
				return "timeout"
			}
			rd.log.Warn("readyz: check failed", "check", c.name, "err", err)
			return "failed"
		}
		return "ok"
	case <-ctx.Done():
		rd.log.Warn("readyz: check timed out", "check", c.name, "timeout", rd.timeout)
		return "timeout"
	}
}
