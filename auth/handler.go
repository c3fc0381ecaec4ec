package auth

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"time"
)

const (
	// maxTokenForm bounds a POST to the token endpoint.
	maxTokenForm = 64 << 10
	// maxScopes bounds the scopes of one token request (the token must
	// stay under MaxTokenBytes anyway).
	maxScopes = 64
)

// TokenHandler serves the token endpoint (/auth/token) of the Docker
// registry token flow:
//
//   - GET with optional Basic credentials (else a verified client
//     certificate, else anonymous), service, repeated scope, account;
//   - POST application/x-www-form-urlencoded with grant_type=password,
//     username, password, service, scope (space-separated), client_id:
//     the OAuth2 flow of containerd and docker. No refresh tokens.
//
// The answer is {"token","access_token","expires_in","issued_at"}. The
// token holds the intersection of the requested scopes and what the rules
// grant the requester now. With the token service off it answers 404.
func (s *Service) TokenHandler() http.Handler {
	return http.HandlerFunc(s.serveToken)
}

type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(errorBody{Errors: []errorEntry{{Code: code, Message: msg}}})
}

// requester is who asks for a token.
type requester struct {
	name, authn, entry string
}

func (s *Service) serveToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if s.signing == nil {
		writeError(w, http.StatusNotFound, "UNSUPPORTED", "the token service is not enabled")
		return
	}
	var (
		service string
		scopes  []string
		who     requester
		err     error
	)
	switch r.Method {
	case http.MethodGet:
		q := r.URL.Query()
		if len(q["service"]) > 1 {
			writeError(w, http.StatusBadRequest, "UNSUPPORTED", "service given more than once")
			return
		}
		service, scopes = q.Get("service"), q["scope"]
		who, err = s.tokenRequester(r)
	case http.MethodPost:
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt != "application/x-www-form-urlencoded" {
			writeError(w, http.StatusUnsupportedMediaType, "UNSUPPORTED", "want application/x-www-form-urlencoded")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
		if err := r.ParseForm(); err != nil {
			writeError(w, http.StatusBadRequest, "UNSUPPORTED", "malformed form")
			return
		}
		f := r.PostForm
		if f.Get("grant_type") != "password" {
			writeError(w, http.StatusBadRequest, "UNSUPPORTED", "unsupported grant_type (only password; no refresh tokens)")
			return
		}
		if len(f["service"]) > 1 || len(f["username"]) != 1 || len(f["password"]) != 1 {
			writeError(w, http.StatusBadRequest, "UNSUPPORTED", "want one service, username and password")
			return
		}
		service, scopes = f.Get("service"), f["scope"]
		user := f.Get("username")
		if !validUserName(user) {
			err = unauthenticated("password grant: malformed user name")
		} else if err = s.checkPassword(r.Context(), user, f.Get("password")); err == nil {
			who = s.htpasswdRequester(user)
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "GET or POST")
		return
	}
	if err != nil {
		// The same status and body for an unknown user and a wrong
		// password (both cost one bcrypt): no user enumeration.
		s.log.Info("token request refused", "remote", r.RemoteAddr, "err", err)
		w.Header().Set("WWW-Authenticate", s.basicChallenge())
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required: wrong user name or password")
		return
	}
	if service != "" && service != s.cfg.Token.Service {
		writeError(w, http.StatusBadRequest, "UNSUPPORTED", "unknown service")
		return
	}
	var fields []string
	for _, sc := range scopes {
		fields = append(fields, strings.Fields(sc)...)
	}
	if len(fields) > maxScopes {
		writeError(w, http.StatusBadRequest, "UNSUPPORTED", "too many scopes")
		return
	}
	access := s.grant(who.name, fields)
	tok, iat, exp, err := s.issue(who.name, who.authn, who.entry, access)
	if err != nil {
		s.log.Error("token", "err", err)
		writeError(w, http.StatusInternalServerError, "UNSUPPORTED", "cannot issue a token")
		return
	}
	if len(tok) > MaxTokenBytes {
		writeError(w, http.StatusBadRequest, "UNSUPPORTED", "the scopes make a token over 8 KiB")
		return
	}
	s.log.Debug("token issued", "sub", who.name, "authn", who.authn, "access", len(access))
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(tokenResponse{
		Token: tok, AccessToken: tok,
		ExpiresIn: int64(exp.Sub(iat) / time.Second),
		IssuedAt:  iat.UTC().Format(time.RFC3339),
	})
}

// tokenRequester authenticates a GET to the token endpoint: Basic
// credentials, else a verified client certificate, else anonymous. A
// bearer token is not accepted here (no refresh).
func (s *Service) tokenRequester(r *http.Request) (requester, error) {
	hs := r.Header.Values("Authorization")
	if len(hs) > 1 {
		return requester{}, unauthenticated("more than one Authorization header")
	}
	if len(hs) == 1 {
		scheme, cred, err := parseAuthorization(hs[0])
		if err != nil {
			return requester{}, err
		}
		if scheme != MethodBasic {
			return requester{}, unauthenticated("the token endpoint takes Basic credentials only")
		}
		user, pass, err := parseBasic(cred)
		if err != nil {
			return requester{}, err
		}
		if err := s.checkPassword(r.Context(), user, pass); err != nil {
			return requester{}, err
		}
		return s.htpasswdRequester(user), nil
	}
	if name, ok, err := certUser(r); ok || err != nil {
		return requester{name: name, authn: authnCert}, err
	}
	return requester{authn: authnAnonymous}, nil
}

func (s *Service) htpasswdRequester(user string) requester {
	hash, _ := s.htp.lookup(user)
	return requester{name: user, authn: authnHtpasswd, entry: s.entryFingerprint(user, hash)}
}

// grant is the access list for user ("" = anonymous): each requested
// repository scope cut down to what the rules grant ("*" asks for every
// action), entries left with nothing dropped, registry:catalog:* for
// anyone who may pull somewhere, anything else (unknown types, actions,
// malformed scopes) dropped.
func (s *Service) grant(user string, fields []string) []Scope {
	var (
		order   []string
		granted = map[string]actionSet{}
		catalog bool
	)
	for _, f := range fields {
		sc, err := ParseScope(f)
		if err != nil {
			continue
		}
		switch {
		case sc.Type == "repository" && validRepo(sc.Name):
			var want actionSet
			for _, a := range sc.Actions {
				if a == "*" {
					want = allSet
				}
				want |= bit(a)
			}
			got := want & s.policy.rights(user, sc.Name)
			if got == 0 {
				continue
			}
			if _, seen := granted[sc.Name]; !seen {
				order = append(order, sc.Name)
			}
			granted[sc.Name] |= got
		case sc.Type == "registry" && sc.Name == "catalog" && contains(sc.Actions, "*"):
			catalog = catalog || s.policy.pullsSomewhere(user)
		}
	}
	out := []Scope{}
	for _, name := range order {
		out = append(out, Scope{Type: "repository", Name: name, Actions: granted[name].list()})
	}
	if catalog {
		out = append(out, Scope{Type: "registry", Name: "catalog", Actions: []string{"*"}})
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Challenge is the WWW-Authenticate value for a 401: Basic when the token
// service is off; with it on, Bearer realm="<token URL>",service="…",
// plus scope="…" when given and error="invalid_token" when invalid.
func (s *Service) Challenge(r *http.Request, scope string, invalid bool) string {
	if s.signing == nil {
		return s.basicChallenge()
	}
	var b strings.Builder
	b.WriteString(`Bearer realm=`)
	b.WriteString(quote(s.realm(r)))
	b.WriteString(`,service=`)
	b.WriteString(quote(s.cfg.Token.Service))
	if scope != "" {
		b.WriteString(`,scope=`)
		b.WriteString(quote(scope))
	}
	if invalid {
		b.WriteString(`,error="invalid_token"`)
	}
	return b.String()
}

func (s *Service) basicChallenge() string {
	realm := s.cfg.Token.Service
	if realm == "" {
		realm = "berth"
	}
	return `Basic realm=` + quote(realm) + `,charset="UTF-8"`
}

// Deny is the status and challenge for a refused request. Anonymous: 401
// and a challenge, so the client logs in. Bearer (with the token service
// on): 401 with error="insufficient_scope", so the client asks for a token
// with the scope. Basic, certificate, and bearer tokens of an external
// issuer when the token service is off: 403 (other credentials would be
// needed; the challenge is set anyway).
func (s *Service) Deny(r *http.Request, p Principal, scope string) (int, string) {
	switch {
	case p.Method == MethodBearer && s.signing != nil:
		return http.StatusUnauthorized, s.Challenge(r, scope, false) + `,error="insufficient_scope"`
	case p.Method == MethodBearer:
		return http.StatusForbidden, s.Challenge(r, scope, false)
	case p.Anonymous():
		return http.StatusUnauthorized, s.Challenge(r, scope, false)
	}
	return http.StatusForbidden, s.Challenge(r, scope, false)
}

// realm is the token endpoint's URL: the configured one, else built from
// the request (scheme from TLS; with TrustForwardedHeaders from
// X-Forwarded-Proto and X-Forwarded-Host), else from the Host header.
func (s *Service) realm(r *http.Request) string {
	if s.cfg.Token.Realm != "" {
		return s.cfg.Token.Realm
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if s.cfg.TrustForwardedHeaders {
		if p := strings.ToLower(firstValue(r.Header.Get("X-Forwarded-Proto"))); p == "http" || p == "https" {
			scheme = p
		}
		if h := firstValue(r.Header.Get("X-Forwarded-Host")); validHost(h) {
			host = h
		}
	}
	if !validHost(host) {
		host = "localhost"
	}
	return scheme + "://" + host + "/auth/token"
}

func firstValue(v string) string {
	v, _, _ = strings.Cut(v, ",")
	return strings.TrimSpace(v)
}

// validHost: a host[:port] of name or IP characters only, so nothing a
// client sends can break out of the quoted realm.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-:[]_%", c) >= 0) {
			return false
		}
	}
	return true
}

// quote makes an RFC 9110 quoted-string, dropping control characters.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c < ' ' || c == 0x7f:
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
