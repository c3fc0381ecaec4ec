package registry

import (
	"strings"
	"testing"
)

func TestParseRoute(t *testing.T) {
	for _, tc := range []struct {
		path string
		want route
	}{
		{"/v2/", route{kind: kindBase}},
		{"/v2", route{kind: kindBase}},
		{"/v2/_catalog", route{kind: kindCatalog}},
		{"/v2/a/tags/list", route{kind: kindTags, name: "a"}},
		{"/v2/a/b/c/tags/list", route{kind: kindTags, name: "a/b/c"}},
		{"/v2/a/manifests/latest", route{kind: kindManifest, name: "a", ref: "latest"}},
		{"/v2/a/manifests/manifests/x", route{kind: kindManifest, name: "a/manifests", ref: "x"}},
		{"/v2/x/blobs/sha256:abc", route{kind: kindBlob, name: "x", ref: "sha256:abc"}},
		{"/v2/x/y/blobs/uploads/", route{kind: kindUploadStart, name: "x/y"}},
		{"/v2/x/y/blobs/uploads", route{kind: kindUploadStart, name: "x/y"}},
		{"/v2/x/y/blobs/uploads/abc", route{kind: kindUpload, name: "x/y", upload: "abc"}},
		{"/v2/blobs/blobs/uploads/abc", route{kind: kindUpload, name: "blobs", upload: "abc"}},
		{"/v2/r/referrers/sha256:abc", route{kind: kindReferrers, name: "r", ref: "sha256:abc"}},
		{"/v2/r/tags/other", route{}},
		{"/v2/r", route{}},
		{"/v2/manifests/x", route{}},
		{"/v3/a/manifests/x", route{}},
		{"/v2/" + strings.Repeat("a/", 4100) + "manifests/x", route{}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			if got := parseRoute(tc.path); got != tc.want {
				t.Fatalf("parseRoute(%q) = %+v, want %+v", tc.path, got, tc.want)
			}
		})
	}
}

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/a/b/manifests/t", "/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/x", "/v2/a/tags/list", "/v2/x/referrers/sha256:0", "/v2//manifests/", "/v2/../../manifests/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt := parseRoute(path)
		if rt.kind == kindNone {
			return
		}
		if !strings.HasPrefix(path, "/v2") {
			t.Fatalf("routed a path outside /v2: %q", path)
		}
		// The parts must reassemble into the path (nothing invented or lost).
		if rt.name != "" && !strings.Contains(path, "/v2/"+rt.name+"/") {
			t.Fatalf("name %q not in path %q", rt.name, path)
		}
		if strings.Contains(rt.ref, "/") || strings.Contains(rt.upload, "/") {
			t.Fatalf("reference with a slash from %q: %+v", path, rt)
		}
	})
}

func TestGuessRoute(t *testing.T) {
	for _, tc := range []struct {
		path string
		want route
	}{
		{"/v2/a/blobs/sha256:x/y", route{kind: kindBlob, name: "a", ref: "sha256:x/y"}},
		{"/v2/a/b/manifests/x/y", route{kind: kindManifest, name: "a/b", ref: "x/y"}},
		{"/v2/a/blobs/uploads/x/y", route{kind: kindUpload, name: "a", upload: "x/y"}},
		{"/v2/a/referrers/sha256:x/y", route{kind: kindReferrers, name: "a", ref: "sha256:x/y"}},
		{"/v2/a/tags/x", route{}},
		{"/v2/blobs/x", route{}},
	} {
		if got := guessRoute(tc.path); got != tc.want {
			t.Errorf("guessRoute(%q) = %+v, want %+v", tc.path, got, tc.want)
		}
	}
}

func FuzzGuessRoute(f *testing.F) {
	for _, s := range []string{"/v2/a/blobs/sha256:x/y", "/v2/a/blobs/uploads/x/y", "/v2/a/b/manifests/c/d", "/v2//blobs//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt := guessRoute(path)
		if rt.kind == kindNone {
			return
		}
		if rt.name == "" || !strings.HasPrefix(path, "/v2/"+rt.name+"/") {
			t.Fatalf("name %q is not the start of %q", rt.name, path)
		}
		_ = checkCanonical(path)
	})
}
