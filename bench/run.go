package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sizes are the scenario sizes; Default gives the issue's.
type Sizes struct {
	BlobSize     int64         // big blob push and pull: bytes per blob
	BlobsPerStr  int           // big blobs each stream pushes
	Streams      int           // big blob push and pull streams
	ChunkSize    int64         // chunked push: bytes per PATCH
	Workers      int           // clients of the small-request scenarios
	HotWorkers   int           // hot pull clients
	HotBlobSize  int64         // hot pull: layer bytes
	SmallLayer   int           // small images: layer bytes
	SmallImages  int           // small images pushed
	ManifestPuts int           // manifest PUTs by tag
	Tags         int           // tag PUTs
	Images       int           // blob HEAD: images in the repository
	Repos        int           // catalog: repositories
	RepoCreates  int           // repository creations
	Apps         int           // Flatpak apps for index, search, catalogue and churn
	Duration     time.Duration // read scenarios run this long
	MaxTime      time.Duration // a counted scenario stops after this long
}

// Default are the sizes of the table.
func Default() Sizes {
	return Sizes{
		BlobSize: 256 << 20, BlobsPerStr: 2, Streams: 2, ChunkSize: 8 << 20,
		Workers: 16, HotWorkers: 32, HotBlobSize: 8 << 20, SmallLayer: 4 << 10,
		SmallImages: 1000, ManifestPuts: 2000, Tags: 2000, Images: 1000, Repos: 1000,
		RepoCreates: 1000, Apps: 1000, Duration: 5 * time.Second, MaxTime: 30 * time.Second,
	}
}

// Result is one scenario's outcome.
type Result struct {
	Scenario string  `json:"scenario"`
	Unit     string  `json:"unit"`  // of Value: "MiB/s", "/s", "ms" or "x"
	Value    float64 `json:"value"` // the headline number
	Ops      int     `json:"ops"`   // operations timed (a blob, an image, a request)
	Requests int     `json:"requests"`
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
	ReqPerS  float64 `json:"requests_per_s"`
	P50Ms    float64 `json:"p50_ms"` // per operation
	P99Ms    float64 `json:"p99_ms"`
	// ServerCPU is the server's CPU seconds during the timed part (with
	// a PID), and CPUPerOp per operation in milliseconds.
	ServerCPU float64            `json:"server_cpu_s,omitempty"`
	Extra     map[string]float64 `json:"extra,omitempty"`
	Error     string             `json:"error,omitempty"`
}

// Run is one registry's run of several scenarios.
type Run struct {
	Registry string    `json:"registry"`
	URL      string    `json:"url"`
	Started  time.Time `json:"started"`
	Sizes    Sizes     `json:"sizes"`
	Results  []Result  `json:"results"`
	// PeakRSS is the server's VmHWM at the end, in bytes (with a PID).
	PeakRSS int64 `json:"peak_rss_bytes,omitempty"`
	// Variant names how this run differs from the main ones (e.g.
	// "pinned": server and load tool on separate cores); the table gives
	// each variant a latency table of its own.
	Variant string `json:"variant,omitempty"`
}

// Runner runs scenarios against one registry.
type Runner struct {
	C     *Client
	Sizes Sizes
	PID   int // the server's process, 0 for none
	Log   *slog.Logger

	// What preparations made, shared by later scenarios.
	apps    bool
	repos   map[string]bool
	bigs    []bigBlob
	src     image
	counter atomic.Int64
}

// scenario is one named measurement.
type scenario struct {
	name      string
	berthOnly bool
	run       func(r *Runner, ctx context.Context) (Result, error)
}

var scenarios = []scenario{
	{name: "push-mono", run: (*Runner).pushMono},
	{name: "push-one", run: (*Runner).pushOne},
	{name: "push-chunked", run: (*Runner).pushChunked},
	{name: "push-small", run: (*Runner).pushSmall},
	{name: "pull", run: (*Runner).pull},
	{name: "manifest-put", run: (*Runner).manifestPut},
	{name: "manifest-get", run: (*Runner).manifestGet},
	{name: "blob-head", run: (*Runner).blobHead},
	{name: "hot-pull", run: (*Runner).hotPull},
	{name: "tag-put", run: (*Runner).tagPut},
	{name: "catalog", run: (*Runner).catalog},
	{name: "repo-create", run: (*Runner).repoCreate},
	{name: "flatpak-index", berthOnly: true, run: (*Runner).flatpakIndex},
	{name: "search", berthOnly: true, run: (*Runner).search},
	{name: "catalogue", berthOnly: true, run: (*Runner).cataloguePage},
	{name: "churn", berthOnly: true, run: (*Runner).churn},
}

// Scenarios names every scenario in the order they run; registryOnly
// leaves out those that need Berth's side doors (Flatpak index,
// catalogue, search).
func Scenarios(registryOnly bool) []string {
	var names []string
	for _, s := range scenarios {
		if !registryOnly || !s.berthOnly {
			names = append(names, s.name)
		}
	}
	return names
}

// RunAll runs the named scenarios in the canonical order. A scenario that
// fails is reported with its error and the rest still run.
func (r *Runner) RunAll(ctx context.Context, registry string, names []string) (*Run, error) {
	for _, n := range names {
		if !slices.ContainsFunc(scenarios, func(s scenario) bool { return s.name == n }) {
			return nil, fmt.Errorf("unknown scenario %q (have %s)", n, strings.Join(Scenarios(false), ", "))
		}
	}
	run := &Run{Registry: registry, URL: r.C.base.String(), Started: time.Now().UTC(), Sizes: r.Sizes}
	for _, s := range scenarios {
		if !slices.Contains(names, s.name) {
			continue
		}
		res, err := r.Scenario(ctx, s.name)
		if err != nil {
			if ctx.Err() != nil {
				return run, ctx.Err()
			}
			r.Log.Error("scenario failed", "scenario", s.name, "err", err)
		}
		run.Results = append(run.Results, res)
	}
	if r.PID != 0 {
		rss, err := peakRSS(r.PID)
		if err != nil {
			return run, err
		}
		run.PeakRSS = rss
	}
	return run, nil
}

// Scenario runs one scenario: its preparation, then the timed part.
func (r *Runner) Scenario(ctx context.Context, name string) (Result, error) {
	i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == name })
	if i < 0 {
		return Result{}, fmt.Errorf("unknown scenario %q", name)
	}
	if r.repos == nil {
		r.repos = map[string]bool{}
	}
	start := time.Now()
	res, err := scenarios[i].run(r, ctx)
	res.Scenario = name
	if err != nil {
		res.Error = err.Error()
	}
	r.Log.Info("scenario", "scenario", name, "value", fmt.Sprintf("%.1f %s", res.Value, res.Unit),
		"p50_ms", fmt.Sprintf("%.2f", res.P50Ms), "p99_ms", fmt.Sprintf("%.2f", res.P99Ms),
		"server_cpu_s", res.ServerCPU, "took", time.Since(start).Round(time.Millisecond))
	return res, err
}

// clientLabel marks the load tool's goroutines in CPU profiles.
var clientLabel = pprof.Labels("side", "client")

// opFunc is one timed operation of worker w, number i; it reports the
// requests it made and the payload bytes it moved.
type opFunc func(ctx context.Context, w, i int) (reqs int, bytes int64, err error)

// timed is what a load phase measured.
type timed struct {
	ops, reqs int
	bytes     int64
	elapsed   time.Duration
	lat       []time.Duration
	cpu       float64
}

// load runs op on workers goroutines, n operations in all (n < 0: until
// the duration d ends), stopping at d in any case; the first error stops
// every worker and is returned.
func (r *Runner) load(ctx context.Context, workers, n int, d time.Duration, op opFunc) (timed, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next    atomic.Int64
		mu      sync.Mutex
		t       timed
		firstEr error
		wg      sync.WaitGroup
	)
	cpu0, cpuErr := r.cpu()
	start := time.Now()
	deadline := start.Add(d)
	for w := range workers {
		wg.Go(func() {
			// CPU profiles taken in process tell the client's work from
			// the server's by this label (see BenchmarkServer).
			pprof.SetGoroutineLabels(pprof.WithLabels(ctx, clientLabel))
			var lat []time.Duration
			var reqs int
			var bytes int64
			for ctx.Err() == nil && time.Now().Before(deadline) {
				i := int(next.Add(1) - 1)
				if n >= 0 && i >= n {
					break
				}
				t0 := time.Now()
				q, b, err := op(ctx, w, i)
				if err != nil {
					mu.Lock()
					if firstEr == nil && ctx.Err() == nil {
						firstEr = fmt.Errorf("operation %d: %w", i, err)
					}
					mu.Unlock()
					cancel()
					break
				}
				lat = append(lat, time.Since(t0))
				reqs += q
				bytes += b
			}
			mu.Lock()
			t.lat = append(t.lat, lat...)
			t.ops += len(lat)
			t.reqs += reqs
			t.bytes += bytes
			mu.Unlock()
		})
	}
	wg.Wait()
	t.elapsed = time.Since(start)
	if cpu1, err := r.cpu(); err == nil && cpuErr == nil {
		t.cpu = cpu1 - cpu0
	}
	if firstEr != nil {
		return t, firstEr
	}
	if t.ops == 0 {
		return t, errors.New("no operation finished")
	}
	return t, nil
}

func (r *Runner) cpu() (float64, error) {
	if r.PID == 0 {
		return 0, nil
	}
	return cpuSeconds(r.PID)
}

// result turns a load phase into a Result; unit "MiB/s" reports bytes per
// second, "/s" operations per second.
func (t timed) result(unit string) Result {
	s := t.elapsed.Seconds()
	res := Result{Unit: unit, Ops: t.ops, Requests: t.reqs, Bytes: t.bytes, Seconds: s,
		P50Ms: ms(Percentile(t.lat, 50)), P99Ms: ms(Percentile(t.lat, 99)), ServerCPU: t.cpu}
	if s > 0 {
		res.ReqPerS = float64(t.reqs) / s
		switch unit {
		case "MiB/s":
			res.Value = float64(t.bytes) / (1 << 20) / s
		default:
			res.Value = float64(t.ops) / s
		}
	}
	if t.ops > 0 && t.cpu > 0 {
		res.Extra = map[string]float64{"server_cpu_ms_per_op": t.cpu * 1000 / float64(t.ops)}
	}
	return res
}

// uid is a string unique within this runner (and, with the start time,
// across runs against the same registry).
func (r *Runner) uid(prefix string) string {
	return fmt.Sprintf("%s%d-%d", prefix, time.Now().UnixNano()%1e9, r.counter.Add(1))
}
