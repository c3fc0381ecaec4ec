package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/meta/sqlite"
)

// A real SQLite store, real receivers on 127.0.0.1, and waits that end at
// a generous deadline (a failure, never a timing assertion).

const deadline = 30 * time.Second

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "meta.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// push stores a manifest named name in repo, with tags: a manifest.push
// event and one tag.update per tag.
func push(t *testing.T, s *sqlite.Store, repo, name string, tags ...string) digest.Digest {
	t.Helper()
	ctx := meta.WithActor(t.Context(), "alice")
	cfg := digest.FromString("config")
	if err := s.LinkBlob(ctx, repo, cfg, 6); err != nil {
		t.Fatal(err)
	}
	c := fmt.Appendf(nil, `{"name":%q}`, name)
	m := &meta.Manifest{Repo: repo, Digest: digest.FromBytes(c), MediaType: "application/vnd.oci.image.manifest.v1+json",
		Content: c, Refs: []meta.Ref{{Digest: cfg, Kind: meta.RefBlob}}}
	if err := s.PutManifest(ctx, m, tags...); err != nil {
		t.Fatal(err)
	}
	return m.Digest
}

// delivery is one request a receiver got.
type delivery struct {
	header http.Header
	body   []byte
	msg    Message
	status int
	path   string
}

// receiver records every request and answers with answer(n) (n counts
// requests from 0).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []delivery
	answer func(n int) int
}

func newReceiver(t *testing.T, answer func(n int) int) *receiver {
	r := &receiver{answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var msg Message
		_ = json.Unmarshal(body, &msg)
		r.mu.Lock()
		status := r.answer(len(r.got))
		r.got = append(r.got, delivery{header: req.Header.Clone(), body: body, msg: msg, status: status, path: req.URL.Path})
		r.mu.Unlock()
		if status == http.StatusFound {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// acked returns the messages answered 2xx, in arrival order.
func (r *receiver) acked() []Message {
	var out []Message
	for _, d := range r.deliveries() {
		if d.status/100 == 2 {
			out = append(out, d.msg)
		}
	}
	return out
}

// countMetrics is a Metrics that counts.
type countMetrics struct {
	mu                         sync.Mutex
	delivered, failed, dropped map[string]int
}

func newCountMetrics() *countMetrics {
	return &countMetrics{delivered: map[string]int{}, failed: map[string]int{}, dropped: map[string]int{}}
}
func (m *countMetrics) Delivered(ep string) { m.mu.Lock(); m.delivered[ep]++; m.mu.Unlock() }
func (m *countMetrics) Failed(ep string)    { m.mu.Lock(); m.failed[ep]++; m.mu.Unlock() }
func (m *countMetrics) Dropped(ep string, n int) {
	m.mu.Lock()
	m.dropped[ep] += n
	m.mu.Unlock()
}
func (m *countMetrics) get(which map[string]int, ep string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return which[ep]
}

// waitFor polls cond until it holds, failing the test at the deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *logBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// start builds a Notifier with fast retries and runs it until the test
// ends or stop is called.
func start(t *testing.T, s Store, opts Options, logs io.Writer) (stop func()) {
	t.Helper()
	if opts.RetryMin == 0 {
		opts.RetryMin, opts.RetryMax = 5*time.Millisecond, 40*time.Millisecond
	}
	opts.PollInterval = 10 * time.Millisecond
	if logs == nil {
		logs = io.Discard
	}
	n, err := New(t.Context(), s, opts, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

const secret = "webhook-secret-123"

// TestDeliveryOrderRetriesResume: a receiver that fails its first three
// requests gets every event, in outbox order, signed; the failed event is
// retried (same ID) and blocks the later ones; a new Notifier on the same
// store resumes after the last acknowledged event.
func TestDeliveryOrderRetriesResume(t *testing.T) {
	s := openStore(t)
	rcv := newReceiver(t, func(n int) int {
		if n < 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	m := newCountMetrics()
	opts := Options{Endpoints: []Endpoint{{Name: "ci", URL: rcv.URL + "/hook", Secret: secret, AllowPrivate: true}}, Metrics: m}
	stop := start(t, s, opts, nil)
	push(t, s, "team/a", "one", "v1")
	push(t, s, "team/b", "two", "latest")
	push(t, s, "team/a", "three", "v1")
	want, err := s.Events(t.Context(), 0, -1)
	if err != nil || len(want) != 6 {
		t.Fatalf("outbox: %d events, %v", len(want), err)
	}
	// The receiver acknowledges before the notifier has read the answer:
	// wait for the notifier to count the sixth delivery too, or stopping
	// it below could cut that answer off, and the event would rightly be
	// sent again (at least once).
	waitFor(t, "6 acknowledged deliveries", func() bool {
		return len(rcv.acked()) == 6 && m.get(m.delivered, "ci") == 6
	})

	all := rcv.deliveries()
	if len(all) != 9 {
		t.Errorf("%d requests, want 9 (3 failed, 6 acknowledged)", len(all))
	}
	for i := range 4 {
		// The first event is retried until acknowledged, before any other.
		if all[i].msg.ID != want[0].ID || all[i].header.Get(HeaderAttempt) != fmt.Sprint(i+1) {
			t.Errorf("request %d: event %s attempt %s, want the first event (%s) attempt %d",
				i, all[i].msg.ID, all[i].header.Get(HeaderAttempt), want[0].ID, i+1)
		}
	}
	for i, msg := range rcv.acked() {
		ev := want[i]
		if msg.ID != ev.ID || msg.Seq != ev.Seq || msg.Type != ev.Type || msg.Repository != ev.Repo || msg.Actor != "alice" {
			t.Errorf("delivery %d = %+v, want event %+v", i, msg, ev)
		}
		if !bytes.Equal(msg.Data, ev.Payload) {
			t.Errorf("delivery %d data = %s, want %s", i, msg.Data, ev.Payload)
		}
	}
	for i, d := range all {
		h := d.header
		if h.Get(HeaderEventID) != d.msg.ID || h.Get(HeaderEvent) != d.msg.Type || h.Get("Content-Type") != "application/json" {
			t.Errorf("request %d: headers %v do not match its body", i, h)
		}
		ts := h.Get(HeaderTimestamp)
		if sec, err := strconv.ParseInt(ts, 10, 64); err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Hour {
			t.Errorf("request %d: timestamp %q is not the Unix time now", i, ts)
		}
		if !Verify([]byte(secret), ts, d.body, h.Get(HeaderSignature)) {
			t.Errorf("request %d: signature %q does not verify", i, h.Get(HeaderSignature))
		}
		if d.path != "/hook" {
			t.Errorf("request %d went to %s", i, d.path)
		}
	}
	if m.get(m.delivered, "ci") != 6 || m.get(m.failed, "ci") != 3 {
		t.Errorf("metrics: delivered %d failed %d, want 6 and 3", m.get(m.delivered, "ci"), m.get(m.failed, "ci"))
	}

	// Stop; changes while no notifier runs are delivered by the next one,
	// and nothing acknowledged is sent again.
	stop()
	if c, _ := s.EventCursor(t.Context(), consumer("ci")); c != want[5].Seq {
		t.Errorf("saved cursor = %d, want %d", c, want[5].Seq)
	}
	if err := s.DeleteTag(t.Context(), "team/a", "v1"); err != nil {
		t.Fatal(err)
	}
	start(t, s, opts, nil)
	waitFor(t, "the delete after a restart", func() bool { return len(rcv.acked()) == 7 })
	if got := rcv.acked()[6]; got.Type != meta.EventTagDelete || got.Seq != want[5].Seq+1 {
		t.Errorf("after restart: %+v, want the tag.delete", got)
	}
	if n := len(rcv.deliveries()); n != 10 {
		t.Errorf("%d requests in all, want 10: something acknowledged was sent again", n)
	}
}

// TestPrivateRefused: an endpoint on 127.0.0.1 is refused at connect time
// (logged, counted as failures, retried), unless it allows private targets.
func TestPrivateRefused(t *testing.T) {
	s := openStore(t)
	rcv := newReceiver(t, func(int) int { return http.StatusOK })
	m := newCountMetrics()
	var logs logBuffer
	start(t, s, Options{Metrics: m, Endpoints: []Endpoint{
		{Name: "private", URL: rcv.URL + "/private", Secret: secret},
		{Name: "allowed", URL: rcv.URL + "/allowed", Secret: secret, AllowPrivate: true},
		// A name that resolves to loopback is refused too: the check is
		// on the address connected to.
		{Name: "byname", URL: strings.Replace(rcv.URL, "127.0.0.1", "localhost", 1) + "/byname", Secret: secret},
	}}, &logs)
	push(t, s, "app", "one")
	waitFor(t, "the allowed endpoint's delivery", func() bool { return len(rcv.acked()) == 1 })
	waitFor(t, "retried refusals", func() bool { return m.get(m.failed, "private") >= 2 && m.get(m.failed, "byname") >= 2 })
	for _, d := range rcv.deliveries() {
		if d.path != "/allowed" {
			t.Errorf("a refused endpoint got a request at %s", d.path)
		}
	}
	if m.get(m.delivered, "private") != 0 || m.get(m.delivered, "allowed") != 1 {
		t.Errorf("delivered: private %d, allowed %d", m.get(m.delivered, "private"), m.get(m.delivered, "allowed"))
	}
	out := logs.String()
	if !strings.Contains(out, "endpoint=private") || !strings.Contains(out, "not a public address") {
		t.Errorf("the refusal is not logged:\n%s", out)
	}
	if strings.Contains(out, secret) || strings.Contains(out, rcv.URL) {
		t.Errorf("the log holds the secret or the URL:\n%s", out)
	}
}

// TestNoRedirects: a 3xx is a failed attempt, and its Location is never
// requested.
func TestNoRedirects(t *testing.T) {
	s := openStore(t)
	rcv := newReceiver(t, func(n int) int {
		if n < 2 {
			return http.StatusFound // Location: /elsewhere on the same server
		}
		return http.StatusOK
	})
	m := newCountMetrics()
	start(t, s, Options{Metrics: m, Endpoints: []Endpoint{{Name: "r", URL: rcv.URL + "/hook", AllowPrivate: true}}}, nil)
	push(t, s, "app", "one")
	waitFor(t, "a delivery after two redirects", func() bool { return len(rcv.acked()) == 1 })
	for _, d := range rcv.deliveries() {
		if d.path != "/hook" {
			t.Errorf("a redirect was followed to %s", d.path)
		}
		if d.header.Get(HeaderSignature) != "" {
			t.Error("a signature without a secret")
		}
	}
	if got := len(rcv.deliveries()); got != 2+len(rcv.acked()) || m.get(m.failed, "r") != 2 {
		t.Errorf("%d requests, %d failures; want the 2 redirects counted as failures", got, m.get(m.failed, "r"))
	}
}

// TestBacklog: an endpoint more than Backlog events behind skips the
// oldest, counts them as dropped, and delivers the rest in order.
func TestBacklog(t *testing.T) {
	s := openStore(t)
	var mu sync.Mutex
	failing := false
	rcv := newReceiver(t, func(int) int {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	m := newCountMetrics()
	opts := Options{Backlog: 3, Metrics: m, Endpoints: []Endpoint{
		{Name: "slow", URL: rcv.URL, AllowPrivate: true, Events: []string{meta.EventManifestPush}},
	}}
	if _, err := New(t.Context(), s, opts, nil); err != nil { // the cursor is made now, at 0
		t.Fatal(err)
	}
	for i := range 10 {
		push(t, s, "app", fmt.Sprint(i))
	}
	all, _ := s.Events(t.Context(), 0, -1)
	if len(all) != 10 {
		t.Fatalf("%d events", len(all))
	}
	start(t, s, opts, nil)
	waitFor(t, "the newest 3 delivered", func() bool { return len(rcv.acked()) == 3 })
	if d := m.get(m.dropped, "slow"); d != 7 {
		t.Errorf("dropped %d, want 7", d)
	}
	for i, msg := range rcv.acked() {
		if msg.Seq != all[7+i].Seq {
			t.Errorf("delivery %d: seq %d, want %d", i, msg.Seq, all[7+i].Seq)
		}
	}

	// Behind while retrying: the event being retried is dropped too.
	mu.Lock()
	failing = true
	mu.Unlock()
	push(t, s, "app", "10")
	waitFor(t, "a failed attempt", func() bool { return m.get(m.failed, "slow") >= 1 })
	for i := 11; i < 15; i++ {
		push(t, s, "app", fmt.Sprint(i))
	}
	// A tag.update is not wanted: behind, but not counted as dropped.
	push(t, s, "other", "x", "t")
	waitFor(t, "the retried event dropped", func() bool { return m.get(m.dropped, "slow") >= 9 })
	mu.Lock()
	failing = false
	mu.Unlock()
	waitFor(t, "the newest delivered", func() bool {
		acked := rcv.acked()
		return len(acked) > 0 && acked[len(acked)-1].Repository == "other"
	})
	acked := rcv.acked()
	var seqs []int64
	for _, msg := range acked[3:] {
		seqs = append(seqs, msg.Seq)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Errorf("out of order after the drop: %v", seqs)
		}
	}
	if d := m.get(m.dropped, "slow"); d+len(acked) != 16 {
		t.Errorf("dropped %d + delivered %d != 16 pushes", d, len(acked))
	}
}

// TestPrune: the pruner keeps what an endpoint has not passed, and with no
// endpoint still prunes.
func TestPrune(t *testing.T) {
	s := openStore(t)
	push(t, s, "app", "one")
	push(t, s, "app", "two")
	stop := start(t, s, Options{Retention: time.Nanosecond, PruneEvery: 5 * time.Millisecond}, nil)
	waitFor(t, "pruning with no endpoint", func() bool {
		evs, err := s.Events(t.Context(), 0, -1)
		return err == nil && len(evs) == 0
	})
	stop()

	// An endpoint that cannot take its events holds them.
	rcv := newReceiver(t, func(int) int { return http.StatusInternalServerError })
	opts := Options{Retention: time.Nanosecond, PruneEvery: 5 * time.Millisecond,
		Endpoints: []Endpoint{{Name: "down", URL: rcv.URL, AllowPrivate: true}}}
	if _, err := New(t.Context(), s, opts, nil); err != nil { // its cursor starts now
		t.Fatal(err)
	}
	push(t, s, "app", "three")
	start(t, s, opts, nil)
	waitFor(t, "attempts", func() bool { return len(rcv.deliveries()) >= 3 })
	if evs, _ := s.Events(t.Context(), 0, -1); len(evs) != 1 {
		t.Errorf("the undelivered event was pruned: %d left", len(evs))
	}
}
