package flatpak

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// Install counts: the flatpak client downloads an image's layer (or a
// delta of it) once per install or update, with its own user agent, so
// those downloads are counted, per UTC day, ref and version (the image's
// manifest digest):
//
//   - a GET with a Flatpak user agent that serves a blob from its first
//     byte (200, or 206 from byte 0) is a download;
//   - a download of a Flatpak image's layer is an install, or an update
//     when the same client fetched the repository's _deltaindex in the
//     10 minutes before (the client looks for a delta only when it
//     updates); the update mark is used up by the count;
//   - a download of a delta blob (a layer of a delta manifest) is an
//     update of the delta's target;
//   - configs, manifests and blobs of other images are not counted.
//
// Nothing is written on the request path: downloads are aggregated in
// memory and flushed to the metadata store every few seconds (and when
// the server stops), where the blob is attributed to its images. A crash
// loses at most one flush interval of counts. Clients behind one address
// (NAT) share the update mark; an update with --no-static-deltas does not
// look for a delta and counts as an install.

// InstallStore is what counting needs of the metadata store.
type InstallStore interface {
	AddInstalls(ctx context.Context, counts []meta.InstallCount) error
	BlobUsers(ctx context.Context, repo string, d digest.Digest, n int) ([]meta.Manifest, error)
	GetManifest(ctx context.Context, repo string, d digest.Digest) (*meta.Manifest, error)
}

// deltaConfigType is a delta manifest's config media type (package delta's
// MediaTypeConfig) and deltaTargetAnnotation names its target.
const (
	deltaConfigType       = "application/vnd.redhat.delta.config.v1+json"
	deltaTargetAnnotation = "io.github.containers.delta.target"
)

// Limits of the counter's memory.
const (
	updateWindow      = 10 * time.Minute
	maxUpdateMarks    = 100_000
	maxPendingCounts  = 100_000
	blobUsersPerQuery = 16
)

// InstallCounter counts installs and updates. Its zero value is not
// usable; use NewInstallCounter.
type InstallCounter struct {
	store InstallStore
	log   *slog.Logger
	now   func() time.Time
	// onCount, if not nil, is told of each count flushed (metrics).
	onCount func(kind, arch string, n int64)

	mu      sync.Mutex
	marks   map[markKey]time.Time // a client fetched a repository's _deltaindex
	pending map[download]int64
	dropped int64 // downloads not counted because pending was full
}

type markKey struct{ client, repo string }

type download struct {
	day    int64
	repo   string
	blob   digest.Digest
	update bool
}

// NewInstallCounter returns a counter writing to store; onCount may be
// nil.
func NewInstallCounter(store InstallStore, onCount func(kind, arch string, n int64), logger *slog.Logger) *InstallCounter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &InstallCounter{store: store, log: logger, now: time.Now, onCount: onCount,
		marks: map[markKey]time.Time{}, pending: map[download]int64{}}
}

// IsClient reports whether r comes from the flatpak client (its user
// agent is "Flatpak <version>").
func IsClient(r *http.Request) bool {
	ua := r.UserAgent()
	return len(ua) >= 7 && strings.EqualFold(ua[:7], "flatpak")
}

// Observe records a request the registry answered with status, made by
// client (the rate limiter's client id). Only GETs of the flatpak client
// matter; the caller may skip others.
func (c *InstallCounter) Observe(r *http.Request, status int, client string) {
	if r.Method != http.MethodGet || !IsClient(r) {
		return
	}
	repo, kind, ref, ok := splitV2(r.URL.Path)
	if !ok {
		return
	}
	now := c.now()
	switch {
	case kind == "manifests" && ref == DeltaIndexTag && (status == http.StatusOK || status == http.StatusNotFound):
		// Looked for a delta: an update (found or not).
		c.mu.Lock()
		if len(c.marks) >= maxUpdateMarks {
			c.pruneMarks(now)
		}
		if len(c.marks) < maxUpdateMarks {
			c.marks[markKey{client, repo}] = now
		}
		c.mu.Unlock()
	case kind == "blobs" && (status == http.StatusOK || status == http.StatusPartialContent && fromStart(r)):
		d, err := digest.Parse(ref)
		if err != nil {
			return
		}
		c.mu.Lock()
		k := markKey{client, repo}
		t, marked := c.marks[k]
		update := marked && now.Sub(t) <= updateWindow
		if marked {
			delete(c.marks, k) // one update per delta lookup
		}
		dl := download{day: now.UTC().Unix() / 86400, repo: repo, blob: d, update: update}
		if _, ok := c.pending[dl]; ok || len(c.pending) < maxPendingCounts {
			c.pending[dl]++
		} else {
			c.dropped++
		}
		c.mu.Unlock()
	}
}

// pruneMarks forgets marks older than the update window.
func (c *InstallCounter) pruneMarks(now time.Time) {
	for k, t := range c.marks {
		if now.Sub(t) > updateWindow {
			delete(c.marks, k)
		}
	}
}

// fromStart reports whether a range request starts at byte 0.
func fromStart(r *http.Request) bool {
	rg := r.Header.Get("Range")
	return rg == "" || strings.HasPrefix(rg, "bytes=0-")
}

// splitV2 splits /v2/<name>/(blobs|manifests)/<ref>.
func splitV2(p string) (repo, kind, ref string, ok bool) {
	rest, found := strings.CutPrefix(p, "/v2/")
	if !found {
		return "", "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return "", "", "", false
	}
	ref, rest = rest[i+1:], rest[:i]
	j := strings.LastIndexByte(rest, '/')
	if j <= 0 {
		return "", "", "", false
	}
	kind, repo = rest[j+1:], rest[:j]
	if kind != "blobs" && kind != "manifests" {
		return "", "", "", false
	}
	return repo, kind, ref, true
}

// Run flushes every interval until ctx ends, then once more.
func (c *InstallCounter) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := c.Flush(fctx); err != nil {
				c.log.Warn("install counts: final flush", "err", err)
			}
			cancel()
			return
		case <-t.C:
			if err := c.Flush(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("install counts: flush", "err", err)
			}
		}
	}
}

// Flush attributes the downloads counted so far to images and adds them
// to the store. Counts that could not be written are kept for the next
// flush.
func (c *InstallCounter) Flush(ctx context.Context) error {
	c.mu.Lock()
	pending, dropped := c.pending, c.dropped
	c.pending, c.dropped = map[download]int64{}, 0
	c.pruneMarks(c.now())
	c.mu.Unlock()
	if dropped > 0 {
		c.log.Warn("install counts: downloads not counted (too many distinct ones between flushes)", "dropped", dropped)
	}
	if len(pending) == 0 {
		return nil
	}
	type countKey struct {
		day             int64
		repo, ref, kind string
		version         digest.Digest
	}
	sums := map[countKey]int64{}
	users := map[[2]string][]meta.Manifest{}
	for dl, n := range pending {
		key := [2]string{dl.repo, dl.blob.String()}
		ms, ok := users[key]
		if !ok {
			var err error
			ms, err = c.store.BlobUsers(ctx, dl.repo, dl.blob, blobUsersPerQuery)
			if err != nil {
				c.restore(pending)
				return err
			}
			users[key] = ms
		}
		// One download is one install or update: of the newest image
		// that has the blob (images sharing a layer have the same
		// files), not of each.
		for _, m := range ms {
			ref, version, kind := c.attribute(ctx, dl, m)
			if ref == "" {
				continue
			}
			sums[countKey{dl.day, dl.repo, ref, kind, version}] += n
			break
		}
	}
	counts := make([]meta.InstallCount, 0, len(sums))
	for k, n := range sums {
		counts = append(counts, meta.InstallCount{Day: k.day, Repo: k.repo, Ref: k.ref, Version: k.version, Kind: k.kind, Count: n})
	}
	if err := c.store.AddInstalls(ctx, counts); err != nil {
		c.restore(pending)
		return err
	}
	if c.onCount != nil {
		for _, ic := range counts {
			arch := ""
			if r, err := ParseRef(ic.Ref); err == nil {
				arch = r.Arch
			}
			c.onCount(ic.Kind, arch, ic.Count)
		}
	}
	return nil
}

// attribute says what downloading dl's blob, used by m, counts as: the
// ref, version and kind, or ref "" for nothing.
func (c *InstallCounter) attribute(ctx context.Context, dl download, m meta.Manifest) (ref string, version digest.Digest, kind string) {
	if m.Config == dl.blob {
		return "", "", "" // a config, not an install
	}
	if m.ArtifactType == deltaConfigType {
		target := digest.Digest(m.Annotations[deltaTargetAnnotation])
		if target.Validate() != nil {
			return "", "", ""
		}
		tm, err := c.store.GetManifest(ctx, dl.repo, target)
		if err != nil {
			return "", "", "" // deleted meanwhile
		}
		ref = tm.Labels[LabelRef]
		if _, err := ParseRef(ref); err != nil {
			return "", "", ""
		}
		return ref, target, meta.KindUpdate
	}
	ref = m.Labels[LabelRef]
	if _, err := ParseRef(ref); err != nil {
		return "", "", ""
	}
	kind = meta.KindInstall
	if dl.update {
		kind = meta.KindUpdate
	}
	return ref, m.Digest, kind
}

// restore puts counts back after a failed flush.
func (c *InstallCounter) restore(pending map[download]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for dl, n := range pending {
		if _, ok := c.pending[dl]; ok || len(c.pending) < maxPendingCounts {
			c.pending[dl] += n
		}
	}
}
