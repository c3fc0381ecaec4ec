package registry

import (
	"net"
	"net/http"
)

// Access decides what a request may do.
type Access interface {
	// Allowed: may the request's principal do action ("pull", "push", "overwrite", "delete") on repo?
	Allowed(r *http.Request, repo, action string) bool
	// CatalogAllowed: may it list the catalog (entries are then filtered by pull)?
	CatalogAllowed(r *http.Request) bool
	// CatalogVisible: does the catalog listing show repo to it? (A token
	// that may list the catalog sees what the rules let its subject pull,
	// not only the repositories the token names.)
	CatalogVisible(r *http.Request, repo string) bool
	// Authenticated: does the request carry an identity (GET /v2/ answers 401 to anonymous requests when auth is on, so clients learn the scheme)?
	Authenticated(r *http.Request) bool
	// Deny sets the challenge header (if any) on w for scope ("repository:NAME:pull,push", "registry:catalog:*", or "" for /v2/) and returns 401 or 403.
	Deny(w http.ResponseWriter, r *http.Request, scope string) int
}

// The actions the registry asks Access about.
const (
	ActionPull = "pull"
	ActionPush = "push"
	// ActionOverwrite is needed, besides push, to move a tag that exists
	// and points at another digest: the path tag and every ?tag= value
	// alike, whatever their names (V10, V11).
	ActionOverwrite = "overwrite"
	ActionDelete    = "delete"
)

// CatalogScope is the token scope of GET /v2/_catalog.
const CatalogScope = "registry:catalog:*"

// scopeFor is the challenge scope of a refusal of action on repo: what a
// client should ask a token service for. Pushers ask for pull,push as the
// Docker clients do.
func scopeFor(repo, action string) string {
	switch action {
	case ActionPush:
		return "repository:" + repo + ":pull,push"
	case ActionOverwrite:
		return "repository:" + repo + ":pull,push,overwrite"
	}
	return "repository:" + repo + ":" + action
}

// requiredAction is the action a request on a repository endpoint needs,
// or "" if the method is not one the endpoint serves (the handler answers
// 405; nothing is read).
func requiredAction(k kind, method string) string {
	get := method == http.MethodGet || method == http.MethodHead
	switch k {
	case kindTags, kindReferrers:
		if get {
			return ActionPull
		}
	case kindManifest:
		switch {
		case get:
			return ActionPull
		case method == http.MethodPut:
			return ActionPush
		case method == http.MethodDelete:
			return ActionDelete
		}
	case kindBlob:
		switch {
		case get:
			return ActionPull
		case method == http.MethodDelete:
			return ActionDelete
		}
	case kindUploadStart:
		if method == http.MethodPost {
			return ActionPush
		}
	case kindUpload:
		switch method {
		case http.MethodGet, http.MethodPatch, http.MethodPut, http.MethodDelete:
			return ActionPush
		}
	}
	return ""
}

// allowed reports whether the request may do action on repo (always, when
// no Access is configured).
func (reg *Registry) allowed(r *http.Request, repo, action string) bool {
	return reg.opts.Access == nil || reg.opts.Access.Allowed(r, repo, action)
}

// authorize returns nil if the request may do action on repo, else the
// refusal (the challenge is already set on w). It reads nothing but the
// request: the answer is the same whether repo exists or not.
func (reg *Registry) authorize(w http.ResponseWriter, r *http.Request, repo, action string) error {
	if reg.allowed(r, repo, action) {
		return nil
	}
	return reg.deny(w, r, scopeFor(repo, action))
}

// deny answers a refusal for scope: 401 UNAUTHORIZED (with the challenge
// Access sets) or 403 DENIED. The detail is fixed, so refusals reveal
// nothing of what exists.
func (reg *Registry) deny(w http.ResponseWriter, r *http.Request, scope string) error {
	if reg.opts.Access.Deny(w, r, scope) == http.StatusUnauthorized {
		return errorf(CodeUnauthorized, http.StatusUnauthorized, nil, "")
	}
	return errorf(CodeDenied, http.StatusForbidden, nil, "")
}

// clientID names the request's client for the per-client upload cap.
func (reg *Registry) clientID(r *http.Request) string {
	if reg.opts.ClientID != nil {
		return reg.opts.ClientID(r)
	}
	return remoteHost(r)
}

// remoteHost is the host of r.RemoteAddr (the whole address if it has no
// port).
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
