package bench

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/berth-dev/berth/config"
	"github.com/berth-dev/berth/server"
)

// tiny are sizes small enough for the test command.
func tiny() Sizes {
	return Sizes{
		BlobSize: 1<<20 + 17, BlobsPerStr: 1, Streams: 2, ChunkSize: 256 << 10,
		Workers: 4, HotWorkers: 4, HotBlobSize: 64 << 10, SmallLayer: 512,
		SmallImages: 12, ManifestPuts: 12, Tags: 12, Images: 12, Repos: 30,
		RepoCreates: 8, Apps: 12, Duration: 150 * time.Millisecond, MaxTime: time.Minute,
	}
}

// TestScenariosAgainstBerth runs every scenario, tiny, against a real
// Berth server (the server package's handler over its default embedded
// stores) in this process, and checks that each one measured something.
func TestScenariosAgainstBerth(t *testing.T) {
	cfg := config.Default()
	cfg.Storage.Dir = t.TempDir()
	cfg.GC.Interval = 0
	s, err := server.New(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)

	c, err := NewClient(srv.URL, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	r := &Runner{C: c, Sizes: tiny(), PID: os.Getpid(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	run, err := r.RunAll(t.Context(), "berth", Scenarios(false))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, res := range run.Results {
		got = append(got, res.Scenario)
		if res.Error != "" {
			t.Errorf("%s: %s", res.Scenario, res.Error)
			continue
		}
		if res.Value <= 0 || res.Ops <= 0 || res.Seconds <= 0 {
			t.Errorf("%s: value %v over %d operations in %v s", res.Scenario, res.Value, res.Ops, res.Seconds)
		}
		if res.Scenario == "churn" {
			for _, k := range []string{"catalogue", "search", "index"} {
				if res.Extra[k+"_idle_p50_ms"] <= 0 || res.Extra[k+"_busy_p50_ms"] <= 0 {
					t.Errorf("churn %s: idle p50 %v ms, busy p50 %v ms", k, res.Extra[k+"_idle_p50_ms"], res.Extra[k+"_busy_p50_ms"])
				}
			}
			continue
		}
		if res.Requests < res.Ops || res.ReqPerS <= 0 || res.P50Ms <= 0 || res.P99Ms < res.P50Ms {
			t.Errorf("%s: %d requests (%v/s) for %d operations, p50 %v ms, p99 %v ms",
				res.Scenario, res.Requests, res.ReqPerS, res.Ops, res.P50Ms, res.P99Ms)
		}
		if res.Unit == "MiB/s" && res.Bytes <= 0 {
			t.Errorf("%s: %d bytes moved", res.Scenario, res.Bytes)
		}
	}
	if !slices.Equal(got, Scenarios(false)) {
		t.Errorf("ran %v, want %v", got, Scenarios(false))
	}
	if run.PeakRSS <= 0 {
		t.Errorf("peak RSS %d", run.PeakRSS)
	}
	// The catalog scenario topped the registry up to Repos repositories.
	names, _, err := c.Catalog(t.Context(), 7)
	if err != nil || len(names) < tiny().Repos {
		t.Errorf("catalog in pages of 7: %d repositories (%v), want at least %d", len(names), err, tiny().Repos)
	}
	// The test process's own CPU time is what a -pid reports.
	if cpu, err := cpuSeconds(os.Getpid()); err != nil || cpu <= 0 {
		t.Errorf("cpuSeconds(self) = %v, %v", cpu, err)
	}
}

// TestLimits measures the machine's limits, tiny, and checks each is a
// number.
func TestLimits(t *testing.T) {
	l, err := MeasureLimits(t.Context(), t.TempDir(), 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]float64{"sha256 one core": l.SHA256OneCore, "sha256 all": l.SHA256AllCores,
		"ServeContent 1": l.ServeContent1, "ServeContent 2": l.ServeContent2, "fdatasync writes": l.FdatasyncWrites, "small fsyncs": l.SmallFsyncs,
		"plain ingest 1": l.PlainIngest1, "plain ingest 2": l.PlainIngest2} {
		if v <= 0 {
			t.Errorf("%s: %v", name, v)
		}
	}
}
