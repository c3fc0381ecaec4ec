package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {1, time.Millisecond}, {0.1, time.Millisecond}} {
		if got := Percentile(s, c.p); got != c.want {
			t.Errorf("p%v of 1..100 ms = %v, want %v", c.p, got, c.want)
		}
	}
	if got := Percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("p99 of one sample = %v, want it", got)
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v, want 0", got)
	}
	// Nearest rank: p50 of 4 samples is the 2nd, p99 the 4th.
	four := []time.Duration{40, 10, 30, 20}
	if got := Percentile(four, 50); got != 20 {
		t.Errorf("p50 of 10,20,30,40 = %v, want 20", got)
	}
	if got := Percentile(four, 99); got != 40 {
		t.Errorf("p99 of 10,20,30,40 = %v, want 40", got)
	}
}

func TestMedian(t *testing.T) {
	vs := []float64{5, 1, 3}
	if got := Median(vs); got != 3 {
		t.Errorf("median of 5,1,3 = %v", got)
	}
	if vs[0] != 5 {
		t.Errorf("Median sorted its argument: %v", vs)
	}
	if got := Median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median of 1..4 = %v, want 2.5", got)
	}
	if got := Median(nil); got != 0 {
		t.Errorf("median of nothing = %v", got)
	}
}

func TestNum(t *testing.T) {
	for v, want := range map[float64]string{
		0.5: "0.50", 9.999: "10.00", 12.34: "12.3", 100: "100", 1234.5: "1,235", 2720000: "2,720,000", -1500: "-1,500",
	} {
		if got := Num(v); got != want {
			t.Errorf("Num(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestNextLink(t *testing.T) {
	for h, want := range map[string]string{
		`</v2/_catalog?last=b&n=2>; rel="next"`:                            "/v2/_catalog?last=b&n=2",
		`<https://x/a>; rel="prev", </v2/_catalog?last=c&n=2>; rel="next"`: "/v2/_catalog?last=c&n=2",
		``:                    "",
		`</v2/x>; rel="prev"`: "",
	} {
		if got := nextLink(h); got != want {
			t.Errorf("nextLink(%q) = %q, want %q", h, got, want)
		}
	}
}

// TestGenReader: generated blobs have the digest genDigest computes
// however they are read, the size asked for, and differ by id.
func TestGenReader(t *testing.T) {
	const size = 3*blockSize + 12345
	h := sha256.New()
	n, err := io.Copy(h, iotest.OneByteReader(io.LimitReader(newGen("a", size), 100000)))
	if err != nil || n != 100000 {
		t.Fatalf("one-byte reads: %d, %v", n, err)
	}
	h.Reset()
	n, err = io.CopyBuffer(h, struct{ io.Reader }{newGen("a", size)}, make([]byte, 7777))
	if err != nil || n != size {
		t.Fatalf("read %d bytes (%v), want %d", n, err, size)
	}
	if got, want := Digest("sha256:"+hex.EncodeToString(h.Sum(nil))), genDigest("a", size); got != want {
		t.Errorf("digest of the bytes read %s, genDigest %s", got, want)
	}
	if genDigest("a", size) == genDigest("b", size) {
		t.Error("blobs of different ids are equal")
	}
	if a, b := smallBlob("x", 100), smallBlob("y", 100); string(a) == string(b) {
		t.Error("small blobs of different ids are equal")
	}
}

// TestMarkdown: medians, min–max, Berth's ratio to each registry and to
// the better one, Berth-only rows without ratios, errors, the limits.
func TestMarkdown(t *testing.T) {
	run := func(reg string, mono, get float64, rss int64) Run {
		return Run{Registry: reg, Sizes: Default(), PeakRSS: rss, Results: []Result{
			{Scenario: "push-mono", Unit: "MiB/s", Value: mono, P50Ms: 100, P99Ms: 200, Extra: map[string]float64{"per_stream_mib_s": mono / 2}},
			{Scenario: "manifest-get", Unit: "/s", Value: get, P50Ms: 1, P99Ms: 3},
		}}
	}
	rep := Report{
		Runs: []Run{
			run("zot", 600, 800, 90<<20), run("berth", 640, 7000, 40<<20), run("distribution", 500, 4000, 180<<20),
			run("berth", 660, 7200, 44<<20), run("berth", 700, 7400, 42<<20), run("zot", 700, 780, 80<<20),
			{Registry: "berth", Sizes: Default(), Results: []Result{{Scenario: "search", Unit: "/s", Value: 900, P50Ms: 2, P99Ms: 9}}},
			{Registry: "distribution", Sizes: Default(), Results: []Result{{Scenario: "push-mono", Error: "boom"}}},
			// Pinned runs: a table of their own, and nothing of them in
			// the main one (not their rates, nor their peak RSS).
			{Registry: "berth", Sizes: Default(), Variant: "pinned", PeakRSS: 10 << 20, Results: []Result{{Scenario: "manifest-get", Unit: "/s", Value: 20000, ReqPerS: 20000, P50Ms: 0.5, P99Ms: 1.5}}},
			{Registry: "berth", Sizes: Default(), Variant: "pinned", PeakRSS: 10 << 20, Results: []Result{{Scenario: "manifest-get", Unit: "/s", Value: 22000, ReqPerS: 22000, P50Ms: 0.7, P99Ms: 1.9}}},
			{Registry: "zot", Sizes: Default(), Variant: "pinned", Results: []Result{{Scenario: "manifest-get", Unit: "/s", Value: 5000, ReqPerS: 5000, P50Ms: 3, P99Ms: 9}}},
		},
		Limits: []Limits{{CPUs: 2, SHA256OneCore: 1000, ServeContent2: 3000, PlainIngest2: 800}, {CPUs: 2, SHA256OneCore: 1200, ServeContent2: 3000, PlainIngest2: 600}},
		Ready:  []ReadyResult{{Manifests: 100000, ReadyMs: 120}, {Manifests: 100000, ReadyMs: 100}, {Manifests: 100000, ReadyMs: 140}},
	}
	md := rep.Markdown()
	for _, want := range []string{
		"| scenario | berth | zot | distribution | berth / zot | berth / distribution | berth / better | berth p50 / p99 ms |",
		// Berth 660 (640–700); zot median 650; distribution 500, one run failed.
		"| big blob push, 2 streams of 256 MiB, monolithic | 660 MiB/s (640–700) | 650 MiB/s (600–700) | 500 MiB/s (1 failed) | 1.02 | 1.32 | **1.02** | 100 / 200 |",
		"| manifest GET by tag, 16 clients | 7,200 /s (7,000–7,400) | 790 /s (780–800) | 4,000 /s | 9.11 | 1.80 | **1.80** | 1.00 / 3.00 |",
		"| search (/api/v1/search?q=) | 900 /s | — | — | — | — | — | 2.00 / 9.00 |",
		"| peak RSS (lower is better) | 42.0 MiB (40.0–44.0) | 85.0 MiB (80.0–90.0) | 180 MiB | — | — | — | — |",
		"sha256 1,100 (1,000–1,200) MiB/s on one core",
		// One stream: 330 MiB/s of a 1,100 MiB/s limit.
		"| one of 2 monolithic push streams / sha256 on one core | 30% |",
		// 660 MiB/s of the plain upload server's 700 (600–800) on two streams.
		"a plain hashed, fdatasync'd upload server 0.00 (0.00–0.00) MiB/s on one stream, 700 (600–800) on two",
		"| monolithic push, 2 streams / plain upload server, two streams | 94% |",
		"with 100,000 manifests stored: 120 (100–140) ms over 3 starts",
		"Runs \"pinned\" (medians: requests/s, p50 / p99 ms):\n\n| scenario | berth | zot | distribution |",
		"| manifest GET by tag, 16 clients | 21,000 /s, 0.60 / 1.70 | 5,000 /s, 3.00 / 9.00 | — |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
}
