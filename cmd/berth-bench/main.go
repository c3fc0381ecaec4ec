// Command berth-bench is Berth's load tool: a client of the distribution
// API with many concurrent workers, run against Berth, CNCF distribution or
// zot. It prints throughput, requests/s, p50/p99 latency and, given the
// server's PID, the server's CPU seconds and peak RSS.
//
//	berth-bench run -url http://127.0.0.1:5000 [-scenarios a,b] [-pid N] [-json FILE] [-registry NAME]
//	berth-bench limits [-dir DIR] [-json FILE]
//	berth-bench table [-limits FILE]... [-ready FILE] RUN.json...
//	berth-bench seed -url URL -n 100000
//	berth-bench ready -url URL [-n MANIFESTS] [-json FILE] -- berth serve ...
//	berth-bench scenarios [-registry-only]
//	berth-bench freeport
//
// scripts/bench.sh runs it side by side against the three registries.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/berth-dev/berth/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(ctx, os.Args[1:], os.Stdout, log); err != nil {
		fmt.Fprintln(os.Stderr, "berth-bench:", err)
		os.Exit(1)
	}
}

const usage = "usage: berth-bench run|limits|table|seed|ready|scenarios|freeport [flags] (-h for each)"

func run(ctx context.Context, args []string, out io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(ctx, args, out, log)
	case "limits":
		return cmdLimits(ctx, args, out)
	case "table":
		return cmdTable(args, out)
	case "seed":
		return cmdSeed(ctx, args, log)
	case "ready":
		return cmdReady(ctx, args, out)
	case "scenarios":
		fs := flag.NewFlagSet("scenarios", flag.ContinueOnError)
		only := fs.Bool("registry-only", false, "only those any registry can run (no Flatpak index, catalogue, search)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		fmt.Fprintln(out, strings.Join(bench.Scenarios(*only), ","))
		return nil
	case "freeport":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("free port: %w", err)
		}
		defer ln.Close()
		fmt.Fprintln(out, ln.Addr().(*net.TCPAddr).Port)
		return nil
	}
	return fmt.Errorf("unknown command %q; %s", cmd, usage)
}

// sizeFlags registers the scenario sizes on fs.
func sizeFlags(fs *flag.FlagSet) *bench.Sizes {
	s := bench.Default()
	mib := func(p *int64, name, help string) {
		fs.Func(name, help+fmt.Sprintf(" in MiB (default %d)", *p>>20), func(v string) error {
			var n float64
			if _, err := fmt.Sscan(v, &n); err != nil || n <= 0 {
				return fmt.Errorf("want a positive number of MiB")
			}
			*p = int64(n * (1 << 20))
			return nil
		})
	}
	mib(&s.BlobSize, "blob-mib", "big blob size")
	mib(&s.ChunkSize, "chunk-mib", "chunked push PATCH size")
	mib(&s.HotBlobSize, "hot-mib", "hot pull layer size")
	fs.IntVar(&s.BlobsPerStr, "blobs-per-stream", s.BlobsPerStr, "big blobs each stream pushes and pulls")
	fs.IntVar(&s.Streams, "streams", s.Streams, "big blob push and pull streams")
	fs.IntVar(&s.Workers, "workers", s.Workers, "clients of the small-request scenarios")
	fs.IntVar(&s.HotWorkers, "hot-workers", s.HotWorkers, "hot pull clients")
	fs.IntVar(&s.SmallLayer, "small-layer", s.SmallLayer, "small image layer bytes")
	fs.IntVar(&s.SmallImages, "small-images", s.SmallImages, "small images pushed")
	fs.IntVar(&s.ManifestPuts, "manifest-puts", s.ManifestPuts, "manifest PUTs by tag")
	fs.IntVar(&s.Tags, "tags", s.Tags, "tag PUTs")
	fs.IntVar(&s.Images, "images", s.Images, "images in the blob HEAD repository")
	fs.IntVar(&s.Repos, "repos", s.Repos, "repositories the catalog lists")
	fs.IntVar(&s.RepoCreates, "repo-creates", s.RepoCreates, "repositories created")
	fs.IntVar(&s.Apps, "apps", s.Apps, "Flatpak apps (index, search, catalogue, churn)")
	fs.DurationVar(&s.Duration, "duration", s.Duration, "how long each read scenario runs")
	fs.DurationVar(&s.MaxTime, "max-time", s.MaxTime, "a counted scenario stops after this long")
	return &s
}

func newRunner(url string, s bench.Sizes, pid int, log *slog.Logger) (*bench.Runner, error) {
	c, err := bench.NewClient(url, max(s.Workers, s.HotWorkers, s.Streams))
	if err != nil {
		return nil, err
	}
	return &bench.Runner{C: c, Sizes: s, PID: pid, Log: log}, nil
}

func cmdRun(ctx context.Context, args []string, out io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:5000", "the registry's base URL")
	names := fs.String("scenarios", "all", "comma-separated scenarios, \"all\" or \"registry\" (those any registry can run)")
	pid := fs.Int("pid", 0, "the server's PID: report its CPU seconds and peak RSS")
	registry := fs.String("registry", "berth", "the registry's name in the output (berth, distribution, zot, zot-commit)")
	jsonOut := fs.String("json", "", "also write the results as JSON to this file")
	variant := fs.String("variant", "", "how this run differs from the main ones (e.g. pinned); the table reports its latencies apart")
	s := sizeFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var list []string
	switch *names {
	case "all":
		list = bench.Scenarios(false)
	case "registry":
		list = bench.Scenarios(true)
	default:
		list = strings.Split(*names, ",")
	}
	r, err := newRunner(*url, *s, *pid, log)
	if err != nil {
		return err
	}
	defer r.C.Close()
	res, err := r.RunAll(ctx, *registry, list)
	if res != nil {
		res.Variant = *variant
		printRun(out, res)
		if *jsonOut != "" {
			if werr := writeJSON(*jsonOut, res); werr != nil && err == nil {
				err = werr
			}
		}
	}
	return err
}

// printRun prints a run for people.
func printRun(out io.Writer, run *bench.Run) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\tvalue\tunit\tops\treq/s\tp50 ms\tp99 ms\tserver CPU s\tseconds\t\n")
	for _, r := range run.Results {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\tFAILED\t\t\t\t\t\t\t\t\n", r.Scenario)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%.2f\t%.2f\t%.2f\t%.1f\t\n", r.Scenario, bench.Num(r.Value), r.Unit, r.Ops,
			bench.Num(r.ReqPerS), r.P50Ms, r.P99Ms, r.ServerCPU, r.Seconds)
	}
	tw.Flush()
	for _, r := range run.Results {
		if r.Error != "" {
			fmt.Fprintf(out, "%s: %s\n", r.Scenario, r.Error)
		}
		if r.Scenario == "churn" && r.Error == "" {
			for _, k := range []string{"catalogue", "search", "index"} {
				fmt.Fprintf(out, "churn %s: p50 %.2f ms idle, %.2f ms while pushing (p99 %.2f, %.2f)\n", k,
					r.Extra[k+"_idle_p50_ms"], r.Extra[k+"_busy_p50_ms"], r.Extra[k+"_idle_p99_ms"], r.Extra[k+"_busy_p99_ms"])
			}
		}
	}
	if run.PeakRSS > 0 {
		fmt.Fprintf(out, "server peak RSS: %.1f MiB\n", float64(run.PeakRSS)/(1<<20))
	}
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading results: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}

func cmdLimits(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("limits", flag.ContinueOnError)
	dir := fs.String("dir", os.TempDir(), "directory for the file tests (the registries' file system)")
	mib := fs.Int64("mib", 512, "MiB per transfer")
	jsonOut := fs.String("json", "", "also write the limits as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l, err := bench.MeasureLimits(ctx, *dir, *mib<<20)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "sha256: %.0f MiB/s on one core, %.0f on %d\nServeContent loopback: %.0f MiB/s on one stream, %.0f on two\n"+
		"plain upload server: %.0f MiB/s on one stream, %.0f on two\nfdatasync'd writes: %.0f MiB/s\nsmall fsyncs: %.0f /s\n",
		l.SHA256OneCore, l.SHA256AllCores, l.CPUs, l.ServeContent1, l.ServeContent2, l.PlainIngest1, l.PlainIngest2, l.FdatasyncWrites, l.SmallFsyncs)
	if *jsonOut != "" {
		return writeJSON(*jsonOut, l)
	}
	return nil
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func cmdTable(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("table", flag.ContinueOnError)
	var limits, ready listFlag
	fs.Var(&limits, "limits", "a limits JSON file (repeatable)")
	fs.Var(&ready, "ready", "a ready-time JSON file (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var rep bench.Report
	for _, p := range fs.Args() {
		var r bench.Run
		if err := readJSON(p, &r); err != nil {
			return err
		}
		rep.Runs = append(rep.Runs, r)
	}
	for _, p := range limits {
		var l bench.Limits
		if err := readJSON(p, &l); err != nil {
			return err
		}
		rep.Limits = append(rep.Limits, l)
	}
	for _, p := range ready {
		var rs []bench.ReadyResult
		if err := readJSON(p, &rs); err != nil {
			return err
		}
		rep.Ready = append(rep.Ready, rs...)
	}
	_, err := io.WriteString(out, rep.Markdown())
	return err
}

func cmdSeed(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:5000", "the registry's base URL")
	n := fs.Int("n", 100000, "manifests to store")
	s := sizeFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := newRunner(*url, *s, 0, log)
	if err != nil {
		return err
	}
	defer r.C.Close()
	return r.Seed(ctx, *n)
}

// cmdReady starts the command after --, times until url/readyz answers
// 200, then stops it with SIGTERM.
func cmdReady(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("ready", flag.ContinueOnError)
	url := fs.String("url", "", "the base URL the command will serve")
	n := fs.Int("n", 0, "manifests stored (for the report)")
	starts := fs.Int("starts", 3, "how many times to start it")
	jsonOut := fs.String("json", "", "also write the times as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	argv := fs.Args()
	if *url == "" || len(argv) == 0 {
		return errors.New("ready: want -url and a command after --")
	}
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: time.Second}
	var results []bench.ReadyResult
	for range *starts {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Stderr = io.Discard
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("ready: starting %s: %w", argv[0], err)
		}
		var took time.Duration
		for {
			res, err := hc.Get(*url + "/readyz")
			if err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					took = time.Since(start)
					break
				}
			}
			if time.Since(start) > 5*time.Minute || ctx.Err() != nil {
				cmd.Process.Kill()
				cmd.Wait()
				return fmt.Errorf("ready: %s did not answer /readyz within 5 minutes", *url)
			}
			time.Sleep(time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("ready: the server exited with %w", err)
		}
		fmt.Fprintf(out, "ready in %.1f ms with %d manifests stored\n", float64(took)/float64(time.Millisecond), *n)
		results = append(results, bench.ReadyResult{Manifests: *n, ReadyMs: float64(took) / float64(time.Millisecond)})
	}
	if *jsonOut != "" {
		return writeJSON(*jsonOut, results)
	}
	return nil
}
