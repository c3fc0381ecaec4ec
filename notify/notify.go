package notify

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/pattern"
	"github.com/berth-dev/berth/meta"
)

// Store is what the notifier needs of the metadata store: its events
// outbox (see meta.Outbox) and leases (meta.Leases), so that of the
// replicas sharing a store one at a time delivers to each endpoint.
type Store interface {
	Events(ctx context.Context, after int64, n int) ([]meta.Event, error)
	LastEventSeq(ctx context.Context) (int64, error)
	EventCursor(ctx context.Context, consumer string) (int64, error)
	SetEventCursor(ctx context.Context, consumer string, seq int64) error
	PruneEvents(ctx context.Context, consumers []string, before time.Time) (int64, error)
	HoldLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Metrics counts deliveries per endpoint (by its name). A nil Metrics
// counts nothing.
type Metrics interface {
	// Delivered: an event was acknowledged (a 2xx answer).
	Delivered(endpoint string)
	// Failed: an attempt failed (refused address, connection error,
	// timeout, non-2xx answer); the event is retried.
	Failed(endpoint string)
	// Dropped: n events the endpoint wanted were skipped undelivered
	// because it fell more than Options.Backlog events behind.
	Dropped(endpoint string, n int)
}

// Endpoint is one receiver.
type Endpoint struct {
	// Name identifies it in logs and metrics, and names its cursor: a
	// renamed endpoint starts again from the newest event.
	Name string
	// URL is the http(s) URL events are POSTed to.
	URL string
	// Secret keys the signature; empty sends no signature.
	Secret string
	// Events are the types it receives (meta.Event*); empty: all.
	Events []string
	// Repositories are patterns (as in auth.access) of the repositories
	// whose events it receives; empty: all. Events about no repository
	// (gc.run) pass this filter.
	Repositories []string
	// Timeout bounds one attempt (0: DefaultTimeout).
	Timeout time.Duration
	// AllowPrivate allows loopback, private, link-local and other
	// non-public addresses.
	AllowPrivate bool
}

// Defaults of Options and Endpoint.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultBacklog      = 100_000
	DefaultPollInterval = 500 * time.Millisecond
	DefaultRetryMin     = time.Second
	DefaultRetryMax     = 5 * time.Minute
	DefaultRetention    = time.Hour
	DefaultPruneEvery   = time.Minute
	DefaultLeaseTTL     = 30 * time.Second
	DefaultStopGrace    = 5 * time.Second
)

// Options configure a Notifier; zero fields take the defaults above.
type Options struct {
	Endpoints []Endpoint
	// Backlog is how far (in events of the outbox) an endpoint may fall
	// behind the newest event; past it the oldest are skipped.
	Backlog int
	Metrics Metrics
	// PollInterval is how often an idle endpoint looks for new events.
	PollInterval time.Duration
	// RetryMin and RetryMax bound the wait between attempts (see the
	// package documentation).
	RetryMin, RetryMax time.Duration
	// Retention keeps events at least this long after they were written,
	// delivered or not wanted by anyone; PruneEvery is how often the
	// pruner runs.
	Retention  time.Duration
	PruneEvery time.Duration
	// Holder names this process among the replicas sharing the store
	// (empty: a random name). Each endpoint is delivered to by the holder
	// of its lease, renewed while it works and taken over by another
	// replica LeaseTTL after its holder stops.
	Holder   string
	LeaseTTL time.Duration
	// StopGrace is how long an attempt in flight when Run's context ends
	// may still take (at most the endpoint's Timeout): a receiver that
	// answers in time has its event recorded as delivered, not sent again
	// by the next process.
	StopGrace time.Duration
}

// pageSize is how many events an endpoint reads at a time.
const pageSize = 100

// Notifier delivers the outbox to the endpoints. Build it with New, run
// it with Run.
type Notifier struct {
	store   Store
	opts    Options
	log     *slog.Logger
	metrics metrics
	workers []*worker
}

// consumer is the outbox cursor name of an endpoint.
func consumer(name string) string { return "webhook:" + name }

// New checks the endpoints and reads (or creates, at the newest event)
// each one's cursor, so that every event written after New returns is
// delivered, whenever Run starts. A nil logger discards.
func New(ctx context.Context, store Store, opts Options, logger *slog.Logger) (*Notifier, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Backlog <= 0 {
		opts.Backlog = DefaultBacklog
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = DefaultRetryMin
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(DefaultRetryMax, opts.RetryMin)
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.PruneEvery <= 0 {
		opts.PruneEvery = DefaultPruneEvery
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.Holder == "" {
		opts.Holder = randomHolder()
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = DefaultStopGrace
	}
	n := &Notifier{store: store, opts: opts, log: logger, metrics: metrics{opts.Metrics}}
	seen := map[string]bool{}
	for i, ep := range opts.Endpoints {
		if err := checkEndpoint(ep); err != nil {
			return nil, fmt.Errorf("notify: endpoint %d (%s): %w", i, ep.Name, err)
		}
		if seen[ep.Name] {
			return nil, fmt.Errorf("notify: endpoint name %q used twice", ep.Name)
		}
		seen[ep.Name] = true
		if ep.Timeout <= 0 {
			ep.Timeout = DefaultTimeout
		}
		cursor, err := store.EventCursor(ctx, consumer(ep.Name))
		if err != nil {
			return nil, fmt.Errorf("notify: endpoint %s: %w", ep.Name, err)
		}
		if ep.Secret == "" {
			logger.Warn("webhook endpoint has no secret: its deliveries are not signed", "endpoint", ep.Name)
		}
		n.workers = append(n.workers, &worker{
			n: n, ep: ep, consumer: consumer(ep.Name), cursor: cursor, saved: cursor,
			client: newClient(ep.AllowPrivate),
			log:    logger.With("endpoint", ep.Name),
		})
	}
	return n, nil
}

// randomHolder names this process's leases: its host name, pid and a
// random part (two processes of one host, or a restarted process, differ).
func randomHolder() string {
	host, _ := os.Hostname()
	var b [6]byte
	_, _ = crand.Read(b[:])
	return fmt.Sprintf("%s/%d/%x", host, os.Getpid(), b)
}

// checkEndpoint refuses what config validation refuses too (New may be
// given endpoints from elsewhere).
func checkEndpoint(ep Endpoint) error {
	if ep.Name == "" {
		return errors.New("no name")
	}
	u, err := url.Parse(ep.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		// Not quoted: a URL may carry a token.
		return errors.New("url is not an absolute http(s) URL without credentials")
	}
	for _, e := range ep.Events {
		if !slices.Contains(meta.EventTypes, e) {
			return fmt.Errorf("unknown event type %q", e)
		}
	}
	return nil
}

// Run delivers until ctx ends: one goroutine per endpoint, and one that
// prunes the outbox (also with no endpoint: events are written anyway).
// It returns once they have all stopped.
func (n *Notifier) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range n.workers {
		wg.Go(func() { w.run(ctx) })
	}
	wg.Go(func() { n.pruneEvery(ctx) })
	wg.Wait()
}

// pruneEvery prunes the outbox now and every PruneEvery: events older
// than Retention that every configured endpoint has passed. Cursors of
// endpoints no longer configured hold nothing back.
func (n *Notifier) pruneEvery(ctx context.Context) {
	consumers := []string{}
	for _, w := range n.workers {
		consumers = append(consumers, w.consumer)
	}
	t := time.NewTicker(n.opts.PruneEvery)
	defer t.Stop()
	for {
		pruned, err := n.store.PruneEvents(ctx, consumers, meta.ClockOf(n.store)().Add(-n.opts.Retention))
		switch {
		case err != nil && ctx.Err() == nil:
			n.log.Warn("pruning the events outbox", "err", err)
		case pruned > 0:
			n.log.Debug("pruned the events outbox", "events", pruned)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// metrics is Metrics, nil-safe.
type metrics struct{ m Metrics }

func (m metrics) delivered(ep string) {
	if m.m != nil {
		m.m.Delivered(ep)
	}
}

func (m metrics) failed(ep string) {
	if m.m != nil {
		m.m.Failed(ep)
	}
}

func (m metrics) dropped(ep string, k int) {
	if m.m != nil && k > 0 {
		m.m.Dropped(ep, k)
	}
}

// newClient is an endpoint's HTTP client: no proxy (a proxy would connect
// on its behalf, past the address check), the address check on every
// connection unless allowPrivate, and redirects never followed (a 3xx is
// a failed attempt).
func newClient(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = refusePrivate
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         d.DialContext,
			ForceAttemptHTTP2:   true,
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Message is the JSON body of a delivery.
type Message struct {
	// ID is the event's unique ID (also in HeaderEventID).
	ID string `json:"id"`
	// Seq is the event's place in the outbox: events reach an endpoint
	// in increasing Seq.
	Seq  int64     `json:"seq"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	// Actor is the user who made the change; absent when none.
	Actor string `json:"actor,omitempty"`
	// Repository is absent for gc.run.
	Repository string `json:"repository,omitempty"`
	// Data is the event's payload (meta.ManifestPushPayload, …, by Type).
	Data json.RawMessage `json:"data"`
}

func encode(ev meta.Event) ([]byte, error) {
	data := json.RawMessage(ev.Payload)
	if !json.Valid(data) {
		data = json.RawMessage("{}")
	}
	return json.Marshal(Message{ID: ev.ID, Seq: ev.Seq, Type: ev.Type, Time: ev.Time, Actor: ev.Actor, Repository: ev.Repo, Data: data})
}

// worker delivers to one endpoint, in Seq order.
type worker struct {
	n        *Notifier
	ep       Endpoint
	consumer string
	client   *http.Client
	log      *slog.Logger
	// cursor is the last event done with (delivered, not wanted, or
	// dropped); saved is the last cursor written to the store.
	cursor, saved int64
	// leased: this process holds the endpoint's lease, last renewed at
	// renewed.
	leased  bool
	renewed time.Time
}

// wants reports whether the endpoint's filters pass ev.
func (w *worker) wants(ev meta.Event) bool {
	if !slices.Contains(meta.EventTypes, ev.Type) {
		return false // the store's own (icon.update)
	}
	if len(w.ep.Events) > 0 && !slices.Contains(w.ep.Events, ev.Type) {
		return false
	}
	if len(w.ep.Repositories) == 0 || ev.Repo == "" {
		return true
	}
	for _, p := range w.ep.Repositories {
		if pattern.Match(p, ev.Repo) {
			return true
		}
	}
	return false
}

func (w *worker) run(ctx context.Context) {
	defer w.release()
	for ctx.Err() == nil {
		if !w.holdLease(ctx) {
			if !sleep(ctx, w.n.opts.LeaseTTL/3) {
				break
			}
			continue
		}
		idle, err := w.step(ctx)
		if err != nil && ctx.Err() == nil {
			w.log.Warn("webhook: reading the events outbox", "err", err)
			idle = true
		}
		if idle && !sleep(ctx, w.n.opts.PollInterval) {
			break
		}
	}
	w.save(ctx)
}

// holdLease takes or renews the endpoint's lease (renewing at most every
// LeaseTTL/3) and reports whether this process has it. On taking it, the
// worker re-reads its cursor: the previous holder may have moved it. A
// lease last renewed a LeaseTTL ago or more may have lapsed in between
// (this process stalled) and been held by another replica meanwhile, so
// renewing it counts as taking it.
func (w *worker) holdLease(ctx context.Context) bool {
	ttl := w.n.opts.LeaseTTL
	if w.leased {
		switch since := time.Since(w.renewed); {
		case since < ttl/3:
			return true
		case since >= ttl:
			w.leased = false
		}
	}
	start := time.Now()
	ok, err := w.n.store.HoldLease(ctx, w.consumer, w.n.opts.Holder, ttl)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("webhook: holding the endpoint's lease", "err", err)
		}
		ok = false
	}
	switch {
	case ok && !w.leased:
		cursor, err := w.n.store.EventCursor(ctx, w.consumer)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("webhook: reading the endpoint's cursor", "err", err)
			}
			return false
		}
		w.cursor, w.saved = max(w.cursor, cursor), cursor
		w.log.Info("webhook: this replica delivers to the endpoint", "holder", w.n.opts.Holder, "cursor", w.cursor)
	case !ok && w.leased:
		w.log.Info("webhook: another replica delivers to the endpoint now", "holder", w.n.opts.Holder)
	}
	w.leased = ok
	if ok {
		w.renewed = start
	}
	return ok
}

// release saves the cursor and gives up the lease, so another replica
// takes the endpoint over at once.
func (w *worker) release() {
	if !w.leased {
		return
	}
	w.save(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.n.store.ReleaseLease(ctx, w.consumer, w.n.opts.Holder); err != nil {
		w.log.Warn("webhook: releasing the endpoint's lease", "err", err)
	}
	w.leased = false
}

// step delivers one page of events; idle says there was none.
func (w *worker) step(ctx context.Context) (idle bool, err error) {
	if err := w.enforceBacklog(ctx); err != nil {
		return false, err
	}
	evs, err := w.n.store.Events(ctx, w.cursor, pageSize)
	if err != nil {
		return false, err
	}
	for _, ev := range evs {
		if !w.wants(ev) {
			w.cursor = ev.Seq
			continue
		}
		if !w.holdLease(ctx) {
			break // another replica delivers now
		}
		if ev.Seq <= w.cursor {
			continue // delivered by the replica that held the lease while this one stalled
		}
		if !w.deliver(ctx, ev) {
			break // ctx ended, or the backlog dropped ev: start again from the cursor
		}
	}
	w.save(ctx)
	return len(evs) == 0, nil
}

// deliver sends ev until the endpoint acknowledges it, and reports
// whether it did; false when ctx ended or the backlog dropped ev while it
// was being retried.
func (w *worker) deliver(ctx context.Context, ev meta.Event) bool {
	body, err := encode(ev)
	if err != nil { // cannot happen with a valid payload; skip rather than block forever
		w.log.Error("webhook: encoding an event", "event_id", ev.ID, "seq", ev.Seq, "err", err)
		w.cursor = ev.Seq
		return true
	}
	for attempt := 0; ; attempt++ {
		err := w.post(ctx, ev, body, attempt+1)
		if err == nil {
			w.n.metrics.delivered(w.ep.Name)
			w.cursor = ev.Seq
			w.save(ctx)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		w.n.metrics.failed(w.ep.Name)
		wait := backoff(attempt, w.n.opts.RetryMin, w.n.opts.RetryMax, rand.Float64())
		w.log.Warn("webhook delivery failed; retrying", "event_id", ev.ID, "seq", ev.Seq, "type", ev.Type,
			"attempt", attempt+1, "retry_in", wait, "err", err)
		if !sleep(ctx, wait) {
			return false
		}
		if !w.holdLease(ctx) {
			return false // another replica delivers now
		}
		if err := w.enforceBacklog(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("webhook: checking the backlog", "err", err)
		}
		if w.cursor >= ev.Seq {
			return false
		}
	}
}

// post makes one attempt. It is given StopGrace to finish once ctx ends:
// an event the receiver acknowledges during shutdown is recorded, not
// sent again by the next holder.
func (w *worker) post(ctx context.Context, ev meta.Event, body []byte, attempt int) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.ep.Timeout)
	defer cancel()
	defer context.AfterFunc(ctx, func() {
		t := time.NewTimer(w.n.opts.StopGrace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-actx.Done(): // the attempt ended (deferred cancel)
		}
	})()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, w.ep.URL, bytes.NewReader(body))
	if err != nil {
		return errors.New("building the request failed") // the URL was checked by New
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Berth-Webhook/1")
	req.Header.Set(HeaderEventID, ev.ID)
	req.Header.Set(HeaderEvent, ev.Type)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderAttempt, strconv.Itoa(attempt))
	if w.ep.Secret != "" {
		req.Header.Set(HeaderSignature, Sign([]byte(w.ep.Secret), ts, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		// Without the URL, which may hold a token in its query.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fmt.Errorf("receiver answered %s (redirects are not followed)", resp.Status)
	}
	return fmt.Errorf("receiver answered %s", resp.Status)
}

// enforceBacklog skips the oldest events when the endpoint is more than
// Backlog events behind the newest, counting the skipped events it wanted
// as dropped. The outbox's Seq are contiguous past every cursor (pruning
// stops at the lowest), so the distance in Seq is the distance in events.
func (w *worker) enforceBacklog(ctx context.Context) error {
	last, err := w.n.store.LastEventSeq(ctx)
	if err != nil {
		return err
	}
	to := last - int64(w.n.opts.Backlog)
	if to <= w.cursor {
		return nil
	}
	dropped := 0
	for after := w.cursor; after < to; {
		evs, err := w.n.store.Events(ctx, after, 1000)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			if ev.Seq > to {
				break
			}
			if w.wants(ev) {
				dropped++
			}
			after = ev.Seq
		}
		if evs[len(evs)-1].Seq > to {
			break
		}
	}
	w.cursor = to
	w.save(ctx)
	w.n.metrics.dropped(w.ep.Name, dropped)
	if dropped > 0 {
		w.log.Warn("webhook backlog full: dropped the oldest undelivered events", "dropped", dropped,
			"backlog", w.n.opts.Backlog, "resume_after_seq", to)
	}
	return nil
}

// save writes the cursor if it moved, even as ctx ends (a delivery
// acknowledged during shutdown is not sent again).
func (w *worker) save(ctx context.Context) {
	if w.cursor <= w.saved {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := w.n.store.SetEventCursor(sctx, w.consumer, w.cursor); err != nil {
		// Kept in memory: the next save retries; a crash before it
		// re-delivers (at least once).
		w.log.Warn("webhook: saving the endpoint's cursor", "err", err)
		return
	}
	w.saved = w.cursor
}

// sleep waits d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
