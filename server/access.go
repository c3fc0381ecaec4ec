package server

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"

	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/config"
)

// authConfig converts the configuration's auth section (and what it
// depends on elsewhere in the config) into the auth package's own type.
func authConfig(cfg config.Config) auth.Config {
	a := cfg.Auth
	ac := auth.Config{
		Htpasswd: a.Htpasswd,
		Groups:   a.Groups,
		Admins:   a.Admins,
		Token: auth.TokenConfig{
			Enabled:        a.Token.Enabled,
			Realm:          a.Token.Realm,
			Service:        a.Token.Service,
			Issuer:         a.Token.Issuer,
			KeyFile:        a.Token.KeyFile,
			Expiry:         a.Token.Expiry,
			DefaultKeyPath: tokenKeyPath(cfg),
		},
		TrustForwardedHeaders: cfg.HTTP.TrustForwardedHeaders,
	}
	for _, r := range a.Access {
		ac.Rules = append(ac.Rules, auth.Rule{Patterns: r.Repositories, Anonymous: r.Anonymous, Users: r.Users, Groups: r.Groups})
	}
	for _, is := range a.External {
		ic := auth.IssuerConfig{Issuer: is.Issuer, Audience: is.Audience, JWKSFile: is.JWKSFile, TrustAccess: is.TrustAccess}
		for _, k := range is.Keys {
			ic.Keys = append(ic.Keys, auth.KeyConfig{KID: k.KID, Alg: k.Alg, PublicKeyFile: k.PublicKeyFile})
		}
		ac.External = append(ac.External, ic)
	}
	return ac
}

// withAuth authenticates every request (but the token endpoint's, which
// reads its own credentials) and puts the principal in its context.
// Credentials that do not verify are refused here with 401, whatever the
// request was for: a client that sends a wrong password or a forged token
// learns nothing more. No credentials means anonymous; what anonymous may
// do is the access rules' business.
func withAuth(next http.Handler, svc *auth.Service, logger *slog.Logger, fails *rateLimiter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == tokenPath {
			next.ServeHTTP(w, r)
			return
		}
		addr := "addr:" + addrClient(clientHost(r))
		if fails != nil && r.Header.Get("Authorization") != "" {
			if out, wait := fails.exhausted(addr); out {
				tooMany(w, wait)
				return
			}
		}
		p, err := svc.Authenticate(r)
		if err != nil {
			if fails != nil {
				fails.allow(addr)
			}
			auditAuthFailed(logger, r, w.Header().Get("X-Request-Id"), err.Error())
			w.Header().Set("WWW-Authenticate", svc.Challenge(r, "", true))
			writeJSONError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required: the credentials sent are not valid")
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

// tokenPath is where the token service answers.
const tokenPath = "/auth/token"

// basicUser is the user name a Basic Authorization header claims (for the
// audit log of a failed login; never the password).
func basicUser(r *http.Request) string {
	u, _, ok := r.BasicAuth()
	if !ok || len(u) > 128 {
		return ""
	}
	return u
}

// clientHost is the client's address without the port.
func clientHost(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

// writeJSONError answers in the distribution spec's error format.
func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"errors":[{"code":"` + code + `","message":` + quoteJSON(msg) + `}]}` + "\n"))
}

func quoteJSON(s string) string {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
		default:
			b = append(b, c)
		}
	}
	return string(append(b, '"'))
}

// registryAccess adapts the auth service to registry.Access.
type registryAccess struct{ svc *auth.Service }

func (a registryAccess) Allowed(r *http.Request, repo, action string) bool {
	return a.svc.Allowed(auth.FromContext(r.Context()), repo, action)
}

func (a registryAccess) CatalogAllowed(r *http.Request) bool {
	return a.svc.CatalogAllowed(auth.FromContext(r.Context()))
}

func (a registryAccess) CatalogVisible(r *http.Request, repo string) bool {
	return a.svc.CatalogVisible(auth.FromContext(r.Context()), repo)
}

// Authenticated: a user, or any verified bearer token (an anonymous
// token too: the client did the token flow, and GET /v2/ must not send it
// round again).
func (a registryAccess) Authenticated(r *http.Request) bool {
	p := auth.FromContext(r.Context())
	return !p.Anonymous() || p.Method == auth.MethodBearer
}

func (a registryAccess) Deny(w http.ResponseWriter, r *http.Request, scope string) int {
	status, challenge := a.svc.Deny(r, auth.FromContext(r.Context()), scope)
	if challenge != "" {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	return status
}

// canPull is the side doors' filter (web catalogue, search).
func canPull(svc *auth.Service) func(r *http.Request, repo string) bool {
	return func(r *http.Request, repo string) bool {
		return svc.Allowed(auth.FromContext(r.Context()), repo, auth.Pull)
	}
}

// flatpakAccess adapts the auth service to flatpak.Access.
type flatpakAccess struct{ svc *auth.Service }

func (a flatpakAccess) View(r *http.Request) (string, func(repo string) bool) {
	p := auth.FromContext(r.Context())
	return p.ViewKey(), func(repo string) bool { return a.svc.Allowed(p, repo, auth.Pull) }
}

// clientID names the client for the registry's per-client upload cap:
// its user name when it has one, else its address.
func clientID(r *http.Request) string {
	if p := auth.FromContext(r.Context()); !p.Anonymous() {
		return "user:" + p.Name
	}
	return "addr:" + addrClient(clientHost(r))
}

// addrClient is the address that counts as one anonymous client: the
// IPv4 address, or the /64 of an IPv6 one (a host gets a whole /64, so
// counting single IPv6 addresses would cap nothing).
func addrClient(host string) string {
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Unmap().Is4() {
		return host
	}
	p, err := ip.Prefix(64)
	if err != nil {
		return host
	}
	return p.String()
}

// tokenKeyPath is where the token service keeps the signing key it
// generates when auth.token.key_file is not set.
func tokenKeyPath(cfg config.Config) string {
	return filepath.Join(cfg.Storage.Dir, "auth", "token-key.pem")
}

// capOption turns a config cap (0 disables it) into a registry option (0
// takes the default, a negative value disables it).
func capOption(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
