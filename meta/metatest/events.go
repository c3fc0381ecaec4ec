package metatest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/meta"
)

// EventStore is a backend with the events outbox (meta.Outbox): the
// changes of meta.Store write their events in their own transactions, and
// garbage collection records its runs.
type EventStore interface {
	meta.Store
	meta.Outbox
	meta.GCRunRecorder
}

// RunEvents runs the outbox contract, each subtest on a new, empty store
// from newStore.
func RunEvents(t *testing.T, newStore func(t *testing.T) EventStore) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s EventStore)
	}{
		{"WrittenWithChanges", testEventsWrittenWithChanges},
		{"NoChangeNoEvent", testEventsNoChangeNoEvent},
		{"Paging", testEventsPaging},
		{"Cursor", testEventsCursor},
		{"Prune", testEventsPrune},
		{"ConcurrentWriters", testEventsConcurrentWriters},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// allEvents returns every event after after.
func allEvents(t *testing.T, s EventStore, after int64) []meta.Event {
	t.Helper()
	evs, err := s.Events(t.Context(), after, -1)
	noErr(t, err, "Events")
	if evs == nil {
		t.Fatal("Events = nil, want a non-nil slice")
	}
	return evs
}

func lastSeq(t *testing.T, s EventStore) int64 {
	t.Helper()
	n, err := s.LastEventSeq(t.Context())
	noErr(t, err, "LastEventSeq")
	return n
}

// payload decodes ev's payload into a new T.
func payload[T any](t *testing.T, ev meta.Event) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(ev.Payload, &v); err != nil {
		t.Fatalf("event %d (%s): payload %q: %v", ev.Seq, ev.Type, ev.Payload, err)
	}
	return v
}

// checkOrdered checks the events' Seq increase, their IDs are unique and
// set, and their times are set.
func checkOrdered(t *testing.T, evs []meta.Event) {
	t.Helper()
	ids := map[string]bool{}
	for i, ev := range evs {
		if i > 0 && ev.Seq <= evs[i-1].Seq {
			t.Errorf("event %d: Seq %d after %d", i, ev.Seq, evs[i-1].Seq)
		}
		if ev.ID == "" || ids[ev.ID] {
			t.Errorf("event %d: ID %q empty or repeated", i, ev.ID)
		}
		ids[ev.ID] = true
		if ev.Time.IsZero() {
			t.Errorf("event %d: zero Time", i)
		}
		if !json.Valid(ev.Payload) {
			t.Errorf("event %d: payload %q is not JSON", i, ev.Payload)
		}
	}
}

func testEventsWrittenWithChanges(t *testing.T, s EventStore) {
	ctx := meta.WithActor(t.Context(), "alice")
	before := time.Now().Add(-time.Second)
	if n := lastSeq(t, s); n != 0 {
		t.Fatalf("LastEventSeq of an empty store = %d", n)
	}
	ds := link(t, s, "team/app", "config", "layer")
	// Linking writes no event (a push is reported by its manifest).
	if evs := allEvents(t, s, 0); len(evs) != 0 {
		t.Fatalf("events after LinkBlob: %+v", evs)
	}
	m1 := image("team/app", "one", ds[0], ds[1])
	noErr(t, s.PutManifest(ctx, m1, "v1", "latest", "v1"), "PutManifest m1")
	// Again: the manifest is stored and the tags already point at it.
	noErr(t, s.PutManifest(ctx, m1, "latest"), "PutManifest m1 again")
	m2 := image("team/app", "two", ds[0])
	noErr(t, s.PutManifest(ctx, m2, "latest"), "PutManifest m2")
	noErr(t, s.DeleteTag(ctx, "team/app", "v1"), "DeleteTag v1")
	noErr(t, s.DeleteManifest(ctx, "team/app", m2.Digest), "DeleteManifest m2")
	noErr(t, s.UnlinkBlob(ctx, "team/app", ds[1]), "UnlinkBlob")
	// gc runs on behalf of no one.
	noErr(t, s.RecordGCRun(context.WithoutCancel(t.Context()), meta.GCRun{Manifests: 2, Blobs: 3, BytesFreed: 4096}), "RecordGCRun")

	evs := allEvents(t, s, 0)
	checkOrdered(t, evs)
	var types []string
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	want := []string{
		meta.EventManifestPush, meta.EventTagUpdate, meta.EventTagUpdate, // m1, v1, latest
		meta.EventManifestPush, meta.EventTagUpdate, // m2, latest moved
		meta.EventTagDelete, meta.EventManifestDelete, meta.EventBlobDelete, meta.EventGCRun,
	}
	checkStrings(t, "event types", types, want)
	if len(evs) != len(want) {
		t.FailNow()
	}
	for i, ev := range evs[:8] {
		if ev.Repo != "team/app" || ev.Actor != "alice" {
			t.Errorf("event %d (%s): repo %q actor %q, want team/app, alice", i, ev.Type, ev.Repo, ev.Actor)
		}
		if ev.Time.Before(before) || ev.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("event %d: Time %s is not now", i, ev.Time)
		}
	}
	if gcEv := evs[8]; gcEv.Repo != "" || gcEv.Actor != "" {
		t.Errorf("gc.run: repo %q actor %q, want both empty", gcEv.Repo, gcEv.Actor)
	}
	if last := lastSeq(t, s); last != evs[8].Seq {
		t.Errorf("LastEventSeq = %d, want %d", last, evs[8].Seq)
	}

	push := payload[meta.ManifestPushPayload](t, evs[0])
	if push.Digest != m1.Digest || push.MediaType != m1.MediaType || push.Size != int64(len(m1.Content)) ||
		push.TotalSize != m1.TotalSize || fmt.Sprint(push.Tags) != "[latest v1]" {
		t.Errorf("manifest.push payload = %+v", push)
	}
	if tu := payload[meta.TagUpdatePayload](t, evs[1]); tu != (meta.TagUpdatePayload{Tag: "latest", Digest: m1.Digest}) {
		t.Errorf("first tag.update = %+v, want latest → m1 (tags in byte order)", tu)
	}
	if tu := payload[meta.TagUpdatePayload](t, evs[2]); tu != (meta.TagUpdatePayload{Tag: "v1", Digest: m1.Digest}) {
		t.Errorf("second tag.update = %+v, want v1 → m1", tu)
	}
	if push := payload[meta.ManifestPushPayload](t, evs[3]); push.Digest != m2.Digest || fmt.Sprint(push.Tags) != "[latest]" {
		t.Errorf("second manifest.push = %+v", push)
	}
	if tu := payload[meta.TagUpdatePayload](t, evs[4]); tu != (meta.TagUpdatePayload{Tag: "latest", Digest: m2.Digest, Previous: m1.Digest}) {
		t.Errorf("moved tag.update = %+v", tu)
	}
	if td := payload[meta.TagDeletePayload](t, evs[5]); td != (meta.TagDeletePayload{Tag: "v1", Digest: m1.Digest}) {
		t.Errorf("tag.delete = %+v", td)
	}
	if md := payload[meta.ManifestDeletePayload](t, evs[6]); md.Digest != m2.Digest || fmt.Sprint(md.Tags) != "[latest]" {
		t.Errorf("manifest.delete = %+v, want m2 with its tag latest", md)
	}
	if bd := payload[meta.BlobDeletePayload](t, evs[7]); bd.Digest != ds[1] {
		t.Errorf("blob.delete = %+v", bd)
	}
	if g := payload[meta.GCRun](t, evs[8]); g != (meta.GCRun{Manifests: 2, Blobs: 3, BytesFreed: 4096}) {
		t.Errorf("gc.run = %+v", g)
	}
}

func testEventsNoChangeNoEvent(t *testing.T, s EventStore) {
	ctx := t.Context()
	ds := link(t, s, "app", "config")
	m := image("app", "one", ds[0])
	put(t, s, m, "v1")
	last := lastSeq(t, s)

	// A put that fails writes nothing: neither the manifest nor its event.
	missing, _ := blob("missing")
	bad := image("app", "bad", ds[0], missing)
	if err := s.PutManifest(ctx, bad, "v1", "v2"); err == nil {
		t.Fatal("PutManifest with an unlinked blob succeeded")
	}
	if err := s.DeleteTag(ctx, "app", "nope"); err == nil {
		t.Fatal("DeleteTag of a missing tag succeeded")
	}
	if err := s.DeleteManifest(ctx, "app", bad.Digest); err == nil {
		t.Fatal("DeleteManifest of a missing manifest succeeded")
	}
	if err := s.UnlinkBlob(ctx, "app", missing); err == nil {
		t.Fatal("UnlinkBlob of a missing link succeeded")
	}
	if err := s.DeleteTag(ctx, "nope", "v1"); err == nil {
		t.Fatal("DeleteTag in a missing repository succeeded")
	}
	if n := lastSeq(t, s); n != last {
		t.Errorf("LastEventSeq = %d after failed changes, want %d", n, last)
	}
	if evs := allEvents(t, s, last); len(evs) != 0 {
		t.Errorf("failed changes wrote events: %+v", evs)
	}
}

func testEventsPaging(t *testing.T, s EventStore) {
	ctx := t.Context()
	ds := link(t, s, "app", "config")
	for i := range 7 {
		put(t, s, image("app", fmt.Sprint(i), ds[0]))
	}
	all := allEvents(t, s, 0)
	if len(all) != 7 {
		t.Fatalf("%d events, want 7", len(all))
	}
	checkOrdered(t, all)
	var got []meta.Event
	for after := int64(0); ; {
		page, err := s.Events(ctx, after, 3)
		noErr(t, err, "Events page")
		if len(page) > 3 {
			t.Fatalf("page of %d, want at most 3", len(page))
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1].Seq
	}
	if len(got) != len(all) {
		t.Fatalf("paged %d events, want %d", len(got), len(all))
	}
	for i := range got {
		if got[i].Seq != all[i].Seq || got[i].ID != all[i].ID {
			t.Errorf("page event %d = %d/%s, want %d/%s", i, got[i].Seq, got[i].ID, all[i].Seq, all[i].ID)
		}
	}
	if page, err := s.Events(ctx, all[6].Seq, 10); err != nil || page == nil || len(page) != 0 {
		t.Errorf("Events after the last = %v, %v; want empty", page, err)
	}
}

func testEventsCursor(t *testing.T, s EventStore) {
	ctx := t.Context()
	ds := link(t, s, "app", "config")
	put(t, s, image("app", "a", ds[0]))
	put(t, s, image("app", "b", ds[0]))
	last := lastSeq(t, s)

	// A new consumer starts at the end.
	c, err := s.EventCursor(ctx, "hook:one")
	noErr(t, err, "EventCursor")
	if c != last {
		t.Errorf("new cursor = %d, want LastEventSeq %d", c, last)
	}
	put(t, s, image("app", "c", ds[0]))
	// Asking again does not move it.
	if c, _ = s.EventCursor(ctx, "hook:one"); c != last {
		t.Errorf("cursor moved to %d without SetEventCursor", c)
	}
	noErr(t, s.SetEventCursor(ctx, "hook:one", last+1), "SetEventCursor")
	if c, _ = s.EventCursor(ctx, "hook:one"); c != last+1 {
		t.Errorf("cursor = %d, want %d", c, last+1)
	}
	// Never back.
	noErr(t, s.SetEventCursor(ctx, "hook:one", 1), "SetEventCursor back")
	if c, _ = s.EventCursor(ctx, "hook:one"); c != last+1 {
		t.Errorf("cursor = %d after a move back, want %d", c, last+1)
	}
	// Consumers are independent; setting one that has none creates it.
	noErr(t, s.SetEventCursor(ctx, "hook:two", 1), "SetEventCursor new")
	if c, _ = s.EventCursor(ctx, "hook:two"); c != 1 {
		t.Errorf("second consumer = %d, want 1", c)
	}
	if c, _ = s.EventCursor(ctx, "hook:one"); c != last+1 {
		t.Errorf("first consumer = %d, want %d", c, last+1)
	}
}

func testEventsPrune(t *testing.T, s EventStore) {
	ctx := t.Context()
	ds := link(t, s, "app", "config")
	for i := range 6 {
		put(t, s, image("app", fmt.Sprint(i), ds[0]))
	}
	evs := allEvents(t, s, 0)
	noErr(t, s.SetEventCursor(ctx, "a", evs[3].Seq), "cursor a")
	noErr(t, s.SetEventCursor(ctx, "b", evs[1].Seq), "cursor b")
	noErr(t, s.SetEventCursor(ctx, "gone", 0), "cursor gone")
	future, past := time.Now().Add(time.Hour), time.Now().Add(-time.Hour)

	// Too recent: nothing goes.
	n, err := s.PruneEvents(ctx, []string{"a", "b"}, past)
	noErr(t, err, "PruneEvents past")
	if n != 0 || len(allEvents(t, s, 0)) != 6 {
		t.Errorf("pruned %d recent events", n)
	}
	// Old enough: up to the slowest named consumer (b); "gone" is not
	// named and holds nothing back.
	n, err = s.PruneEvents(ctx, []string{"a", "b"}, future)
	noErr(t, err, "PruneEvents")
	left := allEvents(t, s, 0)
	if n != 2 || len(left) != 4 || left[0].Seq != evs[2].Seq {
		t.Errorf("pruned %d, left %d starting at %d; want 2, 4 from %d", n, len(left), left[0].Seq, evs[2].Seq)
	}
	// Only a: up to a's cursor.
	n, err = s.PruneEvents(ctx, []string{"a"}, future)
	noErr(t, err, "PruneEvents a")
	if left = allEvents(t, s, 0); n != 2 || len(left) != 2 || left[0].Seq != evs[4].Seq {
		t.Errorf("pruned %d, left %d; want 2, 2", n, len(left))
	}
	// No consumers: every old event.
	n, err = s.PruneEvents(ctx, nil, future)
	noErr(t, err, "PruneEvents none")
	if n != 2 || len(allEvents(t, s, 0)) != 0 {
		t.Errorf("pruned %d with no consumers, want 2 and none left", n)
	}
	// The sequence goes on: a Seq is never reused.
	if got := lastSeq(t, s); got != evs[5].Seq {
		t.Errorf("LastEventSeq after pruning all = %d, want %d", got, evs[5].Seq)
	}
	put(t, s, image("app", "after", ds[0]))
	if left = allEvents(t, s, 0); len(left) != 1 || left[0].Seq <= evs[5].Seq {
		t.Errorf("event after pruning: %+v, want one with Seq > %d", left, evs[5].Seq)
	}
	// A new consumer starts after what was pruned.
	c, err := s.EventCursor(ctx, "late")
	noErr(t, err, "EventCursor late")
	if c != left[0].Seq {
		t.Errorf("late consumer's cursor = %d, want %d", c, left[0].Seq)
	}
}

// testEventsConcurrentWriters checks that concurrent changes get distinct,
// ordered Seq with no hole a reader could later see filled: every event a
// reader saw is still the prefix of what it sees later.
func testEventsConcurrentWriters(t *testing.T, s EventStore) {
	ctx := t.Context()
	ds := link(t, s, "app", "config")
	var wg sync.WaitGroup
	const writers, each = 4, 10
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				m := image("app", fmt.Sprint(w, "-", i), ds[0])
				if err := s.PutManifest(ctx, m, fmt.Sprint("t", w)); err != nil {
					t.Errorf("PutManifest: %v", err)
				}
			}
		})
	}
	done := make(chan struct{})
	var seen []int64
	go func() {
		defer close(done)
		var after int64
		for range 200 {
			page, err := s.Events(ctx, after, -1)
			if err != nil {
				t.Errorf("Events: %v", err)
				return
			}
			for _, ev := range page {
				seen = append(seen, ev.Seq)
				after = ev.Seq
			}
		}
	}()
	wg.Wait()
	<-done
	all := allEvents(t, s, 0)
	checkOrdered(t, all)
	if len(all) != 2*writers*each {
		t.Errorf("%d events, want %d (a push and a tag move each)", len(all), 2*writers*each)
	}
	// What the reader saw, read by cursor, is exactly a prefix of the
	// final list: no event appeared behind a cursor that had passed it.
	for i, seq := range seen {
		if i >= len(all) || all[i].Seq != seq {
			t.Fatalf("reader saw Seq %d at position %d, which the final outbox does not hold there", seq, i)
		}
	}
}
