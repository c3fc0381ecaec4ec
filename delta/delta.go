package delta

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/flatpak"
	"github.com/berth-dev/berth/meta"
)

// Media types and annotations of the delta protocol (flatpak 1.14's
// flatpak-json-oci.c; ../shared/docs/flatpak-deltas.md).
const (
	// Tag is the tag of the delta index in each repository.
	Tag = flatpak.DeltaIndexTag
	// MediaTypeTarDiff is a delta layer's media type.
	MediaTypeTarDiff = "application/vnd.tar-diff"
	// MediaTypeConfig is a delta manifest's config media type; the config
	// is the empty JSON object.
	MediaTypeConfig = "application/vnd.redhat.delta.config.v1+json"
	// AnnotationTarget names the image a delta manifest (and its index
	// entry) leads to.
	AnnotationTarget = "io.github.containers.delta.target"
	// AnnotationFrom and AnnotationTo are a delta layer's source and
	// target DiffIDs.
	AnnotationFrom = "io.github.containers.delta.from"
	AnnotationTo   = "io.github.containers.delta.to"
	// LabelRef selects the images deltas are made for.
	LabelRef = flatpak.LabelRef
)

// emptyConfig is the delta manifest's config blob.
var emptyConfig = []byte("{}")

// Defaults for Options.
const (
	DefaultVersions      = 3
	DefaultWindow        = 30 * 24 * time.Hour
	DefaultMaxLayerBytes = 1 << 30
	DefaultConcurrency   = 1
	DefaultMaxRatio      = 0.5
	DefaultLease         = 2 * time.Minute
	DefaultRetireAfter   = 10 * time.Minute
	DefaultPoll          = time.Minute
	DefaultMaxDuration   = 15 * time.Minute
)

// Options bound and tune delta generation. Zero values take the defaults.
type Options struct {
	// Versions is how many earlier images of a ref (newest first) a new
	// image gets deltas from.
	Versions int
	// Window limits sources to images pushed within this long before the
	// target; negative: no limit.
	Window time.Duration
	// MaxLayerBytes: pairs whose source or target layer blob is larger
	// are not diffed (rejected).
	MaxLayerBytes int64
	// Concurrency is how many deltas are made at once.
	Concurrency int
	// MaxRatio: a delta larger than this fraction of the target's layer
	// blob is not worth publishing (rejected).
	MaxRatio float64
	// Lease is how long a claim on a pair lasts without renewal; the
	// worker renews it every third of it.
	Lease time.Duration
	// RetireAfter is how long a delta manifest that is no longer listed
	// in _deltaindex stays before it is deleted.
	RetireAfter time.Duration
	// Poll is how often the worker looks for work unprompted.
	Poll time.Duration
	// MaxDuration bounds the making of one delta; past it the pair fails.
	MaxDuration time.Duration
	// MaxTarBytes bounds each layer's uncompressed tar (a compression
	// bomb is rejected, not spooled to the storage disk); 0: 8 times
	// MaxLayerBytes.
	MaxTarBytes int64
	// TempDir holds the spooled layers and deltas while they are made
	// ("" = os.TempDir()).
	TempDir string
	// MaxDiffFileSize and MaxMemory bound the tar-diff generator (see
	// package tardiff); zero takes its defaults.
	MaxDiffFileSize int64
	MaxMemory       int64
	// Differ makes a delta; nil uses the tar-diff generator. Tests inject
	// broken ones to show that verification stops them.
	Differ Differ
	// OnResult, if not nil, is told of each pair decided (ready,
	// rejected, failed) and how long it took (for metrics).
	OnResult func(state meta.DeltaState, took time.Duration)
}

// Differ writes a delta that turns the uncompressed tar old into new.
type Differ func(ctx context.Context, old, new io.Reader, out io.Writer) error

func (o Options) withDefaults() Options {
	if o.Versions <= 0 {
		o.Versions = DefaultVersions
	}
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	if o.MaxLayerBytes <= 0 {
		o.MaxLayerBytes = DefaultMaxLayerBytes
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.MaxRatio <= 0 || o.MaxRatio > 1 {
		o.MaxRatio = DefaultMaxRatio
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.RetireAfter < 0 {
		o.RetireAfter = 0
	} else if o.RetireAfter == 0 {
		o.RetireAfter = DefaultRetireAfter
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = DefaultMaxDuration
	}
	if o.MaxTarBytes <= 0 {
		o.MaxTarBytes = 8 * o.MaxLayerBytes
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	return o
}

// Store is what the worker needs of the metadata store: its delta
// records (meta/sqlite implements them; meta/metatest.RunDeltas is the
// contract) and the ordinary manifest and blob-link operations.
type Store interface {
	UnplannedDeltaTargets(ctx context.Context, label string, n int) ([]meta.DeltaTarget, error)
	EarlierVersions(ctx context.Context, repo string, target digest.Digest, label, value string, since time.Time, n int) ([]digest.Digest, error)
	PlanDeltas(ctx context.Context, repo string, target digest.Digest, sources []digest.Digest) (bool, error)
	ClaimDelta(ctx context.Context, token string, at time.Time, lease time.Duration) (*meta.DeltaPair, error)
	RenewDelta(ctx context.Context, k meta.DeltaKey, token string, until time.Time) error
	FinishDelta(ctx context.Context, k meta.DeltaKey, token string, r meta.DeltaResult) error
	RequeueDelta(ctx context.Context, k meta.DeltaKey, detail string) error
	DeltaPairs(ctx context.Context, repo string) ([]meta.DeltaPair, error)
	DeltaRepositories(ctx context.Context) ([]string, error)
	DropGoneDeltas(ctx context.Context) ([]string, error)
	ResetDeltas(ctx context.Context, repo string, replan bool) error
	DeltaManifests(ctx context.Context, repo string) ([]meta.DeltaManifest, error)
	SetLiveDeltaManifests(ctx context.Context, repo string, live map[digest.Digest]digest.Digest, at time.Time) error
	RetiredDeltaManifests(ctx context.Context, before time.Time, n int) ([]meta.DeltaManifest, error)
	ForgetDeltaManifest(ctx context.Context, repo string, d digest.Digest) error

	GetManifest(ctx context.Context, repo string, d digest.Digest) (*meta.Manifest, error)
	PutManifest(ctx context.Context, m *meta.Manifest, tags ...string) error
	DeleteManifest(ctx context.Context, repo string, d digest.Digest) error
	ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error)
	LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error
}

// Blobs is what the worker needs of the blob store: reading layers and
// writing delta blobs.
type Blobs interface {
	blob.Provider
	blob.Ingester
}

// Manager plans, makes, verifies and publishes deltas. Run is its worker;
// Signal wakes it.
type Manager struct {
	store Store
	now   func() time.Time // the store's clock (meta.Clock)
	blobs Blobs
	opts  Options
	log   *slog.Logger
	wake  chan struct{}
	// publishMu serialises publishing (per process; publishing is
	// idempotent, so two processes converge).
	publishMu sync.Mutex
	// cycleMu serialises cycles (Run and RunOnce).
	cycleMu sync.Mutex
}

// New returns a Manager; nothing runs until Run or RunOnce.
func New(store Store, blobs Blobs, opts Options, logger *slog.Logger) *Manager {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{store: store, now: meta.ClockOf(store), blobs: blobs, opts: opts.withDefaults(), log: logger, wake: make(chan struct{}, 1)}
}

// Signal asks the worker to look for work now (after a push, a delete, a
// gc run). It never blocks.
func (m *Manager) Signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run works until ctx ends: a cycle now, then one after every Signal and
// every Options.Poll.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.opts.Poll)
	defer t.Stop()
	for {
		if err := m.RunOnce(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("delta cycle", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		case <-t.C:
		}
	}
}

// RunOnce runs one cycle: drop the pairs of deleted images, plan new
// targets, make every pending delta (Options.Concurrency at a time),
// publish every repository with deltas (a no-op where nothing changed),
// and delete delta manifests retired long enough.
func (m *Manager) RunOnce(ctx context.Context) error {
	m.cycleMu.Lock()
	defer m.cycleMu.Unlock()
	var errs []error
	if err := m.reconcile(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := m.plan(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := m.work(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := m.PublishAll(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := m.retire(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Reconcile brings the published deltas in line with the images that
// exist, without making any: it drops the pairs whose source or target
// is gone (after a gc run or deletes), publishes every repository with
// deltas and deletes delta manifests retired long enough. berth gc runs
// it when no berth serve (whose worker does it on its own) holds the
// data.
func (m *Manager) Reconcile(ctx context.Context) error {
	m.cycleMu.Lock()
	defer m.cycleMu.Unlock()
	return errors.Join(m.reconcile(ctx), m.PublishAll(ctx), m.retire(ctx))
}

// reconcile drops the pairs whose target or source is gone and publishes
// the repositories that lost some.
func (m *Manager) reconcile(ctx context.Context) error {
	repos, err := m.store.DropGoneDeltas(ctx)
	if err != nil {
		return err
	}
	return m.publishEach(ctx, repos)
}

// planBatch is how many new targets one query returns.
const planBatch = 100

// plan records the pairs of every tagged Flatpak image not planned yet.
func (m *Manager) plan(ctx context.Context) error {
	for {
		targets, err := m.store.UnplannedDeltaTargets(ctx, LabelRef, planBatch)
		if err != nil {
			return err
		}
		for _, t := range targets {
			var since time.Time
			if m.opts.Window > 0 {
				since = t.Pushed.Add(-m.opts.Window)
			}
			sources, err := m.store.EarlierVersions(ctx, t.Repo, t.Digest, LabelRef, t.Ref, since, m.opts.Versions)
			if err != nil {
				return err
			}
			planned, err := m.store.PlanDeltas(ctx, t.Repo, t.Digest, sources)
			if err != nil {
				return err
			}
			if planned && len(sources) > 0 {
				m.log.Info("deltas planned", "repo", t.Repo, "target", t.Digest, "ref", t.Ref, "sources", len(sources))
			}
		}
		if len(targets) < planBatch {
			return nil
		}
	}
}

// work makes pending deltas until none is left, Concurrency at a time.
func (m *Manager) work(ctx context.Context) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range m.opts.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				did, err := m.workOne(ctx)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				if !did {
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// workOne claims one pending pair, makes it and records the result; it
// reports whether there was one.
func (m *Manager) workOne(ctx context.Context) (bool, error) {
	token := rand.Text()
	p, err := m.store.ClaimDelta(ctx, token, m.now(), m.opts.Lease)
	if err != nil || p == nil {
		return false, err
	}
	log := m.log.With("repo", p.Repo, "target", p.Target, "source", p.Source)
	if p.Attempts > maxAttempts {
		// Claimed again and again without an end: each time the worker
		// died (a crash, a kill, the process restarted) while making it.
		// Stop: a job that takes the server down must not do so forever.
		res := meta.DeltaResult{State: meta.DeltaFailed, Detail: fmt.Sprintf("abandoned after %d attempts that never finished", p.Attempts-1)}
		if err := m.store.FinishDelta(ctx, p.DeltaKey, token, res); err != nil && !errors.Is(err, meta.ErrDeltaLost) {
			return false, err
		}
		log.Warn("delta abandoned", "attempts", p.Attempts-1)
		return true, nil
	}
	// The lease is renewed while the delta is made; losing it (the pair
	// was dropped, or this worker stalled past the lease) stops the work.
	jctx, cancel := context.WithCancelCause(ctx)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(m.opts.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-jctx.Done():
				return
			case <-t.C:
				if err := m.store.RenewDelta(jctx, p.DeltaKey, token, m.now().Add(m.opts.Lease)); err != nil {
					cancel(fmt.Errorf("lease lost: %w", err))
					return
				}
			}
		}
	}()
	start := time.Now()
	res, err := m.makeSafely(jctx, p)
	lost := context.Cause(jctx)
	cancel(nil)
	<-renewed
	switch {
	case ctx.Err() != nil:
		// Shutting down: the lease ends and the pair is made again later.
		return false, nil
	case lost != nil && !errors.Is(lost, context.Canceled):
		log.Warn("delta abandoned", "err", lost)
		return true, nil
	case err != nil:
		// An error of the stores, not of the delta: try again later.
		log.Warn("delta not made; retried later", "err", err)
		res = meta.DeltaResult{State: meta.DeltaPending, Detail: err.Error()}
		if p.Attempts >= maxAttempts {
			res.State = meta.DeltaFailed
		}
	}
	if err := m.store.FinishDelta(ctx, p.DeltaKey, token, res); err != nil {
		if errors.Is(err, meta.ErrDeltaLost) {
			log.Warn("delta made after its lease ended; discarded", "err", err)
			return true, nil
		}
		return false, err
	}
	took := time.Since(start)
	log.Info("delta", "state", res.State, "size", res.Size, "layer_size", res.LayerSize,
		"detail", res.Detail, "took", took.Round(time.Millisecond))
	if res.State == meta.DeltaPending {
		// Back off: the next cycle (a poll away) tries again.
		return false, nil
	}
	if m.opts.OnResult != nil {
		m.opts.OnResult(res.State, took)
	}
	if res.State == meta.DeltaReady {
		if err := m.Publish(ctx, p.Repo); err != nil {
			return true, err
		}
	}
	return true, nil
}

// makeSafely is make with a time budget (Options.MaxDuration) and a
// panic turned into a failed pair: a crafted layer must cost one pair,
// not the worker or the server.
func (m *Manager) makeSafely(ctx context.Context, p *meta.DeltaPair) (res meta.DeltaResult, err error) {
	ctx, cancel := context.WithTimeoutCause(ctx, m.opts.MaxDuration, errTooLong)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			res, err = meta.DeltaResult{State: meta.DeltaFailed, Detail: fmt.Sprintf("making the delta panicked: %v", r)}, nil
		}
	}()
	res, err = m.make(ctx, p)
	if err != nil && errors.Is(context.Cause(ctx), errTooLong) {
		return meta.DeltaResult{State: meta.DeltaFailed, Detail: fmt.Sprintf("took longer than %s", m.opts.MaxDuration)}, nil
	}
	return res, err
}

// errTooLong ends a delta that takes longer than Options.MaxDuration.
var errTooLong = errors.New("delta took too long")

// maxAttempts bounds the tries of a pair whose making fails for a reason
// other than the delta itself (a store error), or never finishes (the
// worker died each time).
const maxAttempts = 5

// retire deletes delta manifests that have not been listed for
// Options.RetireAfter.
func (m *Manager) retire(ctx context.Context) error {
	for {
		old, err := m.store.RetiredDeltaManifests(ctx, m.now().Add(-m.opts.RetireAfter), 100)
		if err != nil {
			return err
		}
		for _, dm := range old {
			err := m.store.DeleteManifest(ctx, dm.Repo, dm.Digest)
			if err != nil && !errors.Is(err, meta.ErrManifestNotFound) {
				return fmt.Errorf("delete retired delta manifest %s@%s: %w", dm.Repo, dm.Digest, err)
			}
			if err := m.store.ForgetDeltaManifest(ctx, dm.Repo, dm.Digest); err != nil {
				return err
			}
		}
		if len(old) < 100 {
			return nil
		}
	}
}

// Rebuild forgets repo's deltas and plans them again: the next cycle
// makes them anew. Until a target's new delta is ready its entry leaves
// _deltaindex (clients then download the whole layer; its old delta
// manifest is deleted after Options.RetireAfter).
func (m *Manager) Rebuild(ctx context.Context, repo string) error {
	return m.store.ResetDeltas(ctx, repo, true)
}

// Drop forgets repo's deltas: at the next cycle its _deltaindex goes,
// and its delta manifests after Options.RetireAfter. Images pushed later
// get deltas again.
func (m *Manager) Drop(ctx context.Context, repo string) error {
	return m.store.ResetDeltas(ctx, repo, false)
}

// ManifestStored wakes the worker when a tagged Flatpak image was pushed
// (it implements registry.ManifestObserver; the push is not delayed).
func (m *Manager) ManifestStored(_ context.Context, mf *meta.Manifest, tags []string) {
	if len(tags) > 0 && mf.Labels[LabelRef] != "" {
		m.Signal()
	}
}

// ManifestDeleted wakes the worker to drop the deltas of a deleted image
// (registry.ManifestDeleteObserver).
func (m *Manager) ManifestDeleted(context.Context, string, digest.Digest) { m.Signal() }
