package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// extFixture adds two external issuers: idp (EC P-256, kid idp-1, rules
// apply) and other (RSA, kid other-1, trust_access).
type extFixture struct {
	*fixture
	idpKey   *ecdsa.PrivateKey
	otherKey *rsa.PrivateKey
}

const (
	idpIss   = "https://idp.test"
	otherIss = "https://other.test"
)

func newExtFixture(t *testing.T) *extFixture {
	t.Helper()
	dir := t.TempDir()
	idp := newECKey(t, elliptic.P256())
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	idpPEM := pemPublic(t, dir, "idp.pem", &idp.PublicKey)
	otherPEM := pemPublic(t, dir, "other.pem", &other.PublicKey)
	f := newFixture(t, func(c *Config) {
		c.External = []IssuerConfig{
			{Issuer: idpIss, Audience: "berth.test", Keys: []KeyConfig{{KID: "idp-1", Alg: "ES256", PublicKeyFile: idpPEM}}},
			{Issuer: otherIss, Audience: "berth-other", TrustAccess: true, Keys: []KeyConfig{{KID: "other-1", Alg: "RS256", PublicKeyFile: otherPEM}}},
		}
	})
	return &extFixture{fixture: f, idpKey: idp, otherKey: other}
}

// extClaims are valid claims of an external token, as of f.now.
func (f *fixture) extClaims(iss, aud, sub string, access ...Scope) claims {
	return claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: iss, Subject: sub, Audience: jwt.ClaimStrings{aud},
			ExpiresAt: jwt.NewNumericDate(f.now.Add(time.Minute)),
			IssuedAt:  jwt.NewNumericDate(f.now),
			NotBefore: jwt.NewNumericDate(f.now),
		},
		Access: access,
	}
}

func sign(t testing.TB, m jwt.SigningMethod, kid string, c jwt.Claims, key any, extra map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	for k, v := range extra {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ownClaims are the claims of a valid own token for alice.
func (f *fixture) ownClaims(access ...Scope) claims {
	hash, _ := f.svc.htp.lookup("alice")
	c := f.extClaims("berth-issuer", "berth.test", "alice", access...)
	c.Authn, c.Entry = authnHtpasswd, f.svc.entryFingerprint("alice", hash)
	return c
}

func mustRefuse(t *testing.T, f *fixture, name, tok string) {
	t.Helper()
	p, err := f.bearer(tok)
	if !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("%s: accepted (%+v, %v)", name, p, err)
	}
}

func TestOwnTokenAccepted(t *testing.T) {
	f := newFixture(t)
	p, err := f.bearer(f.token("alice", authnHtpasswd, repoScope("team/a", Pull, Push)))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "alice" || p.Method != MethodBearer || p.Anonymous() {
		t.Fatalf("principal %+v", p)
	}
	// The hand-built claims the attack tests start from are valid too, so
	// each refusal below is the attack's doing.
	c := f.ownClaims(repoScope("team/a", Pull))
	if _, err := f.bearer(sign(t, jwt.SigningMethodES256, f.svc.KeyID(), c, f.svc.signing.priv, nil)); err != nil {
		t.Fatalf("baseline own token refused: %v", err)
	}
}

// Token for repository A used on B.
func TestAttackTokenForOtherRepo(t *testing.T) {
	f := newFixture(t)
	p, err := f.bearer(f.token("alice", authnHtpasswd, repoScope("team/a", Pull, Push)))
	if err != nil {
		t.Fatal(err)
	}
	if !f.svc.Allowed(p, "team/a", Pull) {
		t.Fatal("token does not work on its own repository")
	}
	for _, a := range allActions {
		if f.svc.Allowed(p, "team/b", a) {
			t.Errorf("token for team/a allows %s on team/b", a)
		}
	}
}

// A pull token trying push, delete, overwrite — even for an admin.
func TestAttackPullTokenWrites(t *testing.T) {
	f := newFixture(t)
	for _, user := range []string{"alice", "root"} {
		p, err := f.bearer(f.token(user, authnHtpasswd, repoScope("team/a", Pull)))
		if err != nil {
			t.Fatal(err)
		}
		if !f.svc.Allowed(p, "team/a", Pull) {
			t.Fatalf("%s: pull refused", user)
		}
		for _, a := range []Action{Push, Delete, Overwrite} {
			if f.svc.Allowed(p, "team/a", a) {
				t.Errorf("%s: pull token allows %s", user, a)
			}
		}
	}
	// push in the token stands for overwrite only where the rules grant
	// overwrite (alice yes; a push-only token of bob, whose rules have no
	// push, gives nothing).
	p, _ := f.bearer(f.token("alice", authnHtpasswd, repoScope("team/a", Pull, Push)))
	if !f.svc.Allowed(p, "team/a", Overwrite) || f.svc.Allowed(p, "team/a", Delete) {
		t.Error("alice's pull,push token: overwrite should follow the rules, delete never")
	}
	p, _ = f.bearer(f.token("bob", authnHtpasswd, repoScope("team/a", Pull, Push, Overwrite, Delete)))
	for _, a := range []Action{Push, Overwrite, Delete} {
		if f.svc.Allowed(p, "team/a", a) {
			t.Errorf("token claiming %s beyond bob's rules allowed it (rules not re-evaluated)", a)
		}
	}
}

func TestAttackExpiredAndNotYetValid(t *testing.T) {
	f := newFixture(t)
	tok := f.token("alice", authnHtpasswd, repoScope("team/a", Pull))
	f.now = f.now.Add(f.cfg.Token.Expiry + leeway + time.Second)
	mustRefuse(t, f, "expired", tok)

	f.now = f.now.Add(-(f.cfg.Token.Expiry + leeway + time.Second))
	future := f.now.Add(10 * time.Minute)
	c := f.ownClaims(repoScope("team/a", Pull))
	c.NotBefore = jwt.NewNumericDate(future)
	mustRefuse(t, f, "nbf in the future", sign(t, jwt.SigningMethodES256, f.svc.KeyID(), c, f.svc.signing.priv, nil))
	c = f.ownClaims(repoScope("team/a", Pull))
	c.IssuedAt = jwt.NewNumericDate(future)
	mustRefuse(t, f, "iat in the future", sign(t, jwt.SigningMethodES256, f.svc.KeyID(), c, f.svc.signing.priv, nil))
	c = f.ownClaims(repoScope("team/a", Pull))
	c.ExpiresAt = nil
	mustRefuse(t, f, "no exp", sign(t, jwt.SigningMethodES256, f.svc.KeyID(), c, f.svc.signing.priv, nil))
}

func TestAttackAlgNone(t *testing.T) {
	f := newFixture(t)
	c := f.ownClaims(repoScope("team/a", Pull))
	for _, alg := range []string{"none", "None", "NONE"} {
		h := b64json(t, map[string]any{"alg": alg, "typ": "JWT", "kid": f.svc.KeyID()})
		tok := h + "." + b64json(t, c) + "."
		mustRefuse(t, f, "alg "+alg, tok)
	}
	tok := sign(t, jwt.SigningMethodNone, f.svc.KeyID(), c, jwt.UnsafeAllowNoneSignatureType, nil)
	mustRefuse(t, f, "alg none (library-made)", tok)
}

// HS256 signed with the public key's bytes (the RS/HS confusion).
func TestAttackHS256WithPublicKey(t *testing.T) {
	f := newFixture(t)
	der, err := x509.MarshalPKIXPublicKey(f.svc.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	c := f.ownClaims(repoScope("team/a", Pull, Push))
	for name, secret := range map[string][]byte{"PEM": pemBytes, "DER": der} {
		tok := sign(t, jwt.SigningMethodHS256, f.svc.KeyID(), c, secret, nil)
		mustRefuse(t, f, "HS256 with the public key as "+name, tok)
	}
	// And against an external issuer's key.
	e := newExtFixture(t)
	der, _ = x509.MarshalPKIXPublicKey(&e.idpKey.PublicKey)
	ec := e.extClaims(idpIss, "berth.test", "alice", repoScope("team/a", Pull))
	mustRefuse(t, e.fixture, "HS256 with an external issuer's key", sign(t, jwt.SigningMethodHS256, "idp-1", ec, der, nil))
}

// An embedded jwk with a trusted kid, signed with the attacker's key
// (CVE-2025-24976); and a jwk header on an otherwise valid token.
func TestAttackEmbeddedJWK(t *testing.T) {
	f := newExtFixture(t)
	evil := newECKey(t, elliptic.P256())
	size := 32
	pt, _ := evil.PublicKey.Bytes()
	jwk := map[string]any{"kty": "EC", "crv": "P-256",
		"x": base64.RawURLEncoding.EncodeToString(pt[1 : 1+size]),
		"y": base64.RawURLEncoding.EncodeToString(pt[1+size:])}
	c := f.ownClaims(repoScope("team/a", Pull, Push))
	mustRefuse(t, f.fixture, "own kid + jwk, attacker-signed", sign(t, jwt.SigningMethodES256, f.svc.KeyID(), c, evil, map[string]any{"jwk": jwk}))
	ec := f.extClaims(idpIss, "berth.test", "root", repoScope("team/a", "*"))
	mustRefuse(t, f.fixture, "external kid + jwk, attacker-signed", sign(t, jwt.SigningMethodES256, "idp-1", ec, evil, map[string]any{"jwk": jwk}))
	// Refused outright, even when the real key signed it.
	mustRefuse(t, f.fixture, "jwk header on a genuine token", sign(t, jwt.SigningMethodES256, f.svc.KeyID(), c, f.svc.signing.priv, map[string]any{"jwk": jwk}))
}

// jku / x5u / x5c pointing elsewhere are never fetched nor used.
func TestAttackKeyURLHeaders(t *testing.T) {
	f := newFixture(t)
	var hits atomic.Int64
	evilSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer evilSrv.Close()
	evil := newECKey(t, elliptic.P256())
	certDER := selfSigned(t, evil)
	c := f.ownClaims(repoScope("team/a", Pull, Push))
	for name, hdr := range map[string]map[string]any{
		"jku":  {"jku": evilSrv.URL + "/jwks.json"},
		"x5u":  {"x5u": evilSrv.URL + "/cert.pem"},
		"x5c":  {"x5c": []string{base64.StdEncoding.EncodeToString(certDER)}},
		"crit": {"crit": []string{"exp"}},
	} {
		mustRefuse(t, f, name+", attacker-signed", sign(t, jwt.SigningMethodES256, f.svc.KeyID(), c, evil, hdr))
		mustRefuse(t, f, name+" on a genuine token", sign(t, jwt.SigningMethodES256, f.svc.KeyID(), c, f.svc.signing.priv, hdr))
	}
	if hits.Load() != 0 {
		t.Fatalf("the verifier fetched %d URLs from token headers", hits.Load())
	}
}

func selfSigned(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: bigOne(), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestAttackWrongAudienceAndIssuer(t *testing.T) {
	f := newExtFixture(t)
	key, kid := f.svc.signing.priv, f.svc.KeyID()
	c := f.ownClaims(repoScope("team/a", Pull))
	c.Audience = jwt.ClaimStrings{"other-service"}
	mustRefuse(t, f.fixture, "own: wrong aud", sign(t, jwt.SigningMethodES256, kid, c, key, nil))
	c.Audience = nil
	mustRefuse(t, f.fixture, "own: no aud", sign(t, jwt.SigningMethodES256, kid, c, key, nil))
	c = f.ownClaims(repoScope("team/a", Pull))
	c.Issuer = "someone-else"
	mustRefuse(t, f.fixture, "own key, unknown iss", sign(t, jwt.SigningMethodES256, kid, c, key, nil))
	c.Issuer = idpIss // our key presented as the idp's
	mustRefuse(t, f.fixture, "own key, external iss", sign(t, jwt.SigningMethodES256, kid, c, key, nil))

	ec := f.extClaims(idpIss, "berth.test", "alice", repoScope("team/a", Pull))
	if _, err := f.bearer(sign(t, jwt.SigningMethodES256, "idp-1", ec, f.idpKey, nil)); err != nil {
		t.Fatalf("baseline external token refused: %v", err)
	}
	ec.Audience = jwt.ClaimStrings{"berth-other"}
	mustRefuse(t, f.fixture, "external: another issuer's audience", sign(t, jwt.SigningMethodES256, "idp-1", ec, f.idpKey, nil))
	ec = f.extClaims("https://idp.test/", "berth.test", "alice", repoScope("team/a", Pull))
	mustRefuse(t, f.fixture, "external: iss with a trailing slash", sign(t, jwt.SigningMethodES256, "idp-1", ec, f.idpKey, nil))
	// The idp's key claiming to be Berth's own issuer.
	oc := f.ownClaims(repoScope("team/a", Pull))
	mustRefuse(t, f.fixture, "external key, own iss and kid", sign(t, jwt.SigningMethodES256, kid, oc, f.idpKey, nil))
}

func TestAttackTampered(t *testing.T) {
	f := newFixture(t)
	tok := f.token("bob", authnHtpasswd, repoScope("team/a", Pull))
	parts := strings.Split(tok, ".")
	// Payload: bob's token re-pointed at alice, then with push.
	_, payload, _ := splitToken(t, tok)
	for name, edit := range map[string]func(map[string]any){
		"sub":    func(p map[string]any) { p["sub"] = "root" },
		"access": func(p map[string]any) { p["access"] = []Scope{repoScope("team/a", Pull, Push, Delete)} },
		"exp":    func(p map[string]any) { p["exp"] = 4102444800 },
	} {
		p := map[string]any{}
		for k, v := range payload {
			p[k] = v
		}
		edit(p)
		mustRefuse(t, f, "tampered "+name, parts[0]+"."+b64json(t, p)+"."+parts[2])
	}
	// Signature: every byte flipped in turn.
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	for i := range sig {
		s := append([]byte(nil), sig...)
		s[i] ^= 0x01
		mustRefuse(t, f, fmt.Sprintf("signature byte %d", i), parts[0]+"."+parts[1]+"."+base64.RawURLEncoding.EncodeToString(s))
	}
	mustRefuse(t, f, "signature dropped", parts[0]+"."+parts[1]+".")
	mustRefuse(t, f, "signature truncated", parts[0]+"."+parts[1]+"."+parts[2][:len(parts[2])-4])
	// Non-canonical base64 of the same signature (trailing bits, padding).
	mustRefuse(t, f, "padded signature", tok+"==")
	// Header: kid changed.
	h, _, _ := splitToken(t, tok)
	h["kid"] = "other"
	mustRefuse(t, f, "kid changed", b64json(t, h)+"."+parts[1]+"."+parts[2])
	delete(h, "kid")
	mustRefuse(t, f, "kid removed", b64json(t, h)+"."+parts[1]+"."+parts[2])
}

// An external token whose kid belongs to another issuer.
func TestAttackKidFromOtherIssuer(t *testing.T) {
	f := newExtFixture(t)
	// Signed with other's key, under other's kid, but claiming idp (whose
	// tokens the rules bound) or vice versa: selection is by (iss, kid).
	c := f.extClaims(idpIss, "berth.test", "alice", repoScope("team/a", Pull))
	mustRefuse(t, f.fixture, "idp iss, other's kid and key", sign(t, jwt.SigningMethodRS256, "other-1", c, f.otherKey, nil))
	c = f.extClaims(otherIss, "berth-other", "alice", repoScope("team/a", "*"))
	mustRefuse(t, f.fixture, "other iss, idp's kid and key", sign(t, jwt.SigningMethodES256, "idp-1", c, f.idpKey, nil))
	// And an external issuer's kid for Berth's own issuer.
	mustRefuse(t, f.fixture, "own iss, idp kid", sign(t, jwt.SigningMethodES256, "idp-1", f.ownClaims(), f.idpKey, nil))
}

// Tokens and Authorization headers over 8 KiB are refused before parsing,
// even a genuinely signed one.
func TestAttackOversized(t *testing.T) {
	f := newFixture(t)
	c := f.ownClaims(repoScope("team/a", Pull))
	c.ID = strings.Repeat("x", MaxTokenBytes)
	tok := sign(t, jwt.SigningMethodES256, f.svc.KeyID(), c, f.svc.signing.priv, nil)
	mustRefuse(t, f, "genuine 8 KiB+ token", tok)
	if _, err := f.svc.verifyToken(tok); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("refused for another reason: %v", err)
	}
	dots := strings.Repeat(".", MaxTokenBytes+1)
	if _, err := f.svc.Authenticate(request("Bearer " + dots)); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("dots header: %v", err)
	}
	if _, err := f.svc.Authenticate(request(basic("alice", strings.Repeat("p", MaxTokenBytes)))); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("huge Basic header: %v", err)
	}
}

// Revocation reaches outstanding tokens: a removed user's token and a
// token issued before a password change are refused.
func TestOwnTokenRevocation(t *testing.T) {
	f := newFixture(t)
	alice := f.token("alice", authnHtpasswd, repoScope("team/a", Pull))
	bob := f.token("bob", authnHtpasswd, repoScope("team/a", Pull))
	if _, err := f.bearer(alice); err != nil {
		t.Fatal(err)
	}
	delete(f.pass, "alice")
	f.pass["bob"] = "new-bob-pass"
	writeFile(t, f.dir, "htpasswd", htpasswdText(t, f.pass))
	mustRefuse(t, f, "removed user's token", alice)
	mustRefuse(t, f, "token from before a password change", bob)
	// A fresh token for bob works.
	if _, err := f.bearer(f.token("bob", authnHtpasswd, repoScope("team/a", Pull))); err != nil {
		t.Fatal(err)
	}
}

// Own tokens' authn claim: each kind must be consistent.
func TestOwnTokenAuthnClaim(t *testing.T) {
	f := newFixture(t)
	if p, err := f.bearer(f.token("", authnAnonymous, repoScope("apps/x", Pull))); err != nil || !p.Anonymous() || !f.svc.Allowed(p, "apps/x", Pull) {
		t.Fatalf("anonymous token: %+v %v", p, err)
	}
	if p, err := f.bearer(f.token("carol", authnCert, repoScope("team/a", Delete))); err != nil || !f.svc.Allowed(p, "team/a", Delete) {
		t.Fatalf("cert token: %+v %v", p, err)
	}
	mustRefuse(t, f, "anonymous with a subject", f.token("root", authnAnonymous))
	mustRefuse(t, f, "unknown authn", f.token("root", "magic"))
	mustRefuse(t, f, "htpasswd subject without entry", f.tokenEntry("alice", authnHtpasswd, ""))
	mustRefuse(t, f, "unknown htpasswd user", f.token("mallory", authnHtpasswd))
	mustRefuse(t, f, "invalid subject", f.token("a:b", authnCert))
}

func (f *fixture) tokenEntry(sub, authn, entry string) string {
	tok, _, _, err := f.svc.issue(sub, authn, entry, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// External tokens: rights = access claim ∩ rules for sub, or the claim
// alone with TrustAccess.
func TestExternalTokenRights(t *testing.T) {
	f := newExtFixture(t)
	c := f.extClaims(idpIss, "berth.test", "bob", repoScope("team/a", Pull, Push, Delete), repoScope("apps/x", Pull))
	p, err := f.bearer(sign(t, jwt.SigningMethodES256, "idp-1", c, f.idpKey, nil))
	if err != nil {
		t.Fatal(err)
	}
	if p.Issuer() != idpIss || p.Name != "bob" {
		t.Fatalf("principal %+v", p)
	}
	if !f.svc.Allowed(p, "team/a", Pull) || f.svc.Allowed(p, "team/a", Push) || f.svc.Allowed(p, "team/a", Delete) {
		t.Error("idp token: claim not intersected with bob's rules")
	}
	if f.svc.Allowed(p, "team/b", Pull) {
		t.Error("idp token: repository outside the claim")
	}
	c = f.extClaims(otherIss, "berth-other", "nobody", repoScope("secret/x", Pull, Push))
	p, err = f.bearer(sign(t, jwt.SigningMethodRS256, "other-1", c, f.otherKey, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !f.svc.Allowed(p, "secret/x", Push) || f.svc.Allowed(p, "secret/x", Delete) || f.svc.Allowed(p, "secret/y", Pull) {
		t.Error("trust_access token: not exactly its claim")
	}
	if f.svc.Allowed(p, "secret/x", Overwrite) {
		t.Error("trust_access token: push stood for overwrite (the claim must say overwrite)")
	}
	// "*" in an external claim stands for every action (as the token
	// endpoint reads it), still within the rules unless trust_access.
	c = f.extClaims(idpIss, "berth.test", "bob", repoScope("team/a", "*"))
	p, err = f.bearer(sign(t, jwt.SigningMethodES256, "idp-1", c, f.idpKey, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !f.svc.Allowed(p, "team/a", Pull) || f.svc.Allowed(p, "team/a", Delete) {
		t.Error("idp token with *: not every action within bob's rules")
	}
	c = f.extClaims(otherIss, "berth-other", "nobody", repoScope("secret/x", "*"))
	p, err = f.bearer(sign(t, jwt.SigningMethodRS256, "other-1", c, f.otherKey, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !f.svc.Allowed(p, "secret/x", Delete) || !f.svc.Allowed(p, "secret/x", Overwrite) || f.svc.Allowed(p, "secret/y", Pull) {
		t.Error("trust_access token with *: not every action on exactly its repository")
	}
	// Alg pinned per key: the RSA key under PS256 is refused.
	mustRefuse(t, f.fixture, "RS key with PS256", sign(t, jwt.SigningMethodPS256, "other-1", c, f.otherKey, nil))
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey := newECKey(t, elliptic.P256())
	ecDER, _ := x509.MarshalECPrivateKey(ecKey)
	for name, tc := range map[string]struct {
		path string
		alg  string
	}{
		"EC PRIVATE KEY":  {writeFile(t, dir, "ec.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}))), "ES256"},
		"RSA PRIVATE KEY": {writeFile(t, dir, "rsa.pem", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}))), "RS256"},
		"PKCS8 Ed25519":   {pemPrivate(t, dir, "ed.pem", edKey), "EdDSA"},
	} {
		f := newFixture(t, func(c *Config) { c.Token.KeyFile = tc.path })
		if got := f.svc.signing.method.Alg(); got != tc.alg {
			t.Errorf("%s: alg %s, want %s", name, got, tc.alg)
		}
		tok := f.token("alice", authnHtpasswd, repoScope("team/a", Pull))
		h, _, _ := splitToken(t, tok)
		if h["alg"] != tc.alg || h["kid"] != f.svc.KeyID() {
			t.Errorf("%s: header %v", name, h)
		}
		if _, err := f.bearer(tok); err != nil {
			t.Errorf("%s: own token refused: %v", name, err)
		}
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384 := newECKey(t, elliptic.P384())
	for name, path := range map[string]string{
		"RSA 1024": pemPrivate(t, dir, "small.pem", small),
		"P-384":    pemPrivate(t, dir, "p384.pem", p384),
		"no key":   writeFile(t, dir, "empty.pem", "nothing here"),
		"missing":  dir + "/missing.pem",
	} {
		cfg := testConfig(dir, "")
		cfg.Token.KeyFile = path
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("%s: accepted as a token key", name)
		}
	}
}

func TestGeneratedKey(t *testing.T) {
	f := newFixture(t)
	path := f.cfg.Token.DefaultKeyPath
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", fi.Mode().Perm())
	}
	di, _ := os.Stat(filepath.Dir(path))
	if di.Mode().Perm() != 0o700 {
		t.Errorf("key directory mode %v", di.Mode().Perm())
	}
	if f.svc.signing.method.Alg() != "ES256" {
		t.Errorf("generated key alg %s", f.svc.signing.method.Alg())
	}
	// A restart keeps the key: tokens issued before stay valid.
	tok := f.token("alice", authnHtpasswd, repoScope("team/a", Pull))
	svc2, err := New(f.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc2.now = f.svc.now
	if svc2.KeyID() != f.svc.KeyID() {
		t.Fatal("the key changed across a restart")
	}
	if _, err := svc2.Authenticate(request("Bearer " + tok)); err != nil {
		t.Fatalf("token from before the restart: %v", err)
	}
}

// TestThumbprint: RFC 7638 §3.1's example, and kid = thumbprint.
func TestThumbprint(t *testing.T) {
	n, _ := base64.RawURLEncoding.DecodeString(rfc7638N)
	got, err := thumbprint(&rsa.PublicKey{N: bigFrom(n), E: 65537})
	if err != nil {
		t.Fatal(err)
	}
	if got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Fatalf("thumbprint %s", got)
	}
	f := newFixture(t)
	want, _ := thumbprint(f.svc.PublicKey())
	h, _, _ := splitToken(t, f.token("alice", authnHtpasswd))
	if h["kid"] != want {
		t.Fatalf("kid %v, thumbprint %s", h["kid"], want)
	}
}
