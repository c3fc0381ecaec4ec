package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// heldReceiver answers 204 to each request once the test releases it, and
// says on got when a request has arrived.
type heldReceiver struct {
	*httptest.Server
	got     chan Message
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	seqs    []int64
}

func newHeldReceiver(t *testing.T) *heldReceiver {
	r := &heldReceiver{got: make(chan Message, 16), release: make(chan struct{})}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var msg Message
		if err := json.NewDecoder(req.Body).Decode(&msg); err != nil {
			t.Errorf("a delivery's body: %v", err)
		}
		r.mu.Lock()
		r.seqs = append(r.seqs, msg.Seq)
		r.mu.Unlock()
		r.got <- msg
		select {
		case <-r.release:
		case <-req.Context().Done():
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	t.Cleanup(r.answer) // before Close (cleanups run last first)
	return r
}

// answer lets every request, held or to come, be answered.
func (r *heldReceiver) answer() { r.once.Do(func() { close(r.release) }) }

func (r *heldReceiver) requests() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.seqs...)
}

// run runs n until the returned cancel is called; done closes when Run
// has returned.
func run(n *Notifier) (cancel context.CancelFunc, done chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	return cancel, done
}

func waitDone(t *testing.T, done chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(deadline):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestStopFinishesDelivery: a delivery in flight when the notifier stops
// is given StopGrace to finish; acknowledged in that time, it is recorded
// and the next process does not send it again.
func TestStopFinishesDelivery(t *testing.T) {
	s := openStore(t)
	rcv := newHeldReceiver(t)
	opts := Options{Endpoints: []Endpoint{{Name: "ci", URL: rcv.URL, AllowPrivate: true}},
		PollInterval: 10 * time.Millisecond, StopGrace: deadline}
	n, err := New(t.Context(), s, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel, done := run(n)
	defer cancel()
	push(t, s, "team/a", "one") // one event: manifest.push
	first := <-rcv.got
	cancel() // Run's context has ended before the receiver answers
	rcv.answer()
	waitDone(t, done, "the notifier to stop")
	if c, err := s.EventCursor(t.Context(), consumer("ci")); err != nil || c != first.Seq {
		t.Fatalf("saved cursor = %d (%v), want %d: the acknowledged delivery was not recorded", c, err, first.Seq)
	}

	// The next process starts after it.
	n2, err := New(t.Context(), s, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel2, done2 := run(n2)
	push(t, s, "team/a", "two")
	second := <-rcv.got
	cancel2()
	waitDone(t, done2, "the second notifier to stop")
	if second.Seq != first.Seq+1 {
		t.Errorf("the next process sent seq %d, want %d (the first again?)", second.Seq, first.Seq+1)
	}
	if got := rcv.requests(); len(got) != 2 {
		t.Errorf("requests for seqs %v, want two", got)
	}
}

// TestStopGraceBounds: a receiver that does not answer holds shutdown
// only for StopGrace; its event stays undelivered (sent again later).
func TestStopGraceBounds(t *testing.T) {
	s := openStore(t)
	rcv := newHeldReceiver(t)
	opts := Options{Endpoints: []Endpoint{{Name: "ci", URL: rcv.URL, AllowPrivate: true, Timeout: time.Hour}},
		PollInterval: 10 * time.Millisecond, StopGrace: 50 * time.Millisecond}
	n, err := New(t.Context(), s, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.EventCursor(t.Context(), consumer("ci"))
	if err != nil {
		t.Fatal(err)
	}
	cancel, done := run(n)
	defer cancel()
	push(t, s, "team/a", "one")
	<-rcv.got
	cancel()
	// The endpoint's timeout is an hour: only the grace ends the attempt.
	waitDone(t, done, "the notifier to stop after its grace")
	if c, err := s.EventCursor(t.Context(), consumer("ci")); err != nil || c != before {
		t.Errorf("saved cursor = %d (%v), want %d: an unanswered delivery was recorded", c, err, before)
	}
}

// TestLapsedLeaseRereadsCursor: a worker whose lease was last renewed a
// LeaseTTL ago may have stalled while another replica held the lease and
// delivered; renewing it must re-read the cursor, and the page it had read
// must not send what the other replica delivered.
func TestLapsedLeaseRereadsCursor(t *testing.T) {
	s := openStore(t)
	rcv := newReceiver(t, func(int) int { return http.StatusNoContent })
	ttl := time.Minute
	n, err := New(t.Context(), s, Options{Endpoints: []Endpoint{{Name: "ci", URL: rcv.URL, AllowPrivate: true}},
		Holder: "replica-a", LeaseTTL: ttl}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := n.workers[0]
	if !w.holdLease(t.Context()) {
		t.Fatal("replica-a did not take a free lease")
	}
	for i := range 5 {
		push(t, s, "team/a", fmt.Sprint("image-", i), "v1") // 10 events
	}
	evs, err := s.Events(t.Context(), 0, -1)
	if err != nil || len(evs) != 10 {
		t.Fatalf("outbox: %d events, %v", len(evs), err)
	}
	// While replica-a stalled past its lease, another replica took it,
	// delivered the first six events and let the lease go.
	w.renewed = time.Now().Add(-ttl)
	if err := s.ReleaseLease(t.Context(), w.consumer, "replica-a"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.HoldLease(t.Context(), w.consumer, "replica-b", ttl); !ok || err != nil {
		t.Fatalf("replica-b could not take the lease: %v %v", ok, err)
	}
	if err := s.SetEventCursor(t.Context(), w.consumer, evs[5].Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseLease(t.Context(), w.consumer, "replica-b"); err != nil {
		t.Fatal(err)
	}

	if _, err := w.step(t.Context()); err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, m := range rcv.acked() {
		got = append(got, m.Seq)
	}
	want := []int64{evs[6].Seq, evs[7].Seq, evs[8].Seq, evs[9].Seq}
	if !slices.Equal(got, want) {
		t.Errorf("replica-a delivered seqs %v, want %v (only what replica-b had not)", got, want)
	}
}
