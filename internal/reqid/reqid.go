// Package reqid carries a request's id in its context and adds it to every
// log record written with that context, so any component's log line about
// a request (a registry error, an auth refusal, a failed push's cause)
// can be found from the X-Request-Id a client reports.
package reqid

import (
	"context"
	"log/slog"
)

type key struct{}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// From returns the id ctx carries, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}

// Attr is the log attribute's key.
const Attr = "request_id"

// Handler wraps h: records logged with a context that carries an id get a
// request_id attribute (unless they name one themselves).
func Handler(h slog.Handler) slog.Handler {
	if _, ok := h.(handler); ok {
		return h
	}
	return handler{h}
}

type handler struct{ slog.Handler }

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	if id := From(ctx); id != "" {
		named := false
		r.Attrs(func(a slog.Attr) bool {
			named = a.Key == Attr
			return !named
		})
		if !named {
			r.AddAttrs(slog.String(Attr, id))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h handler) WithAttrs(as []slog.Attr) slog.Handler { return handler{h.Handler.WithAttrs(as)} }
func (h handler) WithGroup(name string) slog.Handler    { return handler{h.Handler.WithGroup(name)} }
