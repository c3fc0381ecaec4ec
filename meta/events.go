package meta

import (
	"context"
	"time"

	"github.com/opencontainers/go-digest"
)

// The events outbox. Every change a webhook reports is written, as an
// Event, in the same transaction as the change itself: a change is never
// committed without its event, and an event never exists without its
// change, whatever crashes when. Consumers (package notify, one per
// endpoint) read the outbox in Seq order from a cursor the store keeps,
// and the store prunes what every consumer has passed.

// Event types.
const (
	// EventManifestPush: a manifest was stored in a repository (a push of
	// a manifest already there only moves tags: tag.update).
	EventManifestPush = "manifest.push"
	// EventTagUpdate: a tag was created or moved to another manifest.
	EventTagUpdate = "tag.update"
	// EventManifestDelete: a manifest was deleted, and with it the tags
	// that pointed at it (listed in its payload).
	EventManifestDelete = "manifest.delete"
	// EventTagDelete: a tag was deleted (its manifest stays).
	EventTagDelete = "tag.delete"
	// EventBlobDelete: a blob's link was removed from a repository.
	EventBlobDelete = "blob.delete"
	// EventGCRun: garbage collection finished a run (its counts). What a
	// run deletes is reported by this one event, not one event per row.
	EventGCRun = "gc.run"
	// EventIconUpdate: an icon was recorded for a manifest after its push
	// (icons decoded at push come with manifest.push; this is the start-up
	// backfill of manifests pushed before icons were recorded). The
	// Flatpak index and the catalogue re-read the repository; webhooks do
	// not receive it (it is not in EventTypes): a backfill can write one
	// per app.
	EventIconUpdate = "icon.update"
)

// EventTypes lists the event types webhooks receive.
var EventTypes = []string{EventManifestPush, EventTagUpdate, EventManifestDelete, EventTagDelete, EventBlobDelete, EventGCRun}

// Event is one row of the outbox.
type Event struct {
	// Seq orders the outbox: it increases with every event written, in
	// commit order, and is never reused.
	Seq int64
	// ID is unique to the event (random, not reused even if a database is
	// recreated and its Seq restart): a receiver's de-duplication key.
	ID   string
	Type string
	// Repo is the repository the event is about; "" for gc.run.
	Repo string
	// Actor is the user whose request made the change (WithActor), ""
	// when none (anonymous, or Berth itself).
	Actor string
	Time  time.Time
	// Payload is a JSON object: one of the *Payload types below, by Type.
	Payload []byte
}

// ManifestPushPayload is manifest.push's payload.
type ManifestPushPayload struct {
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType"`
	// Size is the manifest's own length, TotalSize adds what it
	// references (see Manifest.TotalSize).
	Size      int64    `json:"size"`
	TotalSize int64    `json:"totalSize"`
	Tags      []string `json:"tags"`
}

// TagUpdatePayload is tag.update's payload.
type TagUpdatePayload struct {
	Tag    string        `json:"tag"`
	Digest digest.Digest `json:"digest"`
	// Previous is the digest the tag pointed at, "" for a new tag.
	Previous digest.Digest `json:"previousDigest"`
}

// IconUpdatePayload is icon.update's payload: the manifest Digest shows
// Icon as its icon of Size pixels.
type IconUpdatePayload struct {
	Digest digest.Digest `json:"digest"`
	Size   int           `json:"size"`
	Icon   digest.Digest `json:"icon"`
}

// ManifestDeletePayload is manifest.delete's payload.
type ManifestDeletePayload struct {
	Digest digest.Digest `json:"digest"`
	// Tags that pointed at the manifest and went with it.
	Tags []string `json:"tags"`
}

// TagDeletePayload is tag.delete's payload.
type TagDeletePayload struct {
	Tag    string        `json:"tag"`
	Digest digest.Digest `json:"digest"`
}

// BlobDeletePayload is blob.delete's payload.
type BlobDeletePayload struct {
	Digest digest.Digest `json:"digest"`
}

// GCRun is gc.run's payload: what one garbage-collection run deleted.
type GCRun struct {
	Manifests   int   `json:"manifests"`
	Links       int   `json:"links"`
	Blobs       int   `json:"blobs"`
	OrphanFiles int   `json:"orphanFiles"`
	BytesFreed  int64 `json:"bytesFreed"`
	Uploads     int   `json:"uploads"`
	UploadData  int   `json:"uploadData"`
	// Failed counts blob files that could not be deleted; Error says the
	// run ended with an error (its text stays in Berth's log).
	Failed     int   `json:"failed"`
	Error      bool  `json:"error"`
	DurationMS int64 `json:"durationMs"`
}

// Outbox is how consumers read the events outbox. Every backend that
// implements it writes the events of PutManifest, DeleteManifest,
// DeleteTag and UnlinkBlob in their own transactions, and passes
// meta/metatest's RunEvents contract.
type Outbox interface {
	// Events returns at most n events (n < 0: no limit) with Seq > after,
	// in Seq order; never nil.
	Events(ctx context.Context, after int64, n int) ([]Event, error)
	// LastEventSeq returns the highest Seq ever written (pruned or not),
	// 0 if none.
	LastEventSeq(ctx context.Context) (int64, error)
	// EventCursor returns consumer's cursor (the Seq of the last event it
	// is done with). A consumer without one gets one at LastEventSeq: it
	// starts with the events written after it first asked.
	EventCursor(ctx context.Context, consumer string) (int64, error)
	// SetEventCursor moves consumer's cursor forward to seq (never back:
	// a lower seq leaves it), creating it if needed.
	SetEventCursor(ctx context.Context, consumer string, seq int64) error
	// PruneEvents deletes the events written before before that every
	// consumer named in consumers has passed (Seq at or below its
	// cursor); the cursors of consumers not named hold nothing back. With
	// no consumers, every event written before before goes. It returns
	// how many events it deleted.
	PruneEvents(ctx context.Context, consumers []string, before time.Time) (int64, error)
}

// GCRunRecorder records a garbage-collection run's gc.run event.
type GCRunRecorder interface {
	RecordGCRun(ctx context.Context, r GCRun) error
}

type actorKey struct{}

// WithActor returns ctx carrying the name of the user on whose behalf the
// store is changed; the events written under ctx name it.
func WithActor(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, actorKey{}, name)
}

// ActorFrom returns the name WithActor put in ctx, "" if none.
func ActorFrom(ctx context.Context) string {
	s, _ := ctx.Value(actorKey{}).(string)
	return s
}
