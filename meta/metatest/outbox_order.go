package metatest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

// outboxOrder: writers on two handles push manifests (each push writes
// events) while a reader on one handle follows the outbox by cursor, as a
// webhook endpoint and the catalogue do. When the writers are done, the
// reader must have seen every event: an event committed with a seq below
// one the reader had already passed (a hole filled later) would be
// skipped for ever.
func outboxOrder(t *testing.T, a, b Backend) {
	ctx := t.Context()
	const perWriter = 60
	var writers sync.WaitGroup
	for w, s := range []Backend{a, b, a, b} {
		writers.Go(func() {
			repo := fmt.Sprint("outbox", w)
			cfg := digest.FromString("config " + repo)
			if err := s.LinkBlob(ctx, repo, cfg, 10); err != nil {
				t.Error(err)
				return
			}
			for i := range perWriter {
				m := image(repo, fmt.Sprint("m", i), cfg)
				if err := s.PutManifest(ctx, m, "latest"); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { writers.Wait(); close(done) }()

	seen := map[int64]bool{}
	var cursor int64
	follow := func() {
		for {
			evs, err := a.Events(ctx, cursor, 50)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) == 0 {
				return
			}
			for _, ev := range evs {
				seen[ev.Seq] = true
				cursor = ev.Seq
			}
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		follow()
	}
	follow()
	all, err := a.Events(ctx, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	// Each push writes manifest.push and tag.update.
	if want := 4 * perWriter * 2; len(all) != want {
		t.Fatalf("%d events in the outbox, want %d", len(all), want)
	}
	missed := 0
	for _, ev := range all {
		if !seen[ev.Seq] {
			missed++
		}
	}
	if missed > 0 {
		t.Errorf("the cursor-following reader missed %d of %d events: seq does not follow commit order", missed, len(all))
	}
}
