package gc

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/berth-dev/berth/meta"
)

// TestRunEvent: each deleting run writes one gc.run event with its counts
// to the outbox; a dry run writes none.
func TestRunEvent(t *testing.T) {
	e := newEnv(t)
	old := commitOnly(t, e, "00000000000000000000000000000001", []byte("old orphan"))
	age(t, e, old, 2*time.Hour)
	c := e.collector(Policy{Grace: time.Hour}, 0)
	ctx := t.Context()
	before, err := e.meta.LastEventSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.run(c, true)
	if evs, _ := e.meta.Events(ctx, before, -1); len(evs) != 0 {
		t.Fatalf("a dry run wrote events: %+v", evs)
	}
	e.run(c, false)
	e.run(c, false)
	evs, err := e.meta.Events(ctx, before, -1)
	if err != nil || len(evs) != 2 {
		t.Fatalf("events after two runs: %d, %v; want 2", len(evs), err)
	}
	for _, ev := range evs {
		if ev.Type != meta.EventGCRun || ev.Repo != "" {
			t.Errorf("event %+v, want a gc.run about no repository", ev)
		}
	}
	var first, second meta.GCRun
	if json.Unmarshal(evs[0].Payload, &first) != nil || json.Unmarshal(evs[1].Payload, &second) != nil {
		t.Fatalf("payloads %s, %s", evs[0].Payload, evs[1].Payload)
	}
	if first.BytesFreed != int64(len("old orphan")) || first.OrphanFiles != 1 || first.Error || second.BytesFreed != 0 {
		t.Errorf("gc.run payloads: %+v then %+v", first, second)
	}
}
