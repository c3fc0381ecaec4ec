package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// fakeAccess grants actions per user (the X-User header; none is
// anonymous) and repository, and records the scopes it was asked to deny.
type fakeAccess struct {
	grants  map[string]map[string][]string // user → repo → actions
	catalog map[string]bool                // users who may list the catalog
	mu      sync.Mutex
	denied  []string
}

func (f *fakeAccess) Allowed(r *http.Request, repo, action string) bool {
	return slices.Contains(f.grants[r.Header.Get("X-User")][repo], action)
}

func (f *fakeAccess) CatalogAllowed(r *http.Request) bool { return f.catalog[r.Header.Get("X-User")] }
func (f *fakeAccess) CatalogVisible(r *http.Request, repo string) bool {
	return f.Allowed(r, repo, ActionPull)
}

func (f *fakeAccess) Authenticated(r *http.Request) bool { return r.Header.Get("X-User") != "" }

func (f *fakeAccess) Deny(w http.ResponseWriter, r *http.Request, scope string) int {
	f.mu.Lock()
	f.denied = append(f.denied, scope)
	f.mu.Unlock()
	if !f.Authenticated(r) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="https://auth.test/token",service="test",scope=%q`, scope))
		return http.StatusUnauthorized
	}
	return http.StatusForbidden
}

func (f *fakeAccess) lastDenied() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.denied) == 0 {
		return ""
	}
	return f.denied[len(f.denied)-1]
}

// accessRegistry: "admin" may do everything everywhere it is given repos;
// the others as named.
func accessRegistry(t *testing.T) (*testRegistry, *fakeAccess) {
	all := []string{"pull", "push", "overwrite", "delete"}
	f := &fakeAccess{
		grants: map[string]map[string][]string{
			"admin":       {"app": all, "other": all, "secret": all, "public": all},
			"reader":      {"app": {"pull"}, "public": {"pull"}},
			"writer":      {"app": {"pull", "push"}},
			"overwriter":  {"app": {"pull", "push", "overwrite"}},
			"deleter":     {"app": {"pull", "delete"}},
			"pushonly":    {"app": {"push"}, "secret": {"push"}},
			"otheruser":   {"other": {"pull", "push", "delete", "overwrite"}},
			"mounter":     {"app": {"pull", "push"}, "other": {"push"}},
			"catalogread": {"app": {"pull"}, "public": {"pull"}},
		},
		catalog: map[string]bool{"admin": true, "catalogread": true, "reader": false},
	}
	tr := newTestRegistry(t, Options{Access: f})
	return tr, f
}

func as(user string) []string { return []string{"X-User", user} }

func (tr *testRegistry) doAs(user, method, path string, body any, headers ...string) resp {
	tr.t.Helper()
	if user != "" {
		headers = append(headers, as(user)...)
	}
	return tr.do(method, path, body, headers...)
}

func TestAccessBaseChallengesAnonymous(t *testing.T) {
	tr, f := accessRegistry(t)
	r := tr.do("GET", "/v2/", nil)
	tr.expect(r, 401, "UNAUTHORIZED")
	if r.header.Get("WWW-Authenticate") == "" || f.lastDenied() != "" {
		t.Fatalf("anonymous /v2/: challenge %q scope %q", r.header.Get("WWW-Authenticate"), f.lastDenied())
	}
	tr.expect(tr.doAs("reader", "GET", "/v2/", nil), 200, "")
	// Without Access, anonymous is fine (auth off).
	open := newTestRegistry(t, Options{})
	open.expect(open.do("GET", "/v2/", nil), 200, "")
}

// Refusals are decided before any lookup: a repository that exists and one
// that does not give byte-identical answers, for every endpoint.
func TestAccessRefusalsIndistinguishable(t *testing.T) {
	tr, _ := accessRegistry(t)
	img := newImage(t, "exists")
	tr.pushAs("admin", "secret", "v1", img)
	d := digest.FromBytes(img.layer).String()
	upload := tr.doAs("admin", "POST", "/v2/secret/blobs/uploads/", nil)
	tr.expect(upload, 202, "")
	id := upload.header.Get("Docker-Upload-UUID")
	endpoints := []struct{ method, path string }{
		{"GET", "/v2/%s/manifests/v1"},
		{"HEAD", "/v2/%s/manifests/v1"},
		{"GET", "/v2/%s/manifests/" + img.digest.String()},
		{"PUT", "/v2/%s/manifests/v1"},
		{"DELETE", "/v2/%s/manifests/v1"},
		{"DELETE", "/v2/%s/manifests/" + img.digest.String()},
		{"GET", "/v2/%s/blobs/" + d},
		{"HEAD", "/v2/%s/blobs/" + d},
		{"DELETE", "/v2/%s/blobs/" + d},
		{"GET", "/v2/%s/tags/list"},
		{"GET", "/v2/%s/referrers/" + img.digest.String()},
		{"POST", "/v2/%s/blobs/uploads/"},
		{"POST", "/v2/%s/blobs/uploads/?mount=" + d + "&from=app"},
		{"GET", "/v2/%s/blobs/uploads/" + id},
		{"PATCH", "/v2/%s/blobs/uploads/" + id},
		{"PUT", "/v2/%s/blobs/uploads/" + id + "?digest=" + d},
		{"DELETE", "/v2/%s/blobs/uploads/" + id},
	}
	for _, user := range []string{"", "reader", "otheruser"} {
		for _, ep := range endpoints {
			var answers []resp
			for _, repo := range []string{"secret", "nosuchrepo"} {
				r := tr.doAs(user, ep.method, fmt.Sprintf(ep.path, repo), img.manifest, "Content-Type", ociManifest)
				answers = append(answers, r)
			}
			a, b := answers[0], answers[1]
			want, code := 403, "DENIED"
			if user == "" {
				want, code = 401, "UNAUTHORIZED"
			}
			tr.expect(a, want, "")
			if ep.method != "HEAD" && a.code() != code {
				t.Fatalf("%q %s %s: %s, want %s", user, ep.method, ep.path, a.body, code)
			}
			if a.status != b.status || string(a.body) != string(b.body) || !sameHeaders(a.header, b.header, "secret", "nosuchrepo") {
				t.Fatalf("%q %s %s: existing %d %s %v, missing %d %s %v", user, ep.method, ep.path, a.status, a.body, a.header, b.status, b.body, b.header)
			}
		}
	}
	// Nothing changed.
	tr.expect(tr.doAs("admin", "GET", "/v2/secret/manifests/v1", nil), 200, "")
	tr.expect(tr.doAs("admin", "GET", "/v2/secret/blobs/uploads/"+id, nil), 204, "")
}

// sameHeaders compares two responses' headers, but Date, with the
// repository names swapped (the challenge names the scope asked for).
func sameHeaders(a, b http.Header, nameA, nameB string) bool {
	a, b = a.Clone(), b.Clone()
	a.Del("Date")
	b.Del("Date")
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb := b[k]
		if len(va) != len(vb) {
			return false
		}
		for i := range va {
			if strings.ReplaceAll(va[i], nameA, nameB) != vb[i] {
				return false
			}
		}
	}
	return true
}

func (tr *testRegistry) pushAs(user, repo, ref string, img image) {
	tr.t.Helper()
	for _, b := range [][]byte{img.config, img.layer} {
		r := tr.doAs(user, "POST", "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), b)
		tr.expect(r, 201, "")
	}
	tr.expect(tr.doAs(user, "PUT", "/v2/"+repo+"/manifests/"+ref, img.manifest, "Content-Type", ociManifest), 201, "")
}

// Each endpoint needs its action, and the challenge names its scope.
func TestAccessActionsPerEndpoint(t *testing.T) {
	tr, f := accessRegistry(t)
	img := newImage(t, "actions")
	tr.pushAs("admin", "app", "v1", img)
	d := digest.FromBytes(img.layer).String()
	pull, push, del := "repository:app:pull", "repository:app:pull,push", "repository:app:delete"
	for _, tc := range []struct {
		user, method, path string
		status             int
		scope              string
	}{
		{"reader", "GET", "/v2/app/manifests/v1", 200, ""},
		{"reader", "GET", "/v2/app/blobs/" + d, 200, ""},
		{"reader", "GET", "/v2/app/tags/list", 200, ""},
		{"reader", "GET", "/v2/app/referrers/" + img.digest.String(), 200, ""},
		{"reader", "POST", "/v2/app/blobs/uploads/", 403, push},
		{"reader", "PUT", "/v2/app/manifests/v2", 403, push},
		{"reader", "DELETE", "/v2/app/manifests/v1", 403, del},
		{"pushonly", "GET", "/v2/app/manifests/v1", 403, pull},
		{"pushonly", "GET", "/v2/app/tags/list", 403, pull},
		{"pushonly", "GET", "/v2/app/referrers/" + img.digest.String(), 403, pull},
		{"pushonly", "GET", "/v2/app/blobs/" + d, 403, pull},
		{"", "GET", "/v2/app/blobs/" + d, 401, pull},
		{"writer", "POST", "/v2/app/blobs/uploads/", 202, ""},
		// V12: DELETE needs delete, not push.
		{"writer", "DELETE", "/v2/app/blobs/" + d, 403, del},
		{"writer", "DELETE", "/v2/app/manifests/v1", 403, del},
		{"writer", "DELETE", "/v2/app/manifests/" + img.digest.String(), 403, del},
		{"deleter", "POST", "/v2/app/blobs/uploads/", 403, push},
		{"otheruser", "GET", "/v2/app/manifests/v1", 403, pull},
		{"reader", "GET", "/v2/_catalog", 403, "registry:catalog:*"},
		{"", "GET", "/v2/_catalog", 401, "registry:catalog:*"},
	} {
		t.Run(tc.user+" "+tc.method+" "+tc.path, func(t *testing.T) {
			var body any
			if tc.method == "PUT" {
				body = img.manifest
			}
			r := tr.doAs(tc.user, tc.method, tc.path, body, "Content-Type", ociManifest)
			tr.expect(r, tc.status, "")
			if tc.scope != "" && f.lastDenied() != tc.scope {
				t.Fatalf("denied scope %q, want %q", f.lastDenied(), tc.scope)
			}
		})
	}
	// The deleter may delete: tag, manifest, blob (V12).
	tr.expect(tr.doAs("deleter", "DELETE", "/v2/app/manifests/v1", nil), 202, "")
	tr.expect(tr.doAs("deleter", "DELETE", "/v2/app/manifests/"+img.digest.String(), nil), 202, "")
	tr.expect(tr.doAs("deleter", "DELETE", "/v2/app/blobs/"+d, nil), 202, "")
}

// V10, V11: moving a tag that exists to another digest needs overwrite,
// for the path tag and every ?tag= value alike, whatever the tag's name.
func TestAccessTagOverwrite(t *testing.T) {
	tr, f := accessRegistry(t)
	one, two := newImage(t, "one"), newImage(t, "two")
	tr.pushAs("writer", "app", "latest", one)
	tr.pushAs("writer", "app", "v1", one)
	for _, b := range [][]byte{two.config, two.layer} {
		tr.expect(tr.doAs("writer", "POST", "/v2/app/blobs/uploads/?digest="+digest.FromBytes(b).String(), b), 201, "")
	}
	put := func(user, ref string) resp {
		return tr.doAs(user, "PUT", "/v2/app/manifests/"+ref, two.manifest, "Content-Type", ociManifest)
	}
	// Re-pushing the same digest to its tags is no overwrite.
	tr.expect(tr.doAs("writer", "PUT", "/v2/app/manifests/latest", one.manifest, "Content-Type", ociManifest), 201, "")
	tr.expect(tr.doAs("writer", "PUT", "/v2/app/manifests/"+one.digest.String()+"?tag=v1&tag=latest", one.manifest, "Content-Type", ociManifest), 201, "")
	for _, ref := range []string{"latest", "v1", two.digest.String() + "?tag=latest", two.digest.String() + "?tag=new&tag=v1"} {
		r := put("writer", ref)
		tr.expect(r, 403, "DENIED")
		if !strings.Contains(f.lastDenied(), "overwrite") {
			t.Fatalf("overwrite refusal scope %q", f.lastDenied())
		}
	}
	// Nothing moved, nothing was stored under the refused digest's tag.
	for _, tag := range []string{"latest", "v1"} {
		r := tr.doAs("reader", "GET", "/v2/app/manifests/"+tag, nil)
		if r.header.Get("Docker-Content-Digest") != one.digest.String() {
			t.Fatalf("tag %s moved to %s", tag, r.header.Get("Docker-Content-Digest"))
		}
	}
	tr.expect(tr.doAs("reader", "GET", "/v2/app/manifests/new", nil), 404, "MANIFEST_UNKNOWN")
	// New tags need only push; overwrite moves tags.
	tr.expect(put("writer", "fresh"), 201, "")
	tr.expect(put("overwriter", two.digest.String()+"?tag=latest&tag=v1"), 201, "")
	r := tr.doAs("reader", "GET", "/v2/app/manifests/latest", nil)
	if r.header.Get("Docker-Content-Digest") != two.digest.String() {
		t.Fatal("overwriter did not move latest")
	}
}

// Mounts: pull on from is required (else a session, not a mount); a mount
// without from considers only repositories the caller may pull (V8, V14).
func TestAccessMount(t *testing.T) {
	tr, _ := accessRegistry(t)
	secretBlob, appBlob := []byte("secret bytes"), []byte("app bytes")
	sd := tr.doAs("admin", "POST", "/v2/secret/blobs/uploads/?digest="+digest.FromBytes(secretBlob).String(), secretBlob)
	tr.expect(sd, 201, "")
	tr.expect(tr.doAs("admin", "POST", "/v2/app/blobs/uploads/?digest="+digest.FromBytes(appBlob).String(), appBlob), 201, "")
	s, a := digest.FromBytes(secretBlob).String(), digest.FromBytes(appBlob).String()

	// mounter: pull+push on app, push only on other.
	r := tr.doAs("mounter", "POST", "/v2/other/blobs/uploads/?mount="+s+"&from=secret", nil)
	tr.expect(r, 202, "")
	r = tr.doAs("mounter", "POST", "/v2/other/blobs/uploads/?mount="+s, nil)
	tr.expect(r, 202, "")
	tr.expect(tr.doAs("admin", "HEAD", "/v2/other/blobs/"+s, nil), 404, "")
	// From a repository it may pull: mounted.
	tr.expect(tr.doAs("mounter", "POST", "/v2/other/blobs/uploads/?mount="+a+"&from=app", nil), 201, "")
	tr.expect(tr.doAs("admin", "HEAD", "/v2/other/blobs/"+a, nil), 200, "")
	tr.expect(tr.doAs("admin", "DELETE", "/v2/other/blobs/"+a, nil), 202, "")
	// Without from, a blob in a repository it may pull is found.
	tr.expect(tr.doAs("mounter", "POST", "/v2/other/blobs/uploads/?mount="+a, nil), 201, "")
	// The admin may pull secret: mounted without from.
	tr.expect(tr.doAs("admin", "POST", "/v2/public/blobs/uploads/?mount="+s, nil), 201, "")
}

// A mount without from pages through the linking repositories: a blob in
// many repositories the caller cannot read and one it can is still found.
func TestAccessMountScansBeyondOnePage(t *testing.T) {
	f := &fakeAccess{grants: map[string]map[string][]string{"u": {"target": {"push"}, "zz-last": {"pull"}}}}
	tr := newTestRegistry(t, Options{})
	data := []byte("everywhere")
	d := digest.FromBytes(data)
	tr.pushBlob("seed", data) // the bytes, through a repository u cannot read
	for i := range 2*mountBatch + 3 {
		if err := tr.reg.meta.LinkBlob(t.Context(), fmt.Sprintf("hidden-%03d", i), d, int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	tr.reg.opts.Access = f
	tr.expect(tr.doAs("u", "POST", "/v2/target/blobs/uploads/?mount="+d.String(), nil), 202, "")
	tr.reg.opts.Access = nil
	if err := tr.reg.meta.LinkBlob(t.Context(), "zz-last", d, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	tr.reg.opts.Access = f
	tr.expect(tr.doAs("u", "POST", "/v2/target/blobs/uploads/?mount="+d.String(), nil), 201, "")
}

// The catalog lists only what the caller may pull, and pages still fill up
// to n with a working Link.
func TestAccessCatalogFiltered(t *testing.T) {
	f := &fakeAccess{grants: map[string]map[string][]string{"u": {}}, catalog: map[string]bool{"u": true}}
	tr := newTestRegistry(t, Options{Access: f})
	tr.reg.opts.Access = nil
	var visible []string
	for i := range 50 {
		repo := fmt.Sprintf("repo-%02d", i)
		tr.pushBlob(repo, []byte("x"))
		if i%7 == 3 {
			f.grants["u"][repo] = []string{"pull"}
			visible = append(visible, repo)
		}
	}
	tr.reg.opts.Access = f
	var got []string
	next := "/v2/_catalog?n=2"
	pages := 0
	for next != "" {
		r := tr.doAs("u", "GET", next, nil)
		tr.expect(r, 200, "")
		pages++
		var c struct{ Repositories []string }
		if err := json.Unmarshal(r.body, &c); err != nil {
			t.Fatal(err)
		}
		l := r.header.Get("Link")
		if l != "" && len(c.Repositories) != 2 {
			t.Fatalf("page %d has %d entries and a Link", pages, len(c.Repositories))
		}
		for _, hidden := range []string{"repo-00", "repo-01", "repo-02", "repo-04", "repo-49"} {
			if strings.Contains(l, hidden) || slices.Contains(c.Repositories, hidden) {
				t.Fatalf("hidden repository %s shown: %v %s", hidden, c.Repositories, l)
			}
		}
		got = append(got, c.Repositories...)
		next = ""
		if l != "" {
			next = strings.TrimSuffix(strings.TrimPrefix(l, "<"), `>; rel="next"`)
		}
	}
	if !slices.Equal(got, visible) {
		t.Fatalf("catalog %v, want %v", got, visible)
	}
	if pages != (len(visible)+1)/2 {
		t.Fatalf("%d pages for %d entries of 2", pages, len(visible))
	}
}

// staleTags answers ResolveTag as if the tag did not exist yet: the
// pre-check of a push that races another push creating the tag.
type staleTags struct{ Meta }

func (staleTags) ResolveTag(context.Context, string, string) (digest.Digest, error) {
	return "", meta.ErrTagNotFound
}

// TestAccessTagOverwriteRace (review finding): the tag a pusher without
// overwrite read as absent may exist by the time its manifest is stored;
// the store's own check in the write transaction refuses to move it.
func TestAccessTagOverwriteRace(t *testing.T) {
	tr, f := accessRegistry(t)
	one, two := newImage(t, "one"), newImage(t, "two")
	tr.pushAs("writer", "app", "latest", one)
	for _, b := range [][]byte{two.config, two.layer} {
		tr.expect(tr.doAs("writer", "POST", "/v2/app/blobs/uploads/?digest="+digest.FromBytes(b).String(), b), 201, "")
	}
	real := tr.reg.meta
	tr.reg.meta = staleTags{real}
	for _, ref := range []string{"latest", two.digest.String() + "?tag=latest"} {
		tr.expect(tr.doAs("writer", "PUT", "/v2/app/manifests/"+ref, two.manifest, "Content-Type", ociManifest), 403, "DENIED")
		if !strings.Contains(f.lastDenied(), "overwrite") {
			t.Fatalf("refusal scope %q", f.lastDenied())
		}
	}
	tr.reg.meta = real
	r := tr.doAs("reader", "GET", "/v2/app/manifests/latest", nil)
	if r.header.Get("Docker-Content-Digest") != one.digest.String() {
		t.Fatalf("latest moved to %s", r.header.Get("Docker-Content-Digest"))
	}
	// The overwriter still moves it.
	tr.expect(tr.doAs("overwriter", "PUT", "/v2/app/manifests/latest", two.manifest, "Content-Type", ociManifest), 201, "")
}
