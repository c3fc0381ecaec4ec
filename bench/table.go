package bench

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// titles are the table's names of the scenarios.
var titles = map[string]string{
	"push-mono":     "big blob push, %d streams of %s, monolithic",
	"push-one":      "big blob push, one stream, monolithic",
	"push-chunked":  "big blob push, %d streams, chunked %s PATCHes",
	"push-small":    "small images pushed (config + layer, %d clients)",
	"pull":          "big blob pull, %d streams",
	"manifest-put":  "manifest PUT by tag",
	"manifest-get":  "manifest GET by tag, %d clients",
	"blob-head":     "blob HEAD, repository of %d images, %d clients",
	"hot-pull":      "hot pull, %d clients",
	"tag-put":       "tag PUT, %d tags",
	"repo-create":   "repository create (mount + manifest)",
	"catalog":       "catalog of %d repositories, full listing",
	"flatpak-index": "Flatpak index over %d apps",
	"search":        "search (/api/v1/search?q=)",
	"catalogue":     "catalogue page GET /",
}

func title(name string, s Sizes) string {
	switch name {
	case "push-mono":
		return fmt.Sprintf(titles[name], s.Streams, size(s.BlobSize))
	case "push-chunked":
		return fmt.Sprintf(titles[name], s.Streams, size(s.ChunkSize))
	case "push-small", "manifest-get":
		return fmt.Sprintf(titles[name], s.Workers)
	case "pull":
		return fmt.Sprintf(titles[name], s.Streams)
	case "blob-head":
		return fmt.Sprintf(titles[name], s.Images, s.Workers)
	case "hot-pull":
		return fmt.Sprintf(titles[name], s.HotWorkers)
	case "tag-put":
		return fmt.Sprintf(titles[name], s.Tags)
	case "catalog":
		return fmt.Sprintf(titles[name], s.Repos)
	case "flatpak-index":
		return fmt.Sprintf(titles[name], s.Apps)
	}
	if t, ok := titles[name]; ok {
		return t
	}
	return name
}

func size(b int64) string {
	switch {
	case b >= 1<<30 && b%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", b>>30)
	case b >= 1<<20 && b%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", b>>20)
	case b >= 1<<10 && b%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", b>>10)
	}
	return fmt.Sprintf("%d B", b)
}

// Num formats v for the table: thousands separated, fewer decimals as it
// grows.
func Num(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "—"
	case math.Abs(v) >= 100:
		s := strconv.FormatInt(int64(math.Round(v)), 10)
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		if neg {
			return "-" + b.String()
		}
		return b.String()
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// spread is a set of repetitions of one number.
type spread []float64

func (s spread) cell(unit string) string {
	if len(s) == 0 {
		return "—"
	}
	c := Num(Median(s))
	if unit != "" {
		c += " " + unit
	}
	if len(s) > 1 {
		c += fmt.Sprintf(" (%s–%s)", Num(slices.Min(s)), Num(slices.Max(s)))
	}
	return c
}

// Report is what the table is made of: every registry's runs (Berth's
// labelled "berth"), the limits of each repetition, and the ready times.
type Report struct {
	Runs   []Run
	Limits []Limits
	Ready  []ReadyResult
}

// ReadyResult is one `berth serve` start over a stored registry.
type ReadyResult struct {
	Manifests int     `json:"manifests"`
	ReadyMs   float64 `json:"ready_ms"`
}

// Markdown renders the report as one markdown table of scenarios (medians,
// min–max, Berth's ratio to each other registry and to the better one),
// then Berth against the machine's limits.
func (rep Report) Markdown() string {
	var variants []string
	runs := slices.DeleteFunc(slices.Clone(rep.Runs), func(r Run) bool {
		if r.Variant != "" && !slices.Contains(variants, r.Variant) {
			variants = append(variants, r.Variant)
		}
		return r.Variant != ""
	})
	var regs []string
	for _, r := range runs {
		if !slices.Contains(regs, r.Registry) {
			regs = append(regs, r.Registry)
		}
	}
	slices.SortStableFunc(regs, func(a, b string) int {
		if a == "berth" {
			return -1
		}
		if b == "berth" {
			return 1
		}
		return 0
	})
	others := slices.DeleteFunc(slices.Clone(regs), func(s string) bool { return s == "berth" })
	var sizes Sizes
	if len(runs) > 0 {
		sizes = runs[0].Sizes
	}
	// values[scenario][registry] and the errors seen.
	values := map[string]map[string]spread{}
	extra := map[string]map[string]spread{}
	p := map[string][2]spread{}
	units := map[string]string{}
	errs := map[string]map[string]int{}
	for _, run := range runs {
		for _, res := range run.Results {
			if values[res.Scenario] == nil {
				values[res.Scenario] = map[string]spread{}
				errs[res.Scenario] = map[string]int{}
			}
			if res.Error != "" {
				errs[res.Scenario][run.Registry]++
				continue
			}
			units[res.Scenario] = res.Unit
			values[res.Scenario][run.Registry] = append(values[res.Scenario][run.Registry], res.Value)
			if run.Registry == "berth" {
				q := p[res.Scenario]
				q[0], q[1] = append(q[0], res.P50Ms), append(q[1], res.P99Ms)
				p[res.Scenario] = q
				if extra[res.Scenario] == nil {
					extra[res.Scenario] = map[string]spread{}
				}
				for k, v := range res.Extra {
					extra[res.Scenario][k] = append(extra[res.Scenario][k], v)
				}
			}
		}
		if run.PeakRSS > 0 {
			if values["peak-rss"] == nil {
				values["peak-rss"] = map[string]spread{}
			}
			values["peak-rss"][run.Registry] = append(values["peak-rss"][run.Registry], float64(run.PeakRSS)/(1<<20))
		}
	}
	var b strings.Builder
	b.WriteString("| scenario |")
	for _, r := range regs {
		b.WriteString(" " + r + " |")
	}
	for _, o := range others {
		b.WriteString(" berth / " + o + " |")
	}
	if len(others) > 1 {
		b.WriteString(" berth / better |")
	}
	b.WriteString(" berth p50 / p99 ms |\n|---|")
	b.WriteString(strings.Repeat("---|", len(regs)+len(others)+1))
	if len(others) > 1 {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	row := func(name, label string, ratios bool) {
		vs := values[name]
		if vs == nil {
			return
		}
		b.WriteString("| " + label + " |")
		for _, r := range regs {
			c := vs[r].cell(units[name])
			if n := errs[name][r]; n > 0 {
				c += fmt.Sprintf(" (%d failed)", n)
			}
			b.WriteString(" " + c + " |")
		}
		berth := Median(vs["berth"])
		best := 0.0
		for _, o := range others {
			c := "—"
			if m := Median(vs[o]); ratios && len(vs["berth"]) > 0 && len(vs[o]) > 0 && m > 0 {
				c = fmt.Sprintf("%.2f", berth/m)
				best = max(best, m)
			}
			b.WriteString(" " + c + " |")
		}
		if len(others) > 1 {
			c := "—"
			if best > 0 {
				c = fmt.Sprintf("**%.2f**", berth/best)
			}
			b.WriteString(" " + c + " |")
		}
		c := "—"
		if q, ok := p[name]; ok && len(q[0]) > 0 {
			c = Num(Median(q[0])) + " / " + Num(Median(q[1]))
		}
		b.WriteString(" " + c + " |\n")
	}
	for _, s := range scenarios {
		if s.name == "churn" {
			continue
		}
		row(s.name, title(s.name, sizes), !s.berthOnly)
	}
	units["peak-rss"] = "MiB"
	row("peak-rss", "peak RSS (lower is better)", false)
	if ex := extra["churn"]; ex != nil {
		fmt.Fprintf(&b, "\nReads under churn (Berth; one client per kind of read, idle, then while %d clients push, %s pushes/s):\n\n",
			sizes.Workers, Num(Median(ex["pushes_per_s"])))
		b.WriteString("| read | idle p50 / p99 ms | pushing p50 / p99 ms | p50 pushing / idle |\n|---|---|---|---|\n")
		for _, k := range []string{"catalogue", "search", "index"} {
			i50, b50 := Median(ex[k+"_idle_p50_ms"]), Median(ex[k+"_busy_p50_ms"])
			ratio := "—"
			if i50 > 0 {
				ratio = fmt.Sprintf("%.2f", b50/i50)
			}
			fmt.Fprintf(&b, "| %s | %s / %s | %s / %s | %s |\n", k, Num(i50), Num(Median(ex[k+"_idle_p99_ms"])),
				Num(b50), Num(Median(ex[k+"_busy_p99_ms"])), ratio)
		}
	}
	if len(rep.Limits) > 0 {
		lim := func(f func(Limits) float64) spread {
			var s spread
			for _, l := range rep.Limits {
				s = append(s, f(l))
			}
			return s
		}
		sha := lim(func(l Limits) float64 { return l.SHA256OneCore })
		sc2 := lim(func(l Limits) float64 { return l.ServeContent2 })
		in1 := lim(func(l Limits) float64 { return l.PlainIngest1 })
		in2 := lim(func(l Limits) float64 { return l.PlainIngest2 })
		fmt.Fprintf(&b, "\nThis machine's limits (%d CPUs, medians of %d measurements in the same run): sha256 %s MiB/s on one core, %s on all;"+
			" `http.ServeContent` loopback %s MiB/s on one stream, %s on two; a plain hashed, fdatasync'd upload server %s MiB/s on one stream, %s on two;"+
			" fdatasync'd writes %s MiB/s; %s small fsyncs/s.\n",
			rep.Limits[0].CPUs, len(rep.Limits), sha.cell(""), lim(func(l Limits) float64 { return l.SHA256AllCores }).cell(""),
			lim(func(l Limits) float64 { return l.ServeContent1 }).cell(""), sc2.cell(""), in1.cell(""), in2.cell(""),
			lim(func(l Limits) float64 { return l.FdatasyncWrites }).cell(""), lim(func(l Limits) float64 { return l.SmallFsyncs }).cell(""))
		frac := func(v spread, limit float64) string {
			if len(v) == 0 || limit <= 0 {
				return "—"
			}
			return fmt.Sprintf("%.0f%%", 100*Median(v)/limit)
		}
		b.WriteString("\n| Berth against the limits | fraction |\n|---|---|\n")
		fmt.Fprintf(&b, "| one push stream alone / sha256 on one core | %s |\n", frac(values["push-one"]["berth"], Median(sha)))
		fmt.Fprintf(&b, "| one of %d monolithic push streams / sha256 on one core | %s |\n", sizes.Streams, frac(extra["push-mono"]["per_stream_mib_s"], Median(sha)))
		fmt.Fprintf(&b, "| one chunked push stream / sha256 on one core | %s |\n", frac(extra["push-chunked"]["per_stream_mib_s"], Median(sha)))
		fmt.Fprintf(&b, "| one push stream alone / plain upload server, one stream | %s |\n", frac(values["push-one"]["berth"], Median(in1)))
		fmt.Fprintf(&b, "| monolithic push, %d streams / plain upload server, two streams | %s |\n", sizes.Streams, frac(values["push-mono"]["berth"], Median(in2)))
		fmt.Fprintf(&b, "| chunked push / monolithic push | %s |\n", frac(values["push-chunked"]["berth"], Median(values["push-mono"]["berth"])))
		fmt.Fprintf(&b, "| blob pull, %d streams / `ServeContent` on two streams | %s |\n", sizes.Streams, frac(values["pull"]["berth"], Median(sc2)))
	}
	if len(rep.Ready) > 0 {
		var s spread
		for _, r := range rep.Ready {
			s = append(s, r.ReadyMs)
		}
		fmt.Fprintf(&b, "\n`berth serve` ready (GET /readyz answers 200) with %s manifests stored: %s ms over %d starts.\n",
			Num(float64(rep.Ready[0].Manifests)), s.cell(""), len(s))
	}
	for _, v := range variants {
		rep.variantTable(&b, v, regs)
	}
	return b.String()
}

// variantTable writes the latencies of the runs of one variant: for each
// scenario and registry, the median requests/s and the medians of p50 and
// p99.
func (rep Report) variantTable(b *strings.Builder, variant string, regs []string) {
	type cell struct{ rate, p50, p99 spread }
	cells := map[string]map[string]*cell{}
	var names []string
	var sizes Sizes
	for _, run := range rep.Runs {
		if run.Variant != variant {
			continue
		}
		sizes = run.Sizes
		if !slices.Contains(regs, run.Registry) {
			regs = append(regs, run.Registry)
		}
		for _, res := range run.Results {
			if res.Error != "" {
				continue
			}
			if cells[res.Scenario] == nil {
				cells[res.Scenario] = map[string]*cell{}
				names = append(names, res.Scenario)
			}
			c := cells[res.Scenario][run.Registry]
			if c == nil {
				c = &cell{}
				cells[res.Scenario][run.Registry] = c
			}
			c.rate, c.p50, c.p99 = append(c.rate, res.ReqPerS), append(c.p50, res.P50Ms), append(c.p99, res.P99Ms)
		}
	}
	fmt.Fprintf(b, "\nRuns %q (medians: requests/s, p50 / p99 ms):\n\n| scenario |", variant)
	for _, r := range regs {
		b.WriteString(" " + r + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(regs)) + "\n")
	for _, name := range names {
		b.WriteString("| " + title(name, sizes) + " |")
		for _, r := range regs {
			c := cells[name][r]
			if c == nil {
				b.WriteString(" — |")
				continue
			}
			fmt.Fprintf(b, " %s /s, %s / %s |", Num(Median(c.rate)), Num(Median(c.p50)), Num(Median(c.p99)))
		}
		b.WriteString("\n")
	}
}
