package auth

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Action is a right on a repository: Pull, Push, Overwrite or Delete.
type Action = string

// The actions an access rule can grant. Overwrite is pushing a tag that
// already exists (re-pointing it); Push alone only creates new tags and
// uploads content.
const (
	Pull      = "pull"
	Push      = "push"
	Overwrite = "overwrite"
	Delete    = "delete"
)

// allActions in their canonical order (the order of access claims).
var allActions = []Action{Pull, Push, Overwrite, Delete}

// The ways a principal authenticated (Principal.Method).
const (
	MethodAnonymous = "anonymous"
	MethodBasic     = "basic"
	MethodBearer    = "bearer"
	MethodCert      = "cert"
)

// How the subject of one of Berth's own tokens authenticated at the token
// endpoint (the token's berth_authn claim).
const (
	authnHtpasswd  = "htpasswd"
	authnCert      = "cert"
	authnAnonymous = "anonymous"
)

// MaxTokenBytes caps a bearer token and an Authorization header: longer
// ones are refused before any parsing (golang-jwt CVE-2025-30204 class).
const MaxTokenBytes = 8 << 10

// leeway is the clock skew allowed on exp, nbf and iat.
const leeway = 30 * time.Second

// ErrUnauthenticated is wrapped by every error of Authenticate: the
// request carried credentials that are wrong, expired, forged or revoked.
var ErrUnauthenticated = errors.New("unauthenticated")

// Config is the auth part of Berth's configuration (the server converts
// config.Auth into it; this package imports nothing from the project).
type Config struct {
	// Htpasswd is a file of "user:bcrypt-hash" lines, re-read when it changes.
	Htpasswd string
	// Groups: group name → user names.
	Groups map[string][]string
	// Admins may do everything everywhere: user names, or "group:NAME".
	Admins []string
	// Rules grant actions on repositories; rights add up over every
	// matching rule, and nothing is granted that no rule names.
	Rules []Rule
	// Token is Berth's own token service.
	Token TokenConfig
	// External issuers whose tokens are accepted.
	External []IssuerConfig
	// TrustForwardedHeaders builds the token realm from X-Forwarded-Proto
	// and X-Forwarded-Host when Token.Realm is empty (behind a proxy).
	TrustForwardedHeaders bool
}

// Rule grants actions on the repositories matching any of Patterns.
type Rule struct {
	Patterns []string
	// Anonymous actions apply to everyone, authenticated or not.
	Anonymous []Action
	// Users: user name → actions; "*" is any authenticated user.
	Users map[string][]Action
	// Groups: group name (Config.Groups) → actions.
	Groups map[string][]Action
}

// TokenConfig configures the token endpoint and the Bearer challenge.
type TokenConfig struct {
	Enabled bool
	// Realm is the token endpoint's absolute URL; empty: built per request.
	Realm   string
	Service string // the challenge's service and the tokens' audience
	Issuer  string // the tokens' iss
	// KeyFile is a PEM private key: EC P-256 (ES256), RSA (RS256) or
	// Ed25519 (EdDSA).
	KeyFile string
	Expiry  time.Duration
	// DefaultKeyPath is where a P-256 key is generated once (file 0600,
	// directory 0700) and kept when KeyFile is empty.
	DefaultKeyPath string
}

// IssuerConfig is an external token issuer.
type IssuerConfig struct {
	Issuer, Audience string
	Keys             []KeyConfig
	// JWKSFile is a JSON Web Key Set; each key needs kid and alg.
	JWKSFile string
	// TrustAccess grants the access claim as it is, without intersecting
	// it with the rules for the token's subject.
	TrustAccess bool
}

// KeyConfig is one public key of an external issuer, in a PEM file.
type KeyConfig struct {
	KID, Alg, PublicKeyFile string
}

// Principal is who made a request, as Authenticate established it.
type Principal struct {
	// Name is the user name; "" is anonymous.
	Name string
	// Method is MethodAnonymous, MethodBasic, MethodBearer or MethodCert.
	Method string

	access      []Scope // bearer: the token's access claim
	issuer      string  // bearer: the token's iss
	trustAccess bool    // bearer: the external issuer's access claim is granted as is
	authn       string  // own bearer token: how its subject authenticated
}

// Anonymous reports whether the principal has no user name.
func (p Principal) Anonymous() bool { return p.Name == "" }

// Issuer is the iss of the bearer token the principal presented ("" for
// other methods).
func (p Principal) Issuer() string { return p.issuer }

// String names the principal for logs.
func (p Principal) String() string {
	if p.Name == "" {
		return p.Method + ":(anonymous)"
	}
	return p.Method + ":" + p.Name
}

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal stored by WithPrincipal, or an
// anonymous one.
func FromContext(ctx context.Context) Principal {
	if p, ok := ctx.Value(ctxKey{}).(Principal); ok {
		return p
	}
	return Principal{Method: MethodAnonymous}
}

// Service authenticates requests, evaluates the access policy and issues
// tokens. It is safe for concurrent use.
type Service struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	policy *policy
	htp    *htpasswd // nil when no htpasswd file is configured

	// Own token service (signing != nil when Token.Enabled).
	signing *signingKey
	// entryKey keys the htpasswd-entry fingerprint put in own tokens, so a
	// password change revokes outstanding tokens.
	entryKey []byte

	issuers map[string]*issuer // external issuers by iss
}

// New checks cfg, loads the htpasswd file and the keys, and returns the
// service. A configured file that is missing or invalid is an error.
func New(cfg Config, logger *slog.Logger) (*Service, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, log: logger, now: time.Now, issuers: map[string]*issuer{}}
	pol, err := newPolicy(cfg)
	if err != nil {
		return nil, err
	}
	s.policy = pol
	if cfg.Htpasswd != "" {
		h, err := openHtpasswd(cfg.Htpasswd, logger)
		if err != nil {
			return nil, err
		}
		s.htp = h
	}
	if cfg.Token.Enabled {
		t := cfg.Token
		if t.Service == "" || strings.ContainsAny(t.Service, "\"\\,\r\n\t ") {
			return nil, errors.New("auth: token service name is required, without spaces, quotes or commas")
		}
		if t.Issuer == "" {
			return nil, errors.New("auth: token issuer is required")
		}
		if t.Expiry <= 0 {
			return nil, errors.New("auth: token expiry must be positive")
		}
		var k *signingKey
		switch {
		case t.KeyFile != "":
			k, err = loadSigningKey(t.KeyFile)
		case t.DefaultKeyPath != "":
			k, err = loadOrGenerateKey(t.DefaultKeyPath, logger)
		default:
			err = errors.New("auth: the token service needs a key file or a default key path")
		}
		if err != nil {
			return nil, err
		}
		s.signing = k
		s.entryKey = k.derive("berth htpasswd entry fingerprint")
	}
	for i, ic := range cfg.External {
		is, err := loadIssuer(ic)
		if err != nil {
			return nil, fmt.Errorf("auth: external issuer %d (%q): %w", i, ic.Issuer, err)
		}
		if _, dup := s.issuers[ic.Issuer]; dup {
			return nil, fmt.Errorf("auth: external issuer %q is configured twice", ic.Issuer)
		}
		if cfg.Token.Enabled && ic.Issuer == cfg.Token.Issuer {
			return nil, fmt.Errorf("auth: external issuer %q has the token service's own issuer name", ic.Issuer)
		}
		s.issuers[ic.Issuer] = is
	}
	return s, nil
}

// Close releases what the service holds (nothing runs in the background).
func (s *Service) Close() error { return nil }

// PublicKey is the public half of the token signing key (nil when the
// token service is off), for tests and for publishing a JWKS.
func (s *Service) PublicKey() crypto.PublicKey {
	if s.signing == nil {
		return nil
	}
	return s.signing.pub
}

// KeyID is the token signing key's kid (its RFC 7638 thumbprint).
func (s *Service) KeyID() string {
	if s.signing == nil {
		return ""
	}
	return s.signing.kid
}

// unauthenticated wraps ErrUnauthenticated with a reason for the logs.
func unauthenticated(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnauthenticated, fmt.Sprintf(format, args...))
}

// Authenticate establishes who made r. No credentials: an anonymous
// principal. An Authorization header "Basic …" (htpasswd) or "Bearer …"
// (own or external token), else a verified client certificate (its leaf's
// CommonName). Wrong, expired, forged or revoked credentials: an error
// wrapping ErrUnauthenticated.
func (s *Service) Authenticate(r *http.Request) (Principal, error) {
	hs := r.Header.Values("Authorization")
	if len(hs) > 1 {
		return Principal{}, unauthenticated("more than one Authorization header")
	}
	// containers/image (skopeo, podman, buildah) answers a Basic
	// challenge without credentials with "Basic Og==" (an empty user and
	// password): that is an anonymous request, not a failed login.
	if len(hs) == 1 && !anonymousBasic(hs[0]) {
		scheme, cred, err := parseAuthorization(hs[0])
		if err != nil {
			return Principal{}, err
		}
		switch scheme {
		case MethodBasic:
			user, pass, err := parseBasic(cred)
			if err != nil {
				return Principal{}, err
			}
			if err := s.checkPassword(r.Context(), user, pass); err != nil {
				return Principal{}, err
			}
			return Principal{Name: user, Method: MethodBasic}, nil
		case MethodBearer:
			return s.verifyToken(cred)
		}
	}
	if name, ok, err := certUser(r); ok || err != nil {
		if err != nil {
			return Principal{}, err
		}
		return Principal{Name: name, Method: MethodCert}, nil
	}
	return Principal{Method: MethodAnonymous}, nil
}

// anonymousBasic reports whether h is Basic auth with an empty user name
// and an empty password.
func anonymousBasic(h string) bool {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(h), " ")
	return ok && strings.EqualFold(scheme, "basic") && strings.TrimSpace(cred) == "Og=="
}

// certUser is the CommonName of a verified client certificate.
func certUser(r *http.Request) (string, bool, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return "", false, nil
	}
	cn := r.TLS.VerifiedChains[0][0].Subject.CommonName
	if !validUserName(cn) {
		return "", false, unauthenticated("client certificate: CommonName %q is not a valid user name", cn)
	}
	return cn, true, nil
}

// validUserName: non-empty, at most 255 bytes, no ':' (the htpasswd
// separator and the "group:" prefix), no '*' (the any-user key), no
// spaces, control or bidi-override characters (names end up in logs and
// pages).
func validUserName(u string) bool {
	if u == "" || len(u) > 255 {
		return false
	}
	for _, c := range u {
		bidi := c == 0x200e || c == 0x200f || c >= 0x202a && c <= 0x202e || c >= 0x2066 && c <= 0x2069
		if c <= ' ' || c == 0x7f || c == ':' || c == '*' || c == '"' || c == '\\' || (c >= 0x80 && c <= 0x9f) || c == 0xfffd || bidi {
			return false
		}
	}
	return true
}
