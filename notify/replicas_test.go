package notify

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestReplicasDeliverOnce: two notifiers on one store (two replicas) with
// one endpoint: every event is acknowledged exactly once, in order, by
// whichever holds the endpoint's lease; when that one stops, the other
// takes over from the saved cursor and nothing acknowledged is sent again.
func TestReplicasDeliverOnce(t *testing.T) {
	s := openStore(t)
	rcv := newReceiver(t, func(int) int { return http.StatusNoContent })
	ep := []Endpoint{{Name: "ci", URL: rcv.URL + "/hook", AllowPrivate: true}}
	// The lease outlasts any stall of a loaded machine: a holder that
	// stalls past it may rightly overlap the next (at least once). B
	// looks for the lease every LeaseTTL/3, and takes it that soon after
	// A releases it.
	opts := func(holder string) Options {
		return Options{Endpoints: ep, Holder: holder, LeaseTTL: 3 * time.Second}
	}
	// A starts first and takes the lease (its first delivery says so);
	// then B runs beside it.
	stopA := start(t, s, opts("replica-a"), nil)
	push(t, s, "team/a", "first", "v1")
	waitFor(t, "A's first deliveries", func() bool { return len(rcv.acked()) >= 2 })
	start(t, s, opts("replica-b"), nil)
	for i := range 9 {
		push(t, s, "team/a", fmt.Sprint("first-", i), "v1")
	}
	want, err := s.Events(t.Context(), 0, -1)
	if err != nil || len(want) != 20 {
		t.Fatalf("outbox: %d events, %v", len(want), err)
	}
	waitFor(t, "20 acknowledged deliveries", func() bool { return len(rcv.acked()) >= 20 })

	// A, the holder, stops; only B is left to deliver the rest.
	stopA()
	for i := range 10 {
		push(t, s, "team/b", fmt.Sprint("second-", i), "v1")
	}
	waitFor(t, "40 acknowledged deliveries", func() bool { return len(rcv.acked()) >= 40 })
	time.Sleep(200 * time.Millisecond) // room for a duplicate to show

	all, err := s.Events(t.Context(), 0, -1)
	if err != nil || len(all) != 40 {
		t.Fatalf("outbox: %d events, %v", len(all), err)
	}
	got := rcv.acked()
	if len(got) != len(all) {
		t.Fatalf("%d deliveries for %d events: an event was sent by both replicas", len(got), len(all))
	}
	for i, msg := range got {
		if msg.ID != all[i].ID || msg.Seq != all[i].Seq {
			t.Errorf("delivery %d = seq %d, want seq %d (outbox order, once each)", i, msg.Seq, all[i].Seq)
		}
	}
	if n := len(rcv.deliveries()); n != 40 {
		t.Errorf("%d requests, want 40", n)
	}
}
