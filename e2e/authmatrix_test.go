package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"
)

// The access matrix: every kind of requester × every endpoint, the
// registry's and every side door's (catalog, tags, referrers, the Flatpak
// index, icons, .flatpakref, the catalogue pages and the search API), for
// Basic and for Bearer (Berth's token service) alike. The expected answer
// of each cell is computed from the same rights table the policy below
// writes down, so the test checks the policy, not a list of statuses.

// matrixPolicy is the access section the matrix servers run with.
const matrixPolicy = `
  groups:
    writers: [writer]
    admins: [admin]
  admins: ["group:admins"]
  access:
    - repositories: ["team/**"]
      users:
        reader: [pull]
        deleter: [pull, delete]
      groups:
        writers: [pull, push]
    - repositories: ["other/**"]
      users:
        other: [pull, push, overwrite, delete]
    - repositories: ["apps/**"]
      anonymous: [pull]
`

// matrixUsers are the requesters ("" is anonymous) and their rights by the
// first path component of a repository, as matrixPolicy grants them.
var matrixUsers = []string{"", "reader", "writer", "deleter", "other", "admin"}

var matrixRights = map[string]map[string][]string{
	"":        {"apps": {"pull"}},
	"reader":  {"team": {"pull"}, "apps": {"pull"}},
	"writer":  {"team": {"pull", "push"}, "apps": {"pull"}},
	"deleter": {"team": {"pull", "delete"}, "apps": {"pull"}},
	"other":   {"other": {"pull", "push", "overwrite", "delete"}, "apps": {"pull"}},
	"admin":   {"team": {"pull", "push", "overwrite", "delete"}, "other": {"pull", "push", "overwrite", "delete"}, "apps": {"pull", "push", "overwrite", "delete"}},
}

func may(user, repo, action string) bool {
	top, _, _ := strings.Cut(repo, "/")
	return slices.Contains(matrixRights[user][top], action)
}

func password(user string) string { return "pw-" + user + "-Zq8" }

// writeHtpasswd writes a bcrypt htpasswd file for users.
func writeHtpasswd(t testing.TB, path string, users ...string) {
	t.Helper()
	var b strings.Builder
	for _, u := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(password(u)), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// authClient requests as one user: with Basic credentials, or as a client
// of the token flow does (try, read the Bearer challenge, fetch a token for
// its scope from its realm, retry).
type authClient struct {
	t      testing.TB
	base   string
	bearer bool
	user   string
	c      *http.Client
}

func (a *authClient) basic() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(a.user+":"+password(a.user)))
}

type answer struct {
	Status    int
	Code      string
	Challenge string
	Body      []byte
	Header    http.Header
}

func (a *authClient) send(method, path string, body []byte, authz string, hdr ...string) answer {
	a.t.Helper()
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	url := path
	if !strings.HasPrefix(url, "http") {
		url = a.base + path
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	req.ContentLength = int64(len(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := a.c.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	return answer{Status: resp.StatusCode, Code: specCode(b), Challenge: resp.Header.Get("WWW-Authenticate"), Body: b, Header: resp.Header}
}

// do sends a request as the user.
func (a *authClient) do(method, path string, body []byte, hdr ...string) answer {
	a.t.Helper()
	if !a.bearer {
		authz := ""
		if a.user != "" {
			authz = a.basic()
		}
		return a.send(method, path, body, authz, hdr...)
	}
	ans := a.send(method, path, body, "", hdr...)
	if ans.Status != http.StatusUnauthorized || !strings.HasPrefix(ans.Challenge, "Bearer ") {
		return ans
	}
	params := challengeParams(ans.Challenge)
	tok := a.token(params["realm"], params["service"], strings.Fields(params["scope"])...)
	return a.send(method, path, body, "Bearer "+tok, hdr...)
}

// token asks the realm for a token for scopes, with the user's
// credentials (none for anonymous).
func (a *authClient) token(realm, service string, scopes ...string) string {
	a.t.Helper()
	if realm == "" {
		a.t.Fatal("Bearer challenge without a realm")
	}
	q := "?service=" + service
	for _, s := range scopes {
		q += "&scope=" + s
	}
	authz := ""
	if a.user != "" {
		authz = a.basic()
	}
	ans := a.send(http.MethodGet, realm+q, nil, authz)
	if ans.Status != http.StatusOK {
		a.t.Fatalf("token for %s %v: %d %s", a.user, scopes, ans.Status, ans.Body)
	}
	var tr struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		IssuedAt    string `json:"issued_at"`
	}
	if err := json.Unmarshal(ans.Body, &tr); err != nil || tr.Token == "" || tr.AccessToken != tr.Token || tr.ExpiresIn <= 0 || tr.IssuedAt == "" {
		a.t.Fatalf("token answer %s: %v", ans.Body, err)
	}
	return tr.Token
}

var challengeParam = regexp.MustCompile(`([a-z]+)="([^"]*)"`)

// challengeParams parses the parameters of a WWW-Authenticate value.
func challengeParams(h string) map[string]string {
	m := map[string]string{}
	for _, p := range challengeParam.FindAllStringSubmatch(h, -1) {
		m[p[1]] = p[2]
	}
	return m
}

// matrixSite is a running berth with the matrix policy and its content.
type matrixSite struct {
	srv      *server
	base     string
	bearer   bool
	fx       map[string]flatpakFixture
	images   map[string]testImage // by repo: the "base" image
	iconPath string
}

func (s *matrixSite) client(t testing.TB, user string) *authClient {
	return &authClient{t: t, base: s.base, bearer: s.bearer, user: user, c: httpClient()}
}

// startMatrixSite starts berth with the matrix policy and pushes, as admin,
// two Flatpak apps (team/hello, apps/bare), and per repository a base image
// and, per user, the tags, manifests and blobs the write cells change.
func startMatrixSite(t *testing.T, bearer bool) *matrixSite {
	t.Helper()
	tools := newToolRunner(t)
	tools.need(t, "skopeo")
	fixtures, fx := makeFlatpakFixtures(t)
	dir := t.TempDir()
	htpasswd := filepath.Join(dir, "htpasswd")
	writeHtpasswd(t, htpasswd, "reader", "writer", "deleter", "other", "admin")
	cfg := "auth:\n  htpasswd: " + htpasswd + "\n" + matrixPolicy
	if bearer {
		cfg += "  token:\n    enabled: true\n"
	}
	srv := startServerWith(t, serverOptions{Config: cfg})
	s := &matrixSite{srv: srv, base: "http://" + srv.Addr, bearer: bearer, fx: fx, images: map[string]testImage{}}

	for repo, name := range map[string]string{"team/hello": "org.berth.Hello", "apps/bare": "org.berth.Bare", "apps/platform": "org.berth.Platform"} {
		tools.run(t, "skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", "admin:"+password("admin"),
			"oci:"+filepath.Join(fixtures, fx[name].Path), "docker://"+srv.Addr+"/"+repo+":latest")
	}
	admin := s.client(t, "admin")
	push := func(img testImage, ref string) {
		t.Helper()
		for _, b := range img.blobs() {
			d := digest.FromBytes(b)
			if a := admin.do("POST", "/v2/"+img.Repo+"/blobs/uploads/?digest="+d.String(), b, "Content-Type", "application/octet-stream"); a.Status != http.StatusCreated {
				t.Fatalf("seed blob %s in %s: %d %s", d, img.Repo, a.Status, a.Body)
			}
		}
		if a := admin.do("PUT", "/v2/"+img.Repo+"/manifests/"+ref, img.Manifest, "Content-Type", "application/vnd.oci.image.manifest.v1+json"); a.Status != http.StatusCreated {
			t.Fatalf("seed manifest %s:%s: %d %s", img.Repo, ref, a.Status, a.Body)
		}
	}
	for _, repo := range []string{"team/hello", "other/x", "apps/bare"} {
		base := makeTestImage(repo, "base", []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"seed":"`+repo+`"}`), []byte("layer of "+repo))
		push(base, "base")
		s.images[repo] = base
		for _, u := range matrixUsers {
			for _, tag := range []string{"ow-", "ow2-", "del-"} {
				push(s.variant(repo, tag+u), tag+u)
			}
			dm := s.variant(repo, "dm-"+u)
			push(dm, digest.FromBytes(dm.Manifest).String())
			b := []byte("blob to delete by " + u + " in " + repo)
			if a := admin.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), b); a.Status != http.StatusCreated {
				t.Fatalf("seed blob: %d %s", a.Status, a.Body)
			}
		}
	}
	// The app's icon, as the admin's index lists it.
	idx := s.index(t, admin)
	for _, r := range idx {
		if r.Name == "team/hello" {
			for _, img := range r.Images {
				for k, v := range img.Labels {
					if strings.HasPrefix(k, "org.freedesktop.appstream.icon-") && strings.Contains(v, "/icons/") {
						s.iconPath = v[strings.Index(v, "/icons/"):]
					}
				}
			}
		}
	}
	if s.iconPath == "" {
		t.Fatalf("the admin's index shows no icon for team/hello: %+v", idx)
	}
	return s
}

// variant is the repository's base image under another name: the same
// blobs, a manifest made distinct by an annotation.
func (s *matrixSite) variant(repo, what string) testImage {
	img := s.images[repo]
	var m map[string]any
	_ = json.Unmarshal(img.Manifest, &m)
	m["annotations"] = map[string]string{"org.example.variant": what}
	img.Manifest, _ = json.Marshal(m)
	img.Tag = what
	return img
}

type indexRepo struct {
	Name   string `json:"Name"`
	Images []struct {
		Labels map[string]string `json:"Labels"`
	} `json:"Images"`
}

// index is the Flatpak index of every app the user may see. Bearer users
// present a token for every repository (a browser or flatpak would send
// its credentials the same way; the token endpoint trims it to what the
// policy grants).
func (s *matrixSite) index(t testing.TB, c *authClient) []indexRepo {
	t.Helper()
	a := s.sideDoor(t, c, "/index/static?label%3Aorg.flatpak.ref%3Aexists=1&os=linux&tag=latest")
	if a.Status != http.StatusOK {
		t.Fatalf("index as %q: %d %s", c.user, a.Status, a.Body)
	}
	var idx struct {
		Results []indexRepo `json:"Results"`
	}
	if err := json.Unmarshal(a.Body, &idx); err != nil {
		t.Fatalf("index: %v", err)
	}
	return idx.Results
}

// sideDoor GETs a non-/v2/ URL with the user's credentials: Basic, or a
// token for every repository of the site.
func (s *matrixSite) sideDoor(t testing.TB, c *authClient, path string) answer {
	t.Helper()
	if c.user == "" {
		return c.send("GET", path, nil, "")
	}
	if !s.bearer {
		return c.send("GET", path, nil, c.basic())
	}
	tok := c.token(s.base+"/auth/token", "berth", "repository:team/hello:pull", "repository:other/x:pull",
		"repository:apps/bare:pull", "repository:apps/platform:pull", "registry:catalog:*")
	return c.send("GET", path, nil, "Bearer "+tok)
}

// cell is one request of the matrix.
type cell struct {
	name   string
	method string
	path   string
	body   []byte
	hdr    []string
	need   []string // the actions it needs on repo
	ok     int      // its status when allowed
}

func (s *matrixSite) cells(repo, user string) []cell {
	img := s.images[repo]
	cfgD := digest.FromBytes(img.Config)
	mt := []string{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}
	newBlob := []byte("new blob from " + user + " in " + repo)
	nb := digest.FromBytes(newBlob)
	dm := s.variant(repo, "dm-"+user)
	ow2 := s.variant(repo, "ow2-"+user+"-new")
	delBlob := digest.FromBytes([]byte("blob to delete by " + user + " in " + repo))
	v2 := "/v2/" + repo
	return []cell{
		{"GET manifest", "GET", v2 + "/manifests/base", nil, []string{"Accept", "application/vnd.oci.image.manifest.v1+json"}, []string{"pull"}, 200},
		{"HEAD manifest", "HEAD", v2 + "/manifests/base", nil, nil, []string{"pull"}, 200},
		{"GET blob", "GET", v2 + "/blobs/" + cfgD.String(), nil, nil, []string{"pull"}, 200},
		{"HEAD blob", "HEAD", v2 + "/blobs/" + cfgD.String(), nil, nil, []string{"pull"}, 200},
		{"tags", "GET", v2 + "/tags/list", nil, nil, []string{"pull"}, 200},
		{"referrers", "GET", v2 + "/referrers/" + digest.FromBytes(img.Manifest).String(), nil, nil, []string{"pull"}, 200},
		{"start upload", "POST", v2 + "/blobs/uploads/", nil, nil, []string{"push"}, 202},
		{"monolithic upload", "POST", v2 + "/blobs/uploads/?digest=" + nb.String(), newBlob, nil, []string{"push"}, 201},
		{"PUT new tag", "PUT", v2 + "/manifests/new-" + user, s.variant(repo, "new-"+user).Manifest, mt, []string{"push"}, 201},
		{"PUT existing tag", "PUT", v2 + "/manifests/ow-" + user, s.variant(repo, "ow-"+user+"-new").Manifest, mt, []string{"push", "overwrite"}, 201},
		{"PUT digest ?tag=existing", "PUT", v2 + "/manifests/" + digest.FromBytes(ow2.Manifest).String() + "?tag=ow2-" + user, ow2.Manifest, mt, []string{"push", "overwrite"}, 201},
		{"DELETE tag", "DELETE", v2 + "/manifests/del-" + user, nil, nil, []string{"delete"}, 202},
		{"DELETE manifest", "DELETE", v2 + "/manifests/" + digest.FromBytes(dm.Manifest).String(), nil, nil, []string{"delete"}, 202},
		{"DELETE blob", "DELETE", v2 + "/blobs/" + delBlob.String(), nil, nil, []string{"delete"}, 202},
	}
}

func (s *matrixSite) refusedStatus(user string) int {
	if user == "" || s.bearer {
		return http.StatusUnauthorized
	}
	return http.StatusForbidden
}

func TestAccessMatrix(t *testing.T) {
	for _, mode := range []string{"basic", "bearer"} {
		t.Run(mode, func(t *testing.T) {
			s := startMatrixSite(t, mode == "bearer")
			for _, user := range matrixUsers {
				name := user
				if name == "" {
					name = "anonymous"
				}
				t.Run(name, func(t *testing.T) { s.checkUser(t, user) })
			}
		})
	}
}

func (s *matrixSite) checkUser(t *testing.T, user string) {
	c := s.client(t, user)
	refused := s.refusedStatus(user)

	// GET /v2/: anonymous requests are told how to authenticate.
	a := c.do("GET", "/v2/", nil)
	if user == "" {
		a = c.send("GET", "/v2/", nil, "") // as the first request of a client
	}
	if want := map[bool]int{true: 401, false: 200}[user == ""]; a.Status != want {
		t.Errorf("GET /v2/: %d, want %d", a.Status, want)
	}
	if user == "" {
		want := "Basic "
		if s.bearer {
			want = "Bearer "
		}
		if !strings.HasPrefix(a.Challenge, want) {
			t.Errorf("GET /v2/ challenge %q, want %s…", a.Challenge, want)
		}
		// A client that did the token flow anonymously is not sent round
		// again by GET /v2/.
		if s.bearer {
			tok := c.token(challengeParams(a.Challenge)["realm"], "berth")
			if a := c.send("GET", "/v2/", nil, "Bearer "+tok); a.Status != http.StatusOK {
				t.Errorf("GET /v2/ with an anonymous token: %d %s", a.Status, a.Body)
			}
		}
	}

	for _, repo := range []string{"team/hello", "other/x", "apps/bare"} {
		for _, cl := range s.cells(repo, user) {
			allowed := true
			for _, act := range cl.need {
				allowed = allowed && may(user, repo, act)
			}
			a := c.do(cl.method, cl.path, cl.body, cl.hdr...)
			want := cl.ok
			if !allowed {
				want = refused
			}
			if a.Status != want {
				t.Errorf("%s %s (%s %s): %d %s, want %d", repo, cl.name, cl.method, cl.path, a.Status, clip(a.Body, 300), want)
				continue
			}
			if !allowed {
				wantCode := map[int]string{401: "UNAUTHORIZED", 403: "DENIED"}[want]
				if cl.method != "HEAD" && a.Code != wantCode {
					t.Errorf("%s %s: code %q, want %s", repo, cl.name, a.Code, wantCode)
				}
				if want == 401 && a.Challenge == "" {
					t.Errorf("%s %s: 401 without WWW-Authenticate", repo, cl.name)
				}
			}
			// Overwrite depends on whether the tag exists, which a user
			// with push (and pull) may know anyway; everything else is
			// refused alike for a missing repository.
			if !allowed && !may(user, repo, cl.need[0]) {
				// The same request on a repository that does not exist is
				// refused identically: refusals reveal nothing.
				ghost := strings.Replace(cl.path, "/v2/"+repo+"/", "/v2/"+repo+"-nope/", 1)
				g := c.do(cl.method, ghost, cl.body, cl.hdr...)
				if g.Status != a.Status || g.Code != a.Code || string(g.Body) != string(a.Body) ||
					strings.ReplaceAll(g.Challenge, repo+"-nope", repo) != a.Challenge {
					t.Errorf("%s %s: refusal differs for a missing repository:\n existing: %d %q %s\n missing:  %d %q %s",
						repo, cl.name, a.Status, a.Challenge, a.Body, g.Status, g.Challenge, g.Body)
				}
			}
		}
	}

	// Mount: from a repository the user may not pull, nothing is mounted
	// (a session is opened instead, as the spec allows); without from, only
	// repositories the user may pull are considered.
	teamBlob := digest.FromBytes(s.images["team/hello"].Config)
	for _, from := range []string{"&from=team/hello", ""} {
		a := c.do("POST", "/v2/other/x/blobs/uploads/?mount="+teamBlob.String()+from, nil)
		switch {
		case !may(user, "other/x", "push"):
			if a.Status != refused {
				t.Errorf("mount%s into other/x: %d, want %d", from, a.Status, refused)
			}
		case may(user, "team/hello", "pull"):
			if a.Status != http.StatusCreated {
				t.Errorf("mount%s into other/x: %d %s, want 201", from, a.Status, a.Body)
			}
		default:
			if a.Status != http.StatusAccepted {
				t.Errorf("mount%s of a blob the user may not read: %d %s, want 202 (a new session)", from, a.Status, a.Body)
			}
		}
	}

	// The catalog lists exactly the repositories the user may pull.
	var seeded []string
	for _, r := range []string{"apps/bare", "apps/platform", "other/x", "team/hello"} {
		if may(user, r, "pull") {
			seeded = append(seeded, r)
		}
	}
	// (A token-flow client asks for registry:catalog:*, as crane does.)
	if s.bearer {
		a = c.send("GET", "/v2/_catalog", nil, "Bearer "+c.token(s.base+"/auth/token", "berth", "registry:catalog:*"))
	} else {
		a = c.do("GET", "/v2/_catalog", nil)
	}
	var cat struct {
		Repositories []string `json:"repositories"`
	}
	if err := json.Unmarshal(a.Body, &cat); a.Status != 200 || err != nil {
		t.Errorf("catalog: %d %s", a.Status, a.Body)
	}
	sort.Strings(cat.Repositories)
	if !slices.Equal(cat.Repositories, seeded) {
		t.Errorf("catalog %v, want %v", cat.Repositories, seeded)
	}

	// The side doors show what the user may pull and nothing else.
	var inIndex []string
	for _, r := range s.index(t, c) {
		inIndex = append(inIndex, r.Name)
	}
	sort.Strings(inIndex)
	var wantIndex []string
	for _, r := range []string{"apps/bare", "apps/platform", "team/hello"} {
		if may(user, r, "pull") {
			wantIndex = append(wantIndex, r)
		}
	}
	if !slices.Equal(inIndex, wantIndex) {
		t.Errorf("Flatpak index lists %v, want %v", inIndex, wantIndex)
	}
	canTeam := may(user, "team/hello", "pull")
	for _, p := range []string{s.iconPath, "/flatpakref/team/hello/latest.flatpakref", "/repositories/team/hello", "/apps/org.berth.Hello"} {
		a := s.sideDoor(t, c, p)
		want := map[bool]int{true: 200, false: 404}[canTeam]
		if a.Status != want {
			t.Errorf("GET %s: %d, want %d", p, a.Status, want)
		}
	}
	for _, pm := range []struct{ path, marker, repo string }{
		{"/", "org.berth.Hello", "team/hello"},
		{"/repositories", "team/hello", "team/hello"},
		{"/repositories", "other/x", "other/x"},
		{"/api/v1/search?q=hello", "org.berth.Hello", "team/hello"},
		{"/api/v1/search?q=team", "team/hello", "team/hello"},
		{"/search?q=hello", "org.berth.Hello", "team/hello"},
	} {
		a := s.sideDoor(t, c, pm.path)
		if a.Status != 200 {
			t.Errorf("GET %s: %d", pm.path, a.Status)
			continue
		}
		if shows, want := strings.Contains(string(a.Body), pm.marker), may(user, pm.repo, "pull"); shows != want {
			t.Errorf("GET %s shows %s: %v, want %v", pm.path, pm.marker, shows, want)
		}
	}
}
