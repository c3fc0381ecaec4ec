package e2e

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestUploadSurvivesRestart starts a chunked upload on a real berth serve,
// stops the server (SIGTERM) in the middle, starts a new one on the same
// data directory, and finishes the upload there: the session, its offset
// and its running hash were persisted.
func TestUploadSurvivesRestart(t *testing.T) {
	data := t.TempDir()
	blob := bytes.Repeat([]byte("berth restart "), 100_000) // 1.4 MB
	half := len(blob) / 2
	d := digest.FromBytes(blob)

	s := startServerOn(t, data)
	p := &pusher{c: httpClient(), base: func() string { return "http://" + s.Addr }}
	hdr, _, err := p.expect(202, "start", "POST", "/v2/restart/blobs/uploads/", nil)
	if err != nil {
		t.Fatal(err)
	}
	loc := hdr.Get("Location")
	if _, _, err := p.expect(202, "first chunk", "PATCH", loc, blob[:half],
		"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("0-%d", half-1)); err != nil {
		t.Fatal(err)
	}
	s.Stop(t)

	s = startServerOn(t, data)
	hdr, _, err = p.expect(204, "status after restart", "GET", loc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hdr.Get("Range"), fmt.Sprintf("0-%d", half-1); got != want {
		t.Fatalf("Range after restart = %q, want %q", got, want)
	}
	if _, _, err := p.expect(202, "second chunk", "PATCH", loc, blob[half:],
		"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-%d", half, len(blob)-1)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.expect(201, "complete", "PUT", loc+"?digest="+d.String(), nil); err != nil {
		t.Fatal(err)
	}
	_, body, err := p.expect(200, "pull", "GET", "/v2/restart/blobs/"+d.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(body) != d {
		t.Fatal("blob pulled after the restart differs")
	}
	s.Stop(t)
}
