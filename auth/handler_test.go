package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

type tokenAnswer struct {
	status int
	header http.Header
	body   []byte
	resp   tokenResponse
	access []Scope
	sub    string
}

// get asks the token endpoint with GET.
func (f *fixture) get(auth string, query string) tokenAnswer {
	f.t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://registry.test/auth/token?"+query, nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	return f.serve(r)
}

func (f *fixture) post(form url.Values) tokenAnswer {
	f.t.Helper()
	r := httptest.NewRequest(http.MethodPost, "http://registry.test/auth/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return f.serve(r)
}

func (f *fixture) serve(r *http.Request) tokenAnswer {
	f.t.Helper()
	w := httptest.NewRecorder()
	f.svc.TokenHandler().ServeHTTP(w, r)
	a := tokenAnswer{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
	if w.Code == http.StatusOK {
		if err := json.Unmarshal(a.body, &a.resp); err != nil {
			f.t.Fatal(err)
		}
		_, payload, _ := splitToken(f.t, a.resp.Token)
		b, _ := json.Marshal(payload["access"])
		json.Unmarshal(b, &a.access)
		a.sub, _ = payload["sub"].(string)
	}
	return a
}

func accessOf(a tokenAnswer, typ, name string) []string {
	for _, s := range a.access {
		if s.Type == typ && s.Name == name {
			return s.Actions
		}
	}
	return nil
}

func TestTokenEndpointIntersection(t *testing.T) {
	f := newFixture(t)
	// bob: the rules give only pull on team/a and nothing on other/x.
	a := f.get(basic("bob", "bob-secret"), "service=berth.test&scope=repository:team/a:pull,push,delete&scope=repository:other/x:pull&account=bob")
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if got := accessOf(a, "repository", "team/a"); !slices.Equal(got, []string{Pull}) {
		t.Errorf("team/a: %v, want [pull]", got)
	}
	if len(a.access) != 1 {
		t.Errorf("access %+v: the entry for other/x should be absent", a.access)
	}
	if a.sub != "bob" || a.resp.Token == "" || a.resp.AccessToken != a.resp.Token || a.resp.ExpiresIn != 300 {
		t.Errorf("answer %+v", a.resp)
	}
	if _, err := time.Parse(time.RFC3339, a.resp.IssuedAt); err != nil {
		t.Errorf("issued_at %q: %v", a.resp.IssuedAt, err)
	}
	if a.header.Get("Cache-Control") != "no-store" {
		t.Error("token answer may be cached")
	}
	// The token works for what it holds and nothing else.
	p, err := f.bearer(a.resp.Token)
	if err != nil {
		t.Fatal(err)
	}
	if !f.svc.Allowed(p, "team/a", Pull) || f.svc.Allowed(p, "team/a", Push) || f.svc.Allowed(p, "other/x", Pull) {
		t.Error("issued token's rights differ from its access claim")
	}
}

func TestTokenEndpointStarAndCatalog(t *testing.T) {
	f := newFixture(t)
	a := f.get(basic("alice", "alice-secret"), "service=berth.test&scope=repository:team/a:*&scope=registry:catalog:*&scope=repository:team/b:frobnicate&scope=weird:thing:pull&scope=garbage")
	if got := accessOf(a, "repository", "team/a"); !slices.Equal(got, []string{Pull, Push, Overwrite}) {
		t.Errorf("team/a with *: %v", got)
	}
	if got := accessOf(a, "registry", "catalog"); !slices.Equal(got, []string{"*"}) {
		t.Errorf("catalog: %v", got)
	}
	if len(a.access) != 2 {
		t.Errorf("unknown actions/types kept: %+v", a.access)
	}
	p, _ := f.bearer(a.resp.Token)
	if !f.svc.CatalogAllowed(p) {
		t.Error("catalog token refused the catalog")
	}
	// Space-separated scopes in one parameter (the OAuth2 form) and the
	// same repository twice add up.
	a = f.get(basic("alice", "alice-secret"), "scope="+url.QueryEscape("repository:team/a:pull repository:team/a:push"))
	if got := accessOf(a, "repository", "team/a"); !slices.Equal(got, []string{Pull, Push}) || len(a.access) != 1 {
		t.Errorf("merged scopes: %+v", a.access)
	}
	// No catalog for someone who cannot pull anywhere.
	g := newFixture(t, func(c *Config) {
		c.Rules = []Rule{{Patterns: []string{"x"}, Users: map[string][]Action{"alice": {Push}}}}
	})
	a = g.get(basic("alice", "alice-secret"), "scope=registry:catalog:*")
	if len(a.access) != 0 {
		t.Errorf("catalog granted without pull anywhere: %+v", a.access)
	}
	p, _ = g.bearer(a.resp.Token)
	if g.svc.CatalogAllowed(p) {
		t.Error("bearer without the catalog scope may list the catalog")
	}
	if !g.svc.CatalogAllowed(Principal{Name: "alice", Method: MethodBasic}) {
		t.Error("basic principals list the catalog (filtered by the caller)")
	}
}

func TestTokenEndpointAnonymous(t *testing.T) {
	f := newFixture(t)
	a := f.get("", "service=berth.test&scope=repository:apps/org.x:pull,push&scope=repository:team/a:pull")
	if a.status != http.StatusOK {
		t.Fatalf("status %d", a.status)
	}
	if got := accessOf(a, "repository", "apps/org.x"); !slices.Equal(got, []string{Pull}) || len(a.access) != 1 || a.sub != "" {
		t.Errorf("anonymous token: sub %q access %+v", a.sub, a.access)
	}
	p, err := f.bearer(a.resp.Token)
	if err != nil || !p.Anonymous() || !f.svc.Allowed(p, "apps/org.x", Pull) || f.svc.Allowed(p, "apps/org.x", Push) {
		t.Fatalf("anonymous bearer %+v %v", p, err)
	}
}

// Wrong password and unknown user: same status, challenge and body, and
// the same bcrypt work.
func TestTokenEndpointWrongCredentials(t *testing.T) {
	f := newFixture(t)
	n := f.svc.htp.compares.Load()
	wrong := f.get(basic("alice", "nope"), "service=berth.test&scope=repository:team/a:pull")
	afterWrong := f.svc.htp.compares.Load()
	unknown := f.get(basic("mallory", "nope"), "service=berth.test&scope=repository:team/a:pull")
	afterUnknown := f.svc.htp.compares.Load()
	for name, a := range map[string]tokenAnswer{"wrong password": wrong, "unknown user": unknown} {
		if a.status != http.StatusUnauthorized {
			t.Errorf("%s: status %d", name, a.status)
		}
		if !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Basic realm=") {
			t.Errorf("%s: challenge %q", name, a.header.Get("WWW-Authenticate"))
		}
		var body errorBody
		if err := json.Unmarshal(a.body, &body); err != nil || len(body.Errors) != 1 || body.Errors[0].Code != "UNAUTHORIZED" {
			t.Errorf("%s: body %s", name, a.body)
		}
	}
	if string(wrong.body) != string(unknown.body) || wrong.header.Get("WWW-Authenticate") != unknown.header.Get("WWW-Authenticate") {
		t.Errorf("answers differ:\n%s\n%s", wrong.body, unknown.body)
	}
	if afterWrong-n != 1 || afterUnknown-afterWrong != 1 {
		t.Errorf("bcrypt work: wrong password %d, unknown user %d", afterWrong-n, afterUnknown-afterWrong)
	}
	// A bearer token is no credential here (no refresh), malformed Basic
	// neither.
	tok := f.token("alice", authnHtpasswd)
	for name, auth := range map[string]string{"bearer": "Bearer " + tok, "malformed": "Basic !!!", "unknown scheme": "Digest x"} {
		if a := f.get(auth, ""); a.status != http.StatusUnauthorized {
			t.Errorf("%s: status %d", name, a.status)
		}
	}
}

func TestTokenEndpointPasswordGrant(t *testing.T) {
	f := newFixture(t)
	a := f.post(url.Values{"grant_type": {"password"}, "username": {"carol"}, "password": {"carol-secret"},
		"service": {"berth.test"}, "client_id": {"containerd"}, "scope": {"repository:team/a:pull,delete repository:team/b:push"}})
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if got := accessOf(a, "repository", "team/a"); !slices.Equal(got, []string{Pull, Delete}) || len(a.access) != 1 || a.sub != "carol" {
		t.Errorf("password grant: %q %+v", a.sub, a.access)
	}
	if a.resp.AccessToken == "" {
		t.Error("no access_token")
	}
	var raw map[string]any
	json.Unmarshal(a.body, &raw)
	if _, ok := raw["refresh_token"]; ok {
		t.Error("a refresh token was issued")
	}
	for name, form := range map[string]url.Values{
		"wrong password": {"grant_type": {"password"}, "username": {"carol"}, "password": {"x"}},
		"unknown user":   {"grant_type": {"password"}, "username": {"zed"}, "password": {"x"}},
	} {
		if a := f.post(form); a.status != http.StatusUnauthorized {
			t.Errorf("%s: status %d", name, a.status)
		}
	}
	for name, form := range map[string]url.Values{
		"refresh grant": {"grant_type": {"refresh_token"}, "refresh_token": {"x"}},
		"no grant":      {"username": {"carol"}, "password": {"carol-secret"}},
		"two users":     {"grant_type": {"password"}, "username": {"carol", "root"}, "password": {"carol-secret"}},
	} {
		if a := f.post(form); a.status != http.StatusBadRequest {
			t.Errorf("%s: status %d", name, a.status)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/auth/token", strings.NewReader(`{"username":"carol"}`))
	r.Header.Set("Content-Type", "application/json")
	if a := f.serve(r); a.status != http.StatusUnsupportedMediaType {
		t.Errorf("JSON body: status %d", a.status)
	}
}

func TestTokenEndpointRefusals(t *testing.T) {
	f := newFixture(t)
	if a := f.get(basic("alice", "alice-secret"), "service=other.service&scope=repository:team/a:pull"); a.status != http.StatusBadRequest {
		t.Errorf("wrong service: status %d", a.status)
	}
	if a := f.get("", "service=berth.test&service=other"); a.status != http.StatusBadRequest {
		t.Errorf("two services: status %d", a.status)
	}
	many := strings.Repeat("scope=repository:apps/a:pull&", maxScopes+1)
	if a := f.get("", many); a.status != http.StatusBadRequest {
		t.Errorf("too many scopes: status %d", a.status)
	}
	if a := f.serve(httptest.NewRequest(http.MethodPut, "/auth/token", nil)); a.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT: status %d", a.status)
	}
	// Token service off: 404.
	g := newFixture(t, func(c *Config) { c.Token.Enabled = false })
	if a := g.get("", ""); a.status != http.StatusNotFound {
		t.Errorf("token service off: status %d", a.status)
	}
}

func TestTokenEndpointClientCert(t *testing.T) {
	f := newFixture(t)
	r := httptest.NewRequest(http.MethodGet, "/auth/token?scope=repository:team/a:delete", nil)
	r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: "carol"}}}}}
	a := f.serve(r)
	if a.sub != "carol" || !slices.Equal(accessOf(a, "repository", "team/a"), []string{Delete}) {
		t.Fatalf("cert token: %q %+v", a.sub, a.access)
	}
}

func TestAuthenticate(t *testing.T) {
	f := newFixture(t)
	p, err := f.svc.Authenticate(request(""))
	if err != nil || !p.Anonymous() || p.Method != MethodAnonymous {
		t.Fatalf("no credentials: %+v %v", p, err)
	}
	p, err = f.svc.Authenticate(request(basic("carol", "carol-secret")))
	if err != nil || p.Name != "carol" || p.Method != MethodBasic {
		t.Fatalf("basic: %+v %v", p, err)
	}
	// containers/image sends "Basic Og==" (empty user and password) when it
	// has no credentials: anonymous, not a failed login.
	p, err = f.svc.Authenticate(request(basic("", "")))
	if err != nil || !p.Anonymous() || p.Method != MethodAnonymous {
		t.Fatalf("empty Basic credentials: %+v %v", p, err)
	}
	// Scheme names are case-insensitive.
	if _, err := f.svc.Authenticate(request("bAsIc " + strings.TrimPrefix(basic("carol", "carol-secret"), "Basic "))); err != nil {
		t.Fatalf("lower-case scheme: %v", err)
	}
	r := request("")
	r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: "dave"}}}}}
	p, err = f.svc.Authenticate(r)
	if err != nil || p.Name != "dave" || p.Method != MethodCert {
		t.Fatalf("cert: %+v %v", p, err)
	}
	// Unverified client certificates (no verified chain) are not identities.
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: "root"}}}}
	if p, err = f.svc.Authenticate(r); err != nil || !p.Anonymous() {
		t.Fatalf("unverified certificate: %+v %v", p, err)
	}
	for _, cn := range []string{"a:b", "", "a\u202eb", "a b", "a\x1bb"} {
		r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: cn}}}}}
		if _, err = f.svc.Authenticate(r); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("invalid CN %q accepted: %v", cn, err)
		}
	}
	for name, h := range map[string]string{
		"wrong password": basic("carol", "x"),
		"not base64":     "Basic %%%",
		"no colon":       "Basic " + "Y2Fyb2w=",
		"empty user":     basic("", "x"),
		"unknown scheme": "Digest username=carol",
		"no credentials": "Bearer",
		"garbage bearer": "Bearer abc",
	} {
		if _, err := f.svc.Authenticate(request(h)); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: %v", name, err)
		}
	}
	r = request(basic("carol", "carol-secret"))
	r.Header.Add("Authorization", basic("root", "x"))
	if _, err := f.svc.Authenticate(r); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("two Authorization headers: %v", err)
	}
	// The reasons never hold the password.
	_, err = f.svc.Authenticate(request(basic("carol", "hunter2-secret")))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %v", err)
	}
	// No htpasswd file: Basic is refused.
	g, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Authenticate(request(basic("carol", "carol-secret"))); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("basic without htpasswd: %v", err)
	}
}

func TestContext(t *testing.T) {
	if p := FromContext(context.Background()); !p.Anonymous() || p.Method != MethodAnonymous {
		t.Fatalf("empty context: %+v", p)
	}
	ctx := WithPrincipal(context.Background(), Principal{Name: "x", Method: MethodBasic})
	if p := FromContext(ctx); p.Name != "x" || p.Method != MethodBasic {
		t.Fatalf("%+v", p)
	}
}

func TestChallengeAndDeny(t *testing.T) {
	f := newFixture(t)
	r := request("")
	got := f.svc.Challenge(r, "repository:team/a:pull,push", false)
	want := `Bearer realm="http://registry.test/auth/token",service="berth.test",scope="repository:team/a:pull,push"`
	if got != want {
		t.Errorf("challenge\n got %s\nwant %s", got, want)
	}
	if got := f.svc.Challenge(r, "", true); got != `Bearer realm="http://registry.test/auth/token",service="berth.test",error="invalid_token"` {
		t.Errorf("invalid challenge %s", got)
	}
	// TLS → https realm; forwarded headers only when trusted.
	r.TLS = &tls.ConnectionState{}
	r.Header.Set("X-Forwarded-Proto", "http")
	r.Header.Set("X-Forwarded-Host", "evil.test")
	if got := f.svc.realm(r); got != "https://registry.test/auth/token" {
		t.Errorf("untrusted forwarded headers used: %s", got)
	}
	g := newFixture(t, func(c *Config) { c.TrustForwardedHeaders = true })
	r2 := request("")
	r2.Header.Set("X-Forwarded-Proto", "https, http")
	r2.Header.Set("X-Forwarded-Host", "public.example:8443, inner")
	if got := g.svc.realm(r2); got != "https://public.example:8443/auth/token" {
		t.Errorf("trusted forwarded realm %s", got)
	}
	r2.Header.Set("X-Forwarded-Host", `x",error="y`)
	r2.Header.Set("X-Forwarded-Proto", "javascript")
	if got := g.svc.realm(r2); got != "http://registry.test/auth/token" {
		t.Errorf("hostile forwarded headers: %s", got)
	}
	r2.Host = `bad"host`
	r2.Header.Del("X-Forwarded-Host")
	if c := g.svc.Challenge(r2, `repository:a":pull`, false); strings.Count(c, `"`)-strings.Count(c, `\"`) != 6 {
		t.Errorf("a quote broke out of the challenge: %s", c)
	}
	h := newFixture(t, func(c *Config) { c.Token.Realm = "https://auth.example/token" })
	if got := h.svc.realm(r); got != "https://auth.example/token" {
		t.Errorf("configured realm %s", got)
	}

	// Deny: anonymous 401; bearer 401 insufficient_scope; basic/cert 403.
	scope := "repository:team/a:push"
	st, ch := f.svc.Deny(r, Principal{Method: MethodAnonymous}, scope)
	if st != http.StatusUnauthorized || !strings.HasPrefix(ch, "Bearer ") || strings.Contains(ch, "error=") {
		t.Errorf("anonymous: %d %s", st, ch)
	}
	st, ch = f.svc.Deny(r, Principal{Name: "bob", Method: MethodBearer}, scope)
	if st != http.StatusUnauthorized || !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="`+scope+`"`) {
		t.Errorf("bearer: %d %s", st, ch)
	}
	st, _ = f.svc.Deny(r, Principal{Method: MethodBearer}, scope)
	if st != http.StatusUnauthorized {
		t.Errorf("anonymous bearer: %d", st)
	}
	for _, m := range []string{MethodBasic, MethodCert} {
		if st, _ := f.svc.Deny(r, Principal{Name: "bob", Method: m}, scope); st != http.StatusForbidden {
			t.Errorf("%s: %d", m, st)
		}
	}
	// Token service off: Basic challenges.
	b := newFixture(t, func(c *Config) { c.Token.Enabled = false })
	st, ch = b.svc.Deny(r, Principal{Method: MethodAnonymous}, scope)
	if st != http.StatusUnauthorized || !strings.HasPrefix(ch, `Basic realm="berth.test"`) {
		t.Errorf("basic mode anonymous: %d %s", st, ch)
	}
	if st, _ := b.svc.Deny(r, Principal{Name: "x", Method: MethodBearer}, scope); st != http.StatusForbidden {
		t.Errorf("basic mode, external bearer: %d", st)
	}
}

func TestViewKey(t *testing.T) {
	f := newFixture(t)
	tokA, _ := f.bearer(f.token("bob", authnHtpasswd, repoScope("team/a", Pull)))
	tokA2, _ := f.bearer(f.token("bob", authnHtpasswd, repoScope("team/a", Pull)))
	tokB, _ := f.bearer(f.token("bob", authnHtpasswd, repoScope("team/b", Pull)))
	keys := map[string]string{
		"anon":      Principal{Method: MethodAnonymous}.ViewKey(),
		"bob":       Principal{Name: "bob", Method: MethodBasic}.ViewKey(),
		"carol":     Principal{Name: "carol", Method: MethodBasic}.ViewKey(),
		"bob token": tokA.ViewKey(),
		"bob other": tokB.ViewKey(),
	}
	seen := map[string]string{}
	for name, k := range keys {
		if o, dup := seen[k]; dup {
			t.Errorf("%s and %s share the view key %q", name, o, k)
		}
		seen[k] = name
	}
	if tokA.ViewKey() != tokA2.ViewKey() || keys["bob"] != (Principal{Name: "bob", Method: MethodCert}).ViewKey() {
		t.Error("same rights, different view keys")
	}
}

// TestCatalogVisible: a token granted registry:catalog:* lists what the
// rules let its subject pull, not only the repositories it names; a token
// without that scope, and Basic principals, see what they may pull.
func TestCatalogVisible(t *testing.T) {
	f := newFixture(t)
	a := f.get(basic("alice", "alice-secret"), "service=berth.test&scope=registry:catalog:*")
	p, err := f.bearer(a.resp.Token)
	if err != nil {
		t.Fatal(err)
	}
	for repo, want := range map[string]bool{"team/a": true, "apps/x": true, "other/x": false, "shared/y": true} {
		if got := f.svc.CatalogVisible(p, repo); got != want {
			t.Errorf("catalog token: %s visible %v, want %v", repo, got, want)
		}
		if f.svc.Allowed(p, repo, Pull) {
			t.Errorf("catalog token may pull %s: the catalog scope grants listing only", repo)
		}
	}
	a = f.get(basic("alice", "alice-secret"), "service=berth.test&scope=repository:team/a:pull")
	p, _ = f.bearer(a.resp.Token)
	if !f.svc.CatalogVisible(p, "team/a") || f.svc.CatalogVisible(p, "apps/x") {
		t.Error("a token without the catalog scope sees other than what it may pull")
	}
	b := Principal{Name: "dave", Method: MethodBasic}
	if !f.svc.CatalogVisible(b, "other/x") || f.svc.CatalogVisible(b, "team/a") {
		t.Error("basic principal: catalog differs from pull rights")
	}
}
