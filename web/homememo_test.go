package web

import (
	"net/http"
	"strings"
	"testing"
)

// TestHomeMemo: the home page is answered from its last rendering while
// what it shows is unchanged (a new build of an app, a server image
// pushed to an existing repository), and rendered again, showing the
// change, as soon as a card, the list or a count changes; HEAD answers the
// same headers without a body.
func TestHomeMemo(t *testing.T) {
	s := newSite(t, Options{})
	hello := app{id: "org.example.Hello", appdata: appdata("org.example.Hello", "Hello", "Says hello", "")}
	s.push("hello", img{labels: hello.labels(t)}, "stable")
	s.push("library/server", img{layer: "server v1"}, "v1")

	first := s.get("/", http.StatusOK)
	if !strings.Contains(first.body, "Says hello") {
		t.Fatalf("GET / does not show the app:\n%s", clip(first.body))
	}
	renders := s.web.renders.Load()
	again := s.get("/", http.StatusOK)
	if again.body != first.body {
		t.Errorf("GET / changed with nothing pushed")
	}
	head := s.do(http.MethodHead, "/", nil)
	if head.status != http.StatusOK || head.body != "" || head.header.Get("Content-Length") != first.header.Get("Content-Length") ||
		head.header.Get("Content-Type") != first.header.Get("Content-Type") {
		t.Errorf("HEAD / = %d %q, headers %v; want GET's headers and no body", head.status, head.body, head.header)
	}
	// What the home page does not show: a new build of the app (same
	// name, summary and icon) and a new tag of a server image.
	s.push("hello", img{labels: hello.labels(t), layer: "hello build 2"}, "stable")
	s.push("library/server", img{layer: "server v2"}, "v2")
	if got := s.get("/", http.StatusOK); got.body != first.body {
		t.Errorf("GET / changed after pushes it does not show:\n%s", clip(got.body))
	}
	if n := s.web.renders.Load() - renders; n != 0 {
		t.Errorf("%d renderings for unchanged home pages, want 0 (the memo)", n)
	}

	// A new summary is shown at once.
	hello.appdata = appdata("org.example.Hello", "Hello", "Says hello again", "")
	s.push("hello", img{labels: hello.labels(t), layer: "hello build 3"}, "stable")
	if got := s.get("/", http.StatusOK); !strings.Contains(got.body, "Says hello again") {
		t.Errorf("GET / after a new summary:\n%s", clip(got.body))
	}
	// So are a new app and a new repository (the count of repositories).
	other := app{id: "org.example.Other", appdata: appdata("org.example.Other", "Other", "Another one", "")}
	s.push("other", img{labels: other.labels(t)}, "stable")
	if got := s.get("/", http.StatusOK); !strings.Contains(got.body, "Another one") {
		t.Errorf("GET / after a new app:\n%s", clip(got.body))
	}
	before := s.get("/", http.StatusOK).body
	s.push("library/second", img{layer: "second"}, "v1")
	after := s.get("/", http.StatusOK).body
	if !strings.Contains(before, "(3)") || !strings.Contains(after, "(4)") {
		t.Errorf("the repository count did not move from 3 to 4:\nbefore %s\nafter %s", clip(before), clip(after))
	}
	// Another page of the listing is its own rendering, and page 1's
	// memo still answers page 1.
	r := s.web.renders.Load()
	s.get("/?page=1", http.StatusOK)
	if s.web.renders.Load() != r {
		t.Errorf("/?page=1 was rendered again; its data is /'s")
	}
}
