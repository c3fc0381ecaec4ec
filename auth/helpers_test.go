package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// hashPW is a bcrypt hash at the minimum cost (the tests run many).
func hashPW(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// writeFile writes data to dir/name (atomically, by rename, as editors
// and htpasswd do) and returns the path.
func writeFile(t testing.TB, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// fixture is a service with users alice, bob, carol, dave, eve, root, a
// policy and the token service on.
type fixture struct {
	t    testing.TB
	dir  string
	htp  string
	svc  *Service
	now  time.Time
	cfg  Config
	pass map[string]string
}

var testUsers = []string{"alice", "bob", "carol", "dave", "eve", "root"}

func htpasswdText(t testing.TB, pass map[string]string) string {
	var b strings.Builder
	for _, u := range testUsers {
		if p, ok := pass[u]; ok {
			b.WriteString(u + ":" + hashPW(t, p) + "\n")
		}
	}
	return b.String()
}

// testConfig: apps/** is public (anonymous pull); alice reads and writes
// team/*; bob (group devs) pulls team/*; carol deletes in team/*; dave
// pulls only other/x; root is an admin; eve is in the admins group.
func testConfig(dir, htp string) Config {
	return Config{
		Htpasswd: htp,
		Groups:   map[string][]string{"devs": {"bob", "alice"}, "ops": {"eve"}},
		Admins:   []string{"root", "group:ops"},
		Rules: []Rule{
			{Patterns: []string{"apps/**"}, Anonymous: []Action{Pull}},
			{Patterns: []string{"team/*"}, Users: map[string][]Action{"alice": {Push, Overwrite}, "carol": {Pull, Delete}}, Groups: map[string][]Action{"devs": {Pull}}},
			{Patterns: []string{"other/x"}, Users: map[string][]Action{"dave": {Pull}}},
			{Patterns: []string{"shared/**"}, Users: map[string][]Action{"*": {Pull}}},
		},
		Token: TokenConfig{
			Enabled: true, Service: "berth.test", Issuer: "berth-issuer",
			Expiry: 5 * time.Minute, DefaultKeyPath: filepath.Join(dir, "keys", "token-key.pem"),
		},
	}
}

func newFixture(t testing.TB, mutate ...func(*Config)) *fixture {
	t.Helper()
	dir := t.TempDir()
	pass := map[string]string{}
	for _, u := range testUsers {
		pass[u] = u + "-secret"
	}
	htp := writeFile(t, dir, "htpasswd", htpasswdText(t, pass))
	cfg := testConfig(dir, htp)
	for _, m := range mutate {
		m(&cfg)
	}
	svc, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, dir: dir, htp: htp, svc: svc, now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), cfg: cfg, pass: pass}
	svc.now = func() time.Time { return f.now }
	t.Cleanup(func() { svc.Close() })
	return f
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func request(auth string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "http://registry.test/v2/", nil)
	r.Host = "registry.test"
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	return r
}

// token issues an own token through the service's own issuing path.
func (f *fixture) token(sub, authn string, access ...Scope) string {
	f.t.Helper()
	entry := ""
	if authn == authnHtpasswd {
		hash, _ := f.svc.htp.lookup(sub)
		entry = f.svc.entryFingerprint(sub, hash)
	}
	tok, _, _, err := f.svc.issue(sub, authn, entry, access)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// bearer authenticates a request carrying tok.
func (f *fixture) bearer(tok string) (Principal, error) {
	return f.svc.Authenticate(request("Bearer " + tok))
}

func repoScope(name string, actions ...string) Scope {
	return Scope{Type: "repository", Name: name, Actions: actions}
}

// b64json is the base64url of v's JSON.
func b64json(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// splitToken returns header, payload and signature of a compact JWS.
func splitToken(t testing.TB, tok string) (map[string]any, map[string]any, string) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	var h, p map[string]any
	for i, v := range []*map[string]any{&h, &p} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	return h, p, parts[2]
}

func newECKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pemPublic writes pub as a PKIX PEM file.
func pemPublic(t testing.TB, dir, name string, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, name, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
}

// pemPrivate writes priv as a PKCS #8 PEM file.
func pemPrivate(t testing.TB, dir, name string, priv any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, name, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
}

func bigOne() *big.Int          { return big.NewInt(1) }
func bigFrom(b []byte) *big.Int { return new(big.Int).SetBytes(b) }
