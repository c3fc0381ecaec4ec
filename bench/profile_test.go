package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"strconv"
	"testing"

	"github.com/berth-dev/berth/config"
	"github.com/berth-dev/berth/server"
)

// BenchmarkServer runs every scenario, Berth's own (Flatpak index,
// search, catalogue, churn) included, against Berth in process (the
// server package over its default embedded stores, fsync on, data under
// BERTH_BENCH_DIR or a temporary directory), for CPU profiles of the
// server's side:
//
//	go test -run '^$' -bench 'Server/push-mono$' -benchtime 1x -cpuprofile cpu.out ./bench
//	go tool pprof -tagignore side=client -top cpu.out
//
// The client's goroutines carry the label side=client, which
// -tagignore leaves out. Sizes are the defaults of berth-bench, except
// BERTH_BENCH_BLOB_MIB (big blobs) and BERTH_BENCH_SMALL_IMAGES.
func BenchmarkServer(b *testing.B) {
	sizes := Default()
	if v, err := strconv.Atoi(os.Getenv("BERTH_BENCH_BLOB_MIB")); err == nil && v > 0 {
		sizes.BlobSize = int64(v) << 20
	}
	if v, err := strconv.Atoi(os.Getenv("BERTH_BENCH_SMALL_IMAGES")); err == nil && v > 0 {
		sizes.SmallImages = v
	}
	for _, name := range Scenarios(false) {
		b.Run(name, func(b *testing.B) {
			dir := os.Getenv("BERTH_BENCH_DIR")
			if dir == "" {
				dir = b.TempDir()
			} else {
				var err error
				if dir, err = os.MkdirTemp(dir, "berth-bench-"); err != nil {
					b.Fatal(err)
				}
				defer os.RemoveAll(dir)
			}
			cfg := config.Default()
			cfg.Storage.Dir = dir
			cfg.GC.Interval = 0
			cfg.Log.Level = "warn"
			s, err := server.New(b.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			// Started before this goroutine is labelled: the server's
			// goroutines carry no label.
			srv := httptest.NewServer(s.Handler())
			defer srv.Close()
			c, err := NewClient(srv.URL, max(sizes.Workers, sizes.HotWorkers))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			r := &Runner{C: c, Sizes: sizes, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			pprof.Do(b.Context(), clientLabel, func(ctx context.Context) {
				for b.Loop() {
					res, err := r.Scenario(ctx, name)
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(res.Value, unitMetric(res.Unit))
				}
			})
		})
	}
}

func unitMetric(unit string) string {
	switch unit {
	case "MiB/s":
		return "MiB/s"
	case "/s":
		return "ops/s"
	}
	return fmt.Sprintf("value(%s)", unit)
}
