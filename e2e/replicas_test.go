package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/testenv/pgtest"
	"github.com/berth-dev/berth/internal/testenv/s3test"
)

// The scale-out topology: replicas of berth serve on one PostgreSQL
// database and one S3 bucket (MinIO), each with a data directory of its
// own that no other replica sees, behind a round-robin balancer.

// replicaSite is such a topology.
type replicaSite struct {
	env      []string // the BERTH_* settings every replica and command shares
	replicas []*server
	lb       *roundRobin
}

// sharedStores returns the settings of a new database and bucket.
func sharedStores(t *testing.T) []string {
	t.Helper()
	dsn := pgtest.DSN(t)
	srv, bucket := s3test.Bucket(t)
	return []string{
		"BERTH_METADATA_POSTGRES_DSN=" + dsn,
		"BERTH_STORAGE_S3_ENDPOINT=" + srv.Endpoint,
		"BERTH_STORAGE_S3_REGION=us-east-1",
		"BERTH_STORAGE_S3_BUCKET=" + bucket,
		"BERTH_STORAGE_S3_ACCESS_KEY=" + srv.AccessKey,
		"BERTH_STORAGE_S3_SECRET_KEY=" + srv.SecretKey,
		"BERTH_STORAGE_S3_PATH_STYLE=true",
		"BERTH_STORAGE_S3_PART_SIZE=5242880",
	}
}

// newReplicaSite starts n replicas on new shared stores; each replica's
// extra settings come from each(i).
func newReplicaSite(t *testing.T, n int, each func(i int) []string, env ...string) *replicaSite {
	t.Helper()
	s := &replicaSite{env: append(sharedStores(t), env...)}
	var addrs []string
	for i := range n {
		var extra []string
		if each != nil {
			extra = each(i)
		}
		srv := startServer(t, append(append([]string{}, s.env...), extra...)...)
		s.replicas = append(s.replicas, srv)
		addrs = append(addrs, srv.Addr)
	}
	s.lb = newRoundRobin(t, addrs...)
	return s
}

// fsck runs berth fsck against the shared stores (from a fresh data
// directory: nothing local matters) and fails the test unless it exits 0
// and reports no damage.
func (s *replicaSite) fsck(t *testing.T, when string) {
	t.Helper()
	out, err := runBerthWith(t, s.env, "fsck", "--data", t.TempDir(), "--grace", "0")
	if err != nil || len(fsckProblems(out)) > 0 {
		t.Errorf("berth fsck %s: %v\n%s", when, err, fsckSummary(out))
		return
	}
	t.Logf("berth fsck %s: %s", when, fsckSummary(out))
}

// TestReplicas: three replicas behind a round-robin balancer pass the
// conformance suite and the real clients; a chunked upload whose requests
// land on three replicas completes; the Flatpak index and the catalogue
// are the same from every replica right after a push; the flatpak client
// installs through the balancer.
func TestReplicas(t *testing.T) {
	site := newReplicaSite(t, 3, nil, "BERTH_VALIDATION_SPARSE_MANIFESTS=true")
	lb := site.lb

	t.Run("Conformance", func(t *testing.T) {
		runConformance(t, lb.Addr, "conformance-replicas", func() {})
	})
	t.Run("Interop", func(t *testing.T) { runInterop(t, lb.Addr) })

	t.Run("ChunkedAcrossReplicas", func(t *testing.T) {
		data := make([]byte, 13<<20+777)
		rng := rand.New(rand.NewPCG(13, 13))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		d := digest.FromBytes(data)
		lb.requests()
		p := &pusher{c: httpClient(), base: func() string { return lb.URL }}
		h, _, err := p.expect(http.StatusAccepted, "POST upload", "POST", "/v2/replicas/chunked/blobs/uploads/", nil)
		if err != nil {
			t.Fatal(err)
		}
		loc := h.Get("Location")
		cuts := []int{0, 6 << 20, 12<<20 + 5, len(data)}
		for i := 1; i < len(cuts); i++ {
			h, _, err = p.expect(http.StatusAccepted, "PATCH chunk", "PATCH", loc, data[cuts[i-1]:cuts[i]],
				"Content-Range", fmt.Sprintf("%d-%d", cuts[i-1], cuts[i]-1), "Content-Type", "application/octet-stream")
			if err != nil {
				t.Fatal(err)
			}
			loc = h.Get("Location")
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		if _, _, err := p.expect(http.StatusCreated, "PUT upload", "PUT", loc+sep+"digest="+d.String(), nil); err != nil {
			t.Fatal(err)
		}
		patched := map[int]bool{}
		for _, hp := range lb.requests() {
			if hp.Method == http.MethodPatch {
				patched[hp.Backend] = true
			}
		}
		if len(patched) != 3 {
			t.Errorf("the three PATCHes went to %d replicas, want 3", len(patched))
		}
		_, body, err := p.expect(http.StatusOK, "GET blob", "GET", "/v2/replicas/chunked/blobs/"+d.String(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body, data) {
			t.Fatal("the blob read back through the balancer differs from the chunks pushed")
		}
	})

	t.Run("SameIndexEverywhere", func(t *testing.T) {
		p := &pusher{c: httpClient(), base: func() string { return lb.URL }}
		for i := range 3 {
			ref := fmt.Sprintf("app/org.example.Replica%d/x86_64/stable", i)
			cfg, _ := json.Marshal(map[string]any{
				"architecture": "amd64", "os": "linux",
				"config": map[string]any{"Labels": map[string]string{"org.flatpak.ref": ref}},
				"rootfs": map[string]any{"type": "layers", "diff_ids": []string{}},
			})
			img := makeTestImage("replicas/app", "latest", cfg, []byte(fmt.Sprintf("layer of %s", ref)))
			if err := pushAll(p, img, false); err != nil {
				t.Fatal(err)
			}
			// Right after the push, every replica answers the same,
			// and shows it.
			var first string
			for r, srv := range site.replicas {
				for _, path := range []string{"/index/static?label%3Aorg.flatpak.ref%3Aexists=1", "/api/v1/search?q=Replica"} {
					body := getBody(t, "http://"+srv.Addr+path)
					if path[1] == 'i' && !strings.Contains(body, ref) {
						t.Errorf("replica %d's index right after the push of %s does not list it", r, ref)
					}
					if r == 0 {
						first += body
					}
				}
			}
			for r, srv := range site.replicas[1:] {
				got := getBody(t, "http://"+srv.Addr+"/index/static?label%3Aorg.flatpak.ref%3Aexists=1") +
					getBody(t, "http://"+srv.Addr+"/api/v1/search?q=Replica")
				if got != first {
					t.Errorf("replica %d answers differently from replica 0 after push %d", r+1, i)
				}
			}
		}
	})

	t.Run("FlatpakInstall", func(t *testing.T) {
		env := newFlatpakEnv(t)
		for _, n := range []string{"org.berth.Platform", "org.berth.Hello"} {
			env.push(t, lb.Addr, n)
		}
		u := env.user(t, lb.URL)
		out := u.flatpak(t, "remote-ls", "--columns=ref", "berthtest")
		assertRefs(t, "remote-ls through the balancer", out, []string{env.fx["org.berth.Hello"].Ref, env.fx["org.berth.Platform"].Ref}, nil)
		u.flatpak(t, "install", "-y", "--noninteractive", "berthtest", "org.berth.Hello")
		out = u.flatpak(t, "list", "--columns=ref")
		assertRefs(t, "list after install through the balancer", out, []string{env.fx["org.berth.Hello"].Ref}, nil)
	})

	site.fsck(t, "after the replica tests")
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := httpClient().Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(b)
}

// replicaImage is the i-th image of pusher c: a small config and a layer
// of its own plus one of a few shared layers.
func replicaImage(c, i int, shared [][]byte, rng *rand.Rand) testImage {
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Labels": map[string]string{"client": strconv.Itoa(c), "round": strconv.Itoa(i)}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{}},
	})
	return makeTestImage(fmt.Sprintf("replicas/r%d", c%2), fmt.Sprintf("c%d-t%d", c, i%3), cfg,
		shared[(c+i)%len(shared)], seededBytes(rng, 1<<10+rng.IntN(8<<10)))
}

// pushRetrying pushes img until it is acknowledged, retrying what a
// replica dying or gc may take away (connection errors, 5xx,
// MANIFEST_BLOB_UNKNOWN), at most attempts times.
func pushRetrying(p *pusher, img testImage, attempts int, retries *atomic.Int64) error {
	var last error
	for range attempts {
		last = pushAll(p, img, false)
		if last == nil {
			return nil
		}
		var se *statusError
		switch {
		case !errors.As(last, &se): // connection refused or reset: not acknowledged
		case se.status >= 500:
		case se.status == http.StatusBadRequest && specCode(se.body) == "MANIFEST_BLOB_UNKNOWN":
		default:
			return last
		}
		retries.Add(1)
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("push of %s:%s not acknowledged after %d attempts: %v", img.Repo, img.Tag, attempts, last)
}

// TestReplicaKilled: four clients push through the balancer; one replica
// is killed with SIGKILL in the middle. Every push acknowledged pulls
// complete afterwards, the others keep serving, fsck is clean.
func TestReplicaKilled(t *testing.T) {
	site := newReplicaSite(t, 3, nil)
	rng := rand.New(rand.NewPCG(uint64(testSeed(t, "BERTH_REPLICAS_SEED")), 1))
	shared := [][]byte{seededBytes(rng, 40<<10), seededBytes(rng, 24<<10)}
	const clients, rounds = 4, 24
	plans := make([][]testImage, clients)
	for c := range plans {
		for i := range rounds {
			plans[c] = append(plans[c], replicaImage(c, i, shared, rng))
		}
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil,
		DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}}
	p := &pusher{c: client, base: func() string { return site.lb.URL }}
	var (
		mu      sync.Mutex
		acked   = map[string]testImage{}
		retries atomic.Int64
		pushed  atomic.Int64
		wg      sync.WaitGroup
	)
	for c := range clients {
		wg.Go(func() {
			for _, img := range plans[c] {
				if err := pushRetrying(p, img, 50, &retries); err != nil {
					t.Errorf("client %d: %v", c, err)
					return
				}
				pushed.Add(1)
				mu.Lock()
				acked[img.Repo+":"+img.Tag] = img
				mu.Unlock()
			}
		})
	}
	for pushed.Load() < clients*rounds/3 {
		time.Sleep(10 * time.Millisecond)
	}
	site.replicas[1].Kill(t)
	t.Logf("replica 1 killed after %d acknowledged pushes", pushed.Load())
	wg.Wait()
	t.Logf("%d pushes acknowledged, %d attempts retried", pushed.Load(), retries.Load())
	if t.Failed() {
		t.FailNow()
	}
	for key, img := range acked {
		if err := p.verify(img); err != nil {
			t.Errorf("%s after the kill: %v", key, err)
		}
	}
	// The survivors serve, each on its own.
	for _, r := range []int{0, 2} {
		q := &pusher{c: client, base: func() string { return "http://" + site.replicas[r].Addr }}
		for key, img := range acked {
			if err := q.verify(img); err != nil {
				t.Errorf("%s from replica %d: %v", key, r, err)
			}
			break
		}
	}
	site.fsck(t, "after a replica was killed")
}

// TestReplicaGCRace: two replicas collect garbage every second with no
// grace period while a third takes pushes that share layers and move
// tags. Nothing acknowledged is lost: every tagged image pulls complete,
// and fsck is clean.
func TestReplicaGCRace(t *testing.T) {
	site := newReplicaSite(t, 3, func(i int) []string {
		if i < 2 {
			// Two collectors with no grace, each every second: a run
			// every 500 ms on average, often enough that most pushes
			// meet one, rarely enough that a push (slower with the race
			// detector on, through PostgreSQL and S3: 250-300 ms in CI)
			// gets through between two. At 600 ms a push took 50 tries
			// in a row once, each one meeting a run: a liveness bound of
			// the test, not a lost push (none was acknowledged).
			return []string{"BERTH_GC_INTERVAL=1s", "BERTH_GC_GRACE=0s", "BERTH_GC_UNTAGGED_AFTER=1ns"}
		}
		return []string{"BERTH_GC_INTERVAL=0s"}
	})
	rng := rand.New(rand.NewPCG(uint64(testSeed(t, "BERTH_REPLICAS_SEED")), 2))
	shared := [][]byte{seededBytes(rng, 30<<10), seededBytes(rng, 20<<10), seededBytes(rng, 10<<10)}
	const clients, rounds = 4, 30
	plans := make([][]testImage, clients)
	for c := range plans {
		for i := range rounds {
			plans[c] = append(plans[c], replicaImage(c, i, shared, rng))
		}
	}
	pushTo := "http://" + site.replicas[2].Addr
	p := &pusher{c: httpClient(), base: func() string { return pushTo }}
	var (
		mu      sync.Mutex
		tagged  = map[string]testImage{}
		retries atomic.Int64
		wg      sync.WaitGroup
	)
	for c := range clients {
		wg.Go(func() {
			for _, img := range plans[c] {
				if err := pushRetrying(p, img, 2*gcRaceAttempts, &retries); err != nil {
					t.Errorf("client %d: %v", c, err)
					return
				}
				mu.Lock()
				tagged[img.Repo+":"+img.Tag] = img
				mu.Unlock()
				if err := p.verify(img); err != nil {
					t.Errorf("client %d: pull right after push: %v", c, err)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d pushes acknowledged, %d attempts retried", clients*rounds, retries.Load())
	if t.Failed() {
		t.FailNow()
	}
	for key, img := range tagged {
		if err := p.verify(img); err != nil {
			t.Errorf("%s after the race: %v", key, err)
		}
	}
	for r := range 2 {
		site.replicas[r].Stop(t)
		runs, freed := gcActivity(t, site.replicas[r].LogPath)
		t.Logf("replica %d ran gc %d times and deleted %d manifests and %d blobs", r, runs, freed["manifests"], freed["blobs"])
		if runs == 0 {
			t.Errorf("replica %d never ran gc", r)
		}
	}
	site.fsck(t, "after gc on two replicas raced pushes on a third")
}

// tcpProxy forwards TCP connections to target and can cut them all at
// once, as a network failure or a database failover does.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]bool
	cuts   atomic.Int64
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *tcpProxy) serve(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[u] = true, true
	p.mu.Unlock()
	go func() { io.Copy(u, c); u.Close() }()
	io.Copy(c, u)
	c.Close()
}

// cut closes every connection through the proxy.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
	p.cuts.Add(1)
}

// TestReplicaDatabaseCut: the connections of two replicas to PostgreSQL
// are cut again and again while four clients push through the balancer
// (transactions die in the middle). Requests that meet a cut get a 5xx
// and are retried; every acknowledged push pulls complete afterwards, and
// fsck finds no manifest without its blobs.
func TestReplicaDatabaseCut(t *testing.T) {
	stores := sharedStores(t)
	var dsn string
	for _, e := range stores {
		if v, ok := strings.CutPrefix(e, "BERTH_METADATA_POSTGRES_DSN="); ok {
			dsn = v
		}
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newTCPProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	site := &replicaSite{env: stores}
	var addrs []string
	for range 2 {
		srv := startServer(t, append(append([]string{}, stores...), "BERTH_METADATA_POSTGRES_DSN="+u.String())...)
		site.replicas = append(site.replicas, srv)
		addrs = append(addrs, srv.Addr)
	}
	site.lb = newRoundRobin(t, addrs...)

	rng := rand.New(rand.NewPCG(uint64(testSeed(t, "BERTH_REPLICAS_SEED")), 3))
	shared := [][]byte{seededBytes(rng, 20<<10), seededBytes(rng, 12<<10)}
	const clients, rounds = 4, 20
	p := &pusher{c: httpClient(), base: func() string { return site.lb.URL }}
	var (
		mu      sync.Mutex
		acked   = map[string]testImage{}
		retries atomic.Int64
		wg      sync.WaitGroup
		done    = make(chan struct{})
	)
	// A cut every 300 ms at most, and only once two more pushes were
	// acknowledged since the last: the clients make progress however slow
	// a push is (the race detector), and most pushes meet a cut.
	var acks atomic.Int64
	go func() {
		for last := int64(0); ; {
			select {
			case <-done:
				return
			case <-time.After(300 * time.Millisecond):
			}
			if n := acks.Load(); n >= last+2 {
				proxy.cut()
				last = n
			}
		}
	}()
	for c := range clients {
		plan := make([]testImage, rounds)
		for i := range plan {
			plan[i] = replicaImage(c, i, shared, rng)
		}
		wg.Go(func() {
			for _, img := range plan {
				if err := pushRetrying(p, img, 50, &retries); err != nil {
					t.Errorf("client %d: %v", c, err)
					return
				}
				mu.Lock()
				acked[img.Repo+":"+img.Tag] = img
				mu.Unlock()
				acks.Add(1)
			}
		})
	}
	wg.Wait()
	close(done)
	t.Logf("%d pushes acknowledged; the database connections were cut %d times; %d attempts retried",
		clients*rounds, proxy.cuts.Load(), retries.Load())
	if retries.Load() == 0 {
		t.Error("no push met a cut connection: the test did not exercise the fault")
	}
	for key, img := range acked {
		if err := p.verify(img); err != nil {
			t.Errorf("%s after the cuts: %v", key, err)
		}
	}
	site.fsck(t, "after the database connections were cut")
}

// flakyS3 stands between the replicas and MinIO and answers a share of
// the requests with 503 SlowDown or 500 InternalError, as an overloaded
// S3 service does.
type flakyS3 struct {
	*httptest.Server
	failed atomic.Int64
	on     atomic.Bool
}

func newFlakyS3(t *testing.T, endpoint string, oneIn int) *flakyS3 {
	t.Helper()
	target, _ := url.Parse(endpoint)
	f := &flakyS3{}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host
	}}
	var n atomic.Int64
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if i := n.Add(1); f.on.Load() && i%int64(oneIn) == 0 {
			f.failed.Add(1)
			io.Copy(io.Discard, r.Body)
			code, status := "SlowDown", http.StatusServiceUnavailable
			if i%(2*int64(oneIn)) == 0 {
				code, status = "InternalError", http.StatusInternalServerError
			}
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(status)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected</Message></Error>`, code)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

// TestReplicaS3Faults: one S3 request in four fails (SlowDown or 500)
// while four clients push chunked and monolithic uploads through two
// replicas. What the SDK's retries cannot absorb reaches the client as a
// 5xx in the spec's error format, and the client retries; every
// acknowledged push pulls complete; fsck (straight to MinIO) is clean.
func TestReplicaS3Faults(t *testing.T) {
	stores := sharedStores(t)
	var endpoint string
	for _, e := range stores {
		if v, ok := strings.CutPrefix(e, "BERTH_STORAGE_S3_ENDPOINT="); ok {
			endpoint = v
		}
	}
	flaky := newFlakyS3(t, endpoint, 4)
	site := &replicaSite{env: stores}
	var addrs []string
	for range 2 {
		srv := startServer(t, append(append([]string{}, stores...), "BERTH_STORAGE_S3_ENDPOINT="+flaky.URL)...)
		site.replicas = append(site.replicas, srv)
		addrs = append(addrs, srv.Addr)
	}
	site.lb = newRoundRobin(t, addrs...)
	flaky.on.Store(true)

	rng := rand.New(rand.NewPCG(uint64(testSeed(t, "BERTH_REPLICAS_SEED")), 4))
	shared := [][]byte{seededBytes(rng, 6<<20), seededBytes(rng, 12<<10)} // one big enough for parts
	const clients, rounds = 4, 6
	p := &pusher{c: httpClient(), base: func() string { return site.lb.URL }}
	var (
		mu      sync.Mutex
		acked   = map[string]testImage{}
		retries atomic.Int64
		spec5xx atomic.Int64
		wg      sync.WaitGroup
	)
	for c := range clients {
		plan := make([]testImage, rounds)
		for i := range plan {
			plan[i] = replicaImage(c, i, shared, rng)
		}
		wg.Go(func() {
			for i, img := range plan {
				var last error
				for range 40 {
					chunk := 0 // monolithic, then chunked in 2 MiB PATCHes
					if i%2 == 1 {
						chunk = 2 << 20
					}
					if last = pushChunks(p, img, chunk); last == nil {
						break
					}
					var se *statusError
					if !errors.As(last, &se) || se.status < 500 {
						t.Errorf("client %d: not a retriable 5xx: %v", c, last)
						return
					}
					if specCode(se.body) == "" {
						t.Errorf("client %d: a 5xx without the spec's error body: %s", c, se.body)
					}
					spec5xx.Add(1)
					retries.Add(1)
				}
				if last != nil {
					t.Errorf("client %d: push of %s:%s not acknowledged: %v", c, img.Repo, img.Tag, last)
					return
				}
				mu.Lock()
				acked[img.Repo+":"+img.Tag] = img
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	flaky.on.Store(false)
	t.Logf("%d pushes acknowledged; %d S3 requests failed; %d pushes answered 5xx and retried", clients*rounds, flaky.failed.Load(), spec5xx.Load())
	if flaky.failed.Load() == 0 {
		t.Error("no S3 request failed: the test did not exercise the fault")
	}
	for key, img := range acked {
		if err := p.verify(img); err != nil {
			t.Errorf("%s after the faults: %v", key, err)
		}
	}
	site.fsck(t, "after S3 faults")
}
