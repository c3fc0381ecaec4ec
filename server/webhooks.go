package server

import (
	"net/http"

	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/config"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/notify"
)

// notifyOptions are the webhook options cfg sets; m (nil when metrics are
// off) counts deliveries.
func notifyOptions(cfg config.Config, m *Metrics) notify.Options {
	opts := notify.Options{Backlog: cfg.Notifications.Backlog}
	if m != nil {
		opts.Metrics = notifyMetrics{m}
	}
	for _, e := range cfg.Notifications.Endpoints {
		opts.Endpoints = append(opts.Endpoints, notify.Endpoint{
			Name:         e.Name,
			URL:          e.URL,
			Secret:       e.Secret, // secret_file was read into it by config.Load
			Events:       e.Events,
			Repositories: e.Repositories,
			Timeout:      e.Timeout,
			AllowPrivate: e.AllowPrivate,
		})
	}
	return opts
}

// notifyMetrics adapts the Prometheus metrics to notify.Metrics, which
// reports drops in batches.
type notifyMetrics struct{ m *Metrics }

func (a notifyMetrics) Delivered(endpoint string) { a.m.Delivered(endpoint) }
func (a notifyMetrics) Failed(endpoint string)    { a.m.Failed(endpoint) }
func (a notifyMetrics) Dropped(endpoint string, n int) {
	for range n {
		a.m.Dropped(endpoint)
	}
}

// withActor names the authenticated user in the request's context, so
// the events the request's changes write (meta's outbox) carry it. It
// runs inside withAuth.
func withActor(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := auth.FromContext(r.Context()); p.Name != "" {
			r = r.WithContext(meta.WithActor(r.Context(), p.Name))
		}
		next.ServeHTTP(w, r)
	})
}
