package server

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/berth-dev/berth/auth"
)

// The audit log is one line per push, delete and failed authentication,
// all of one shape, so a log pipeline selects them with msg="audit" and
// tells them apart by event:
//
//	msg        "audit"
//	event      manifest.push, manifest.delete, tag.delete, blob.delete, auth.failed
//	user       who: the principal's name ("" for anonymous; for
//	           auth.failed the user name a Basic header claimed, if any)
//	auth       how: anonymous, basic, bearer, cert (for auth.failed the
//	           scheme of the Authorization header that failed)
//	remote     the client's address (host, no port)
//	request_id the request's X-Request-Id
//	http_method, repository, reference, digest, status (pushes and deletes)
//	reason     why authentication failed (auth.failed)
//
// Never a password, token, key or hash: only names and digests.
const auditMsg = "audit"

// Audit events.
const (
	eventPush           = "manifest.push"
	eventManifestDelete = "manifest.delete"
	eventTagDelete      = "tag.delete"
	eventBlobDelete     = "blob.delete"
	eventAuthFailed     = "auth.failed"
)

// auditLine writes one audit line with the attributes every event has,
// then attrs.
func auditLine(ctx context.Context, logger *slog.Logger, level slog.Level, event, user, method string, r *http.Request, requestID string, attrs ...slog.Attr) {
	base := []slog.Attr{
		slog.String("event", event),
		slog.String("user", user),
		slog.String("auth", method),
		slog.String("remote", clientHost(r)),
		slog.String("request_id", requestID),
	}
	logger.LogAttrs(ctx, level, auditMsg, append(base, attrs...)...)
}

// auditAuthFailed logs a request whose credentials did not verify.
func auditAuthFailed(logger *slog.Logger, r *http.Request, requestID string, reason string) {
	auditLine(r.Context(), logger, slog.LevelWarn, eventAuthFailed, basicUser(r), authScheme(r), r, requestID,
		slog.String("http_method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("reason", reason),
	)
}

// authScheme is the scheme of the request's Authorization header,
// lowercased ("basic", "bearer"), "cert" for a client certificate
// without one, or "" — never the credentials.
func authScheme(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if h == "" {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			return "cert"
		}
		return ""
	}
	scheme, _, _ := strings.Cut(h, " ")
	scheme = strings.ToLower(scheme)
	switch scheme {
	case "basic", "bearer":
		return scheme
	}
	return "other"
}

// withAudit logs the pushes and deletes next performs — a manifest PUT
// answered 201, a manifest, tag or blob DELETE answered 202 — and the
// token endpoint's refusals (401). It sits
// inside withAuth (the principal is in the request's context) and reads
// what happened from the response, so the registry needs no hook.
func withAudit(next http.Handler, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == tokenPath {
			// A login through the token endpoint (docker login with
			// token auth on): it answers 401 to credentials it refuses.
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			if sw.status == http.StatusUnauthorized {
				auditAuthFailed(logger, r, w.Header().Get("X-Request-Id"), "token endpoint: credentials refused")
			}
			return
		}
		if r.Method != http.MethodPut && r.Method != http.MethodDelete {
			next.ServeHTTP(w, r)
			return
		}
		rt := parseV2(r.URL.Path)
		var event string
		switch {
		case r.Method == http.MethodPut && rt.pattern == routeManifest:
			event = eventPush
		case r.Method == http.MethodDelete && rt.pattern == routeManifest:
			event = eventTagDelete
			if strings.Contains(rt.ref, ":") { // a digest, not a tag
				event = eventManifestDelete
			}
		case r.Method == http.MethodDelete && rt.pattern == routeBlob:
			event = eventBlobDelete
		default:
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		want := http.StatusAccepted
		if event == eventPush {
			want = http.StatusCreated
		}
		if sw.status != want {
			return
		}
		p := auth.FromContext(r.Context())
		d := w.Header().Get("Docker-Content-Digest")
		if d == "" && event != eventTagDelete {
			d = rt.ref
		}
		auditLine(r.Context(), logger, slog.LevelInfo, event, p.Name, p.Method, r, w.Header().Get("X-Request-Id"),
			slog.String("http_method", r.Method),
			slog.String("repository", rt.name),
			slog.String("reference", rt.ref),
			slog.String("digest", d),
			slog.Int("status", sw.status),
		)
	})
}

// statusWriter records the status of a response (the first one written).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
