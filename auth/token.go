package auth

import (
	"cmp"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// claims are the claims of Berth's tokens, and what is read from external
// ones: the registered claims plus the Docker token format's access list.
type claims struct {
	jwt.RegisteredClaims
	Access []Scope `json:"access"`
	// Authn records how the subject of one of Berth's own tokens
	// authenticated: "htpasswd", "cert" or "anonymous".
	Authn string `json:"berth_authn,omitempty"`
	// Entry fingerprints the subject's htpasswd line: a password change
	// revokes the tokens issued before it.
	Entry string `json:"berth_entry,omitempty"`
}

// refusedHeaders are JOSE header parameters that point at or carry key
// material. Keys come from the configuration only; a token that carries
// any of these is refused outright rather than having them ignored, so
// a confused issuer or an attacker gets a clear "no" (CVE-2025-24976).
var refusedHeaders = []string{"jwk", "jku", "x5u", "x5c", "crit"}

// entryFingerprint binds a token to the htpasswd line it was issued for.
func (s *Service) entryFingerprint(user string, hash []byte) string {
	m := hmac.New(sha256.New, s.entryKey)
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write(hash)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// issue signs a token for sub with the given access.
func (s *Service) issue(sub, authn, entry string, access []Scope) (string, time.Time, time.Time, error) {
	now := s.now().Truncate(time.Second)
	exp := now.Add(s.cfg.Token.Expiry)
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg.Token.Issuer,
			Subject:   sub,
			Audience:  jwt.ClaimStrings{s.cfg.Token.Service},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        rand.Text(),
		},
		Access: access,
		Authn:  authn,
		Entry:  entry,
	}
	if c.Access == nil {
		c.Access = []Scope{}
	}
	t := jwt.NewWithClaims(s.signing.method, c)
	t.Header["kid"] = s.signing.kid
	signed, err := t.SignedString(s.signing.priv)
	if err != nil {
		return "", time.Time{}, time.Time{}, fmt.Errorf("auth: signing a token: %w", err)
	}
	return signed, now, exp, nil
}

// verifyToken checks a bearer token, Berth's own or an external issuer's,
// and returns its principal.
//
// Order: length cap before any parsing; an unverified parse only to read
// iss and kid and to refuse key-carrying headers; the key chosen by
// (iss, kid) from the configuration alone, with its algorithm pinned;
// then the verified parse checks the signature, iss, aud, exp (required),
// nbf and iat with a small leeway. Own tokens are then re-checked against
// the present: an htpasswd subject must still be in the file with the
// same password.
func (s *Service) verifyToken(tok string) (Principal, error) {
	if len(tok) > MaxTokenBytes {
		return Principal{}, unauthenticated("bearer token longer than %d bytes", MaxTokenBytes)
	}
	var peek claims
	t, _, err := jwt.NewParser(jwt.WithStrictDecoding()).ParseUnverified(tok, &peek)
	if err != nil {
		return Principal{}, unauthenticated("bearer token: %v", err)
	}
	for _, h := range refusedHeaders {
		if _, ok := t.Header[h]; ok {
			return Principal{}, unauthenticated("bearer token: header %q is not accepted (keys come from the configuration only)", h)
		}
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return Principal{}, unauthenticated("bearer token: no kid")
	}
	iss := peek.Issuer
	var (
		key         any
		alg, aud    string
		own         bool
		trustAccess bool
	)
	switch is := s.issuers[iss]; {
	case s.signing != nil && iss == s.cfg.Token.Issuer:
		if kid != s.signing.kid {
			return Principal{}, unauthenticated("bearer token: kid %q is not the token service's key", kid)
		}
		key, alg, aud, own = s.signing.pub, s.signing.method.Alg(), s.cfg.Token.Service, true
	case is != nil:
		vk, ok := is.keys[kid]
		if !ok {
			return Principal{}, unauthenticated("bearer token: issuer %q has no key %q", iss, kid)
		}
		key, alg, aud, trustAccess = vk.key, vk.alg, is.cfg.Audience, is.cfg.TrustAccess
	default:
		return Principal{}, unauthenticated("bearer token: unknown issuer %q", iss)
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{alg}),
		jwt.WithIssuer(iss),
		jwt.WithAudience(aud),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(s.now),
		jwt.WithStrictDecoding(),
	)
	var c claims
	if _, err := p.ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return key, nil }); err != nil {
		return Principal{}, unauthenticated("bearer token: %v", err)
	}
	pr := Principal{Name: c.Subject, Method: MethodBearer, access: c.Access, issuer: iss, trustAccess: trustAccess}
	if c.Subject != "" && !validUserName(c.Subject) {
		return Principal{}, unauthenticated("bearer token: subject is not a valid user name")
	}
	if !own {
		return pr, nil
	}
	pr.authn = c.Authn
	switch c.Authn {
	case authnAnonymous:
		if c.Subject != "" {
			return Principal{}, unauthenticated("bearer token: anonymous token with a subject")
		}
	case authnCert:
		if c.Subject == "" {
			return Principal{}, unauthenticated("bearer token: certificate token without a subject")
		}
	case authnHtpasswd:
		if s.htp == nil {
			return Principal{}, unauthenticated("bearer token: htpasswd subject but no htpasswd file")
		}
		hash, ok := s.htp.lookup(c.Subject)
		if !ok {
			return Principal{}, unauthenticated("bearer token: user %q is no longer in the htpasswd file", c.Subject)
		}
		if !hmac.Equal([]byte(c.Entry), []byte(s.entryFingerprint(c.Subject, hash))) {
			return Principal{}, unauthenticated("bearer token: the password of %q changed since the token was issued", c.Subject)
		}
	default:
		return Principal{}, unauthenticated("bearer token: unknown authentication method %q", c.Authn)
	}
	return pr, nil
}

// tokenGrants: the bearer principal's access claim holds action a on the
// repository. A pushed tag that already exists needs overwrite; clients
// never ask for it, so push in the token stands for it and the rules
// decide — except for a trusted external claim, which must say
// "overwrite" itself.
func (p Principal) tokenGrants(repo string, a Action) bool {
	for _, sc := range p.access {
		if sc.Type != "repository" || sc.Name != repo {
			continue
		}
		if slices.Contains(sc.Actions, a) || slices.Contains(sc.Actions, "*") {
			return true
		}
		if a == Overwrite && !p.trustAccess && slices.Contains(sc.Actions, Push) {
			return true
		}
	}
	return false
}

// Allowed reports whether p may do a on repo: the access rules evaluated
// now (admins may do everything); for a bearer principal also within the
// token's access claim (or the claim alone for an issuer with
// TrustAccess).
func (s *Service) Allowed(p Principal, repo string, a Action) bool {
	if bit(a) == 0 || !validRepo(repo) {
		return false
	}
	if p.Method == MethodBearer {
		if !p.tokenGrants(repo, a) {
			return false
		}
		if p.trustAccess {
			return true
		}
	}
	return s.policy.rights(p.Name, repo).has(a)
}

// CatalogAllowed reports whether p may list the catalog: non-bearer
// principals always (the caller keeps only what they may pull); a
// bearer principal when its token holds registry:catalog:*.
func (s *Service) CatalogAllowed(p Principal) bool {
	if p.Method != MethodBearer {
		return true
	}
	for _, sc := range p.access {
		if sc.Type == "registry" && sc.Name == "catalog" && slices.Contains(sc.Actions, "*") {
			return true
		}
	}
	return false
}

// CatalogVisible reports whether the catalog listing shows repo to p:
// what p may pull, except that a bearer token holding registry:catalog:*
// (which CatalogAllowed requires of bearer principals) shows what the
// rules let its subject pull, not only the repositories the token names —
// listing the catalog is what that scope was granted for.
func (s *Service) CatalogVisible(p Principal, repo string) bool {
	if p.Method != MethodBearer || p.trustAccess || !s.CatalogAllowed(p) {
		return s.Allowed(p, repo, Pull)
	}
	return validRepo(repo) && s.policy.rights(p.Name, repo).has(Pull)
}

// ViewKey names what p may see, for caches of filtered answers (the
// Flatpak index): two principals with the same key see the same
// repositories. The rules are fixed for the service's life, so a user
// name decides for Basic and certificate principals; a bearer principal
// is also bounded by its token, so its key includes a hash of the
// token's access claim and issuer.
func (p Principal) ViewKey() string {
	if p.Method != MethodBearer {
		if p.Name == "" {
			return "anonymous"
		}
		return "user:" + p.Name
	}
	acc := slices.Clone(p.access)
	slices.SortFunc(acc, func(a, b Scope) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Name, b.Name))
	})
	h := sha256.New()
	fmt.Fprintf(h, "%q %t\n", p.issuer, p.trustAccess)
	for _, sc := range acc {
		fmt.Fprintf(h, "%q %q %q\n", sc.Type, sc.Name, sc.Actions)
	}
	return "bearer:" + p.Name + ":" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:18])
}
