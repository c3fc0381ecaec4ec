package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

const (
	crashClients       = 4
	crashImagesPer     = 60 // 240 images in all
	crashSharedLayers  = 4
	crashPushDeadline  = 4 * time.Minute // all pushes, kills included
	crashImageDeadline = 90 * time.Second
)

// TestCrash is the kill -9 test: clients push images over plain HTTP while
// berth is killed with SIGKILL at random moments and restarted on the same
// data. Every push acknowledged with a 201 for its manifest must pull back
// byte-identical afterwards, and fsck must be clean, after --repair of
// unacknowledged leftovers, which may only be unreferenced.
//
// BERTH_CRASH_SEED=<n> replays a run's kill schedule and image sizes.
func TestCrash(t *testing.T) {
	seed := testSeed(t, "BERTH_CRASH_SEED")
	rng := rand.New(rand.NewPCG(seed, 0x5eed))

	data := t.TempDir()
	srv := startServerOn(t, data)
	var base atomic.Value
	base.Store("http://" + srv.Addr)
	client := &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConnsPerHost: crashClients,
		},
	}
	p := &pusher{c: client, base: func() string { return base.Load().(string) }}

	// The images: distinct configs, some layers shared between clients.
	shared := make([][]byte, crashSharedLayers)
	for i := range shared {
		shared[i] = seededBytes(rng, 32<<10+rng.IntN(32<<10))
	}
	plans := make([][]testImage, crashClients)
	for c := range plans {
		for i := range crashImagesPer {
			cfg, _ := json.Marshal(map[string]any{
				"architecture": "amd64", "os": "linux",
				"config": map[string]any{"Labels": map[string]string{"client": strconv.Itoa(c), "image": strconv.Itoa(i)}},
				"rootfs": map[string]any{"type": "layers", "diff_ids": []string{}},
			})
			layers := [][]byte{shared[rng.IntN(len(shared))], seededBytes(rng, 1<<10+rng.IntN(48<<10))}
			plans[c] = append(plans[c], makeTestImage(fmt.Sprintf("crash/c%d", c), fmt.Sprintf("i%d", i), cfg, layers...))
		}
	}

	var (
		mu       sync.Mutex
		acked    []testImage
		attempts atomic.Int64
		failed   atomic.Int64
		done     = make(chan struct{})
		wg       sync.WaitGroup
		errs     = make(chan error, crashClients)
		deadline = time.Now().Add(crashPushDeadline)
	)
	for c := range crashClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, img := range plans[c] {
				chunked := (c+i)%2 == 1
				start := time.Now()
				for {
					attempts.Add(1)
					err := pushAll(p, img, chunked)
					if err == nil {
						mu.Lock()
						acked = append(acked, img)
						mu.Unlock()
						break
					}
					failed.Add(1)
					if time.Since(start) > crashImageDeadline || time.Now().After(deadline) {
						errs <- fmt.Errorf("client %d: image %s:%s not pushed after %s: %v", c, img.Repo, img.Tag, time.Since(start).Round(time.Millisecond), err)
						return
					}
					time.Sleep(30 * time.Millisecond)
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()

	// The killer: a bounded number of SIGKILLs at random moments, each
	// followed by a restart on the same data (a new port; clients read
	// base again).
	kills := 5 + rng.IntN(4)
	killed, killedBusy := 0, 0
	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(50+rng.IntN(351)) * time.Millisecond)
		busy := true
		select {
		case <-done:
			busy = false
		default:
		}
		srv.Kill(t)
		killed++
		if busy {
			killedBusy++
		}
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		t.Logf("kill %d/%d (pushes in flight: %v, %d acknowledged so far)", k+1, kills, busy, n)
		srv = startServerOn(t, data)
		base.Store("http://" + srv.Addr)
	}
	<-done
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d kills (%d while pushes were in flight); %d images acknowledged of %d planned; %d push attempts, %d failed and retried",
		killed, killedBusy, len(acked), crashClients*crashImagesPer, attempts.Load(), failed.Load())
	if t.Failed() {
		t.FailNow()
	}
	if killedBusy == 0 {
		t.Errorf("no kill hit pushes in flight; the test proved nothing")
	}

	// Every acknowledged image pulls back byte-identical.
	verifyAll := func(when string) {
		t.Helper()
		for _, img := range acked {
			if err := p.verify(img); err != nil {
				t.Fatalf("%s: acknowledged image lost: %v", when, err)
			}
		}
	}
	verifyAll("after the kills")

	// fsck: after --repair of leftovers (blobs committed by pushes that
	// were never acknowledged), which must all be unreferenced.
	srv.Stop(t)
	referenced := map[digest.Digest]bool{}
	for _, img := range acked {
		for _, b := range img.blobs() {
			referenced[digest.FromBytes(b)] = true
		}
	}
	out, err := runBerth(t, "fsck", "--data", data, "--grace", "0")
	t.Logf("fsck:\n%s", fsckSummary(out))
	if err != nil {
		out, err = runBerth(t, "fsck", "--data", data, "--grace", "0", "--repair")
		t.Logf("fsck --repair:\n%s", fsckSummary(out))
		if err != nil {
			t.Fatalf("fsck --repair left problems: %v\n%s", err, out)
		}
		repaired := 0
		for _, line := range fsckProblems(out) {
			kind, rest, _ := strings.Cut(line, " ")
			ds, _, _ := strings.Cut(rest, " ")
			ds = strings.TrimSuffix(ds, ":")
			switch {
			case !strings.HasSuffix(line, "[repaired]"):
				t.Errorf("fsck problem not repaired: %s", line)
			case kind != "orphan-file" && kind != "tombstone":
				t.Errorf("fsck repaired something other than unreferenced leftovers: %s", line)
			case referenced[digest.Digest(ds)]:
				t.Errorf("fsck repaired a blob an acknowledged image references: %s", line)
			default:
				repaired++
			}
		}
		t.Logf("fsck --repair removed %d unreferenced leftovers", repaired)
		out, err = runBerth(t, "fsck", "--data", data, "--grace", "0")
		if err != nil || len(fsckProblems(out)) != 0 {
			t.Fatalf("fsck after --repair is not clean: %v\n%s", err, out)
		}
	} else if len(fsckProblems(out)) != 0 {
		t.Fatalf("fsck exited 0 but reported problems:\n%s", out)
	}

	// And the repair took nothing that was needed.
	srv = startServerOn(t, data)
	base.Store("http://" + srv.Addr)
	verifyAll("after fsck --repair")
	srv.Stop(t)
}

// pushAll pushes img's blobs (monolithic or in chunks of 16 KiB) and then
// its manifest; nil means the manifest PUT was acknowledged with 201.
func pushAll(p *pusher, img testImage, chunked bool) error {
	chunk := 0
	if chunked {
		chunk = 16 << 10
	}
	return pushChunks(p, img, chunk)
}

// pushChunks pushes img's blobs, each in PATCHes of chunk bytes (0: one
// monolithic POST), then its manifest.
func pushChunks(p *pusher, img testImage, chunk int) error {
	for _, b := range img.blobs() {
		var err error
		if chunk > 0 {
			err = p.chunked(img.Repo, b, chunk)
		} else {
			err = p.monolithic(img.Repo, b)
		}
		if err != nil {
			return err
		}
	}
	return p.putManifest(img.Repo, img.Tag, img.Manifest)
}

// seededBytes returns n bytes from rng, so a seed replays the same images.
func seededBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// fsckProblems returns the problem lines of `berth fsck` output (one per
// problem, starting with its kind), skipping log lines and the summary.
func fsckProblems(out string) []string {
	var ps []string
	for _, line := range strings.Split(out, "\n") {
		kind, _, _ := strings.Cut(line, " ")
		switch kind {
		case "corrupt", "wrong-size", "orphan-file", "missing-bytes", "dangling-link", "missing-blob", "tombstone":
			ps = append(ps, line)
		}
	}
	return ps
}

// fsckSummary is fsck's output without its log lines.
func fsckSummary(out string) string {
	var keep []string
	for _, line := range strings.Split(out, "\n") {
		if line != "" && !strings.HasPrefix(line, "time=") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}
