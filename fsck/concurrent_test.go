package fsck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/gc"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/registry"
)

// TestCheckWhileServingAndCollecting runs fsck (and fsck --repair) over
// and over while clients push images through a real registry handler and
// gc, with no grace, deletes untagged manifests and their blobs, all on
// the same real stores. Whatever pushes and gc leave in flight, no check
// may report damage, and no repair may break a pushed image.
func TestCheckWhileServingAndCollecting(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	blobs, md := testutil.Stores(t, t.TempDir(), logger)
	srv := httptest.NewServer(registry.New(blobs, md, registry.Options{}, logger))
	t.Cleanup(srv.Close)

	do := func(method, path string, body []byte, ct string) (int, error) {
		req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, nil
	}
	// push uploads a config and a layer and the manifest, tagged or (for
	// gc to delete at once) untagged; it reports whether all were accepted
	// (gc may sweep a blob before its manifest comes: the client retries).
	push := func(repo, tag string, i int) (bool, error) {
		cfg := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","config":{"Labels":{"n":"%s-%d"}}}`, repo, i)
		layer := fmt.Appendf(nil, "layer %s %d %s", repo, i, bytes.Repeat([]byte("x"), i*97%4096))
		for _, b := range [][]byte{cfg, layer} {
			code, err := do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), b, "")
			if err != nil || code != http.StatusCreated {
				return false, err
			}
		}
		desc := func(mt string, b []byte) map[string]any {
			return map[string]any{"mediaType": mt, "digest": digest.FromBytes(b), "size": len(b)}
		}
		body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config": desc("application/vnd.oci.image.config.v1+json", cfg),
			"layers": []any{desc("application/vnd.oci.image.layer.v1.tar", layer)}})
		if tag == "" {
			tag = digest.FromBytes(body).String()
		}
		code, err := do("PUT", "/v2/"+repo+"/manifests/"+tag, body, "application/vnd.oci.image.manifest.v1+json")
		return err == nil && code == http.StatusCreated, err
	}

	var (
		wg       sync.WaitGroup
		pushing  atomic.Int32
		accepted atomic.Int32
		tagged   sync.Map // "repo:tag" of accepted tagged pushes
	)
	const clients, images = 4, 40
	pushing.Store(clients)
	for c := range clients {
		wg.Go(func() {
			defer pushing.Add(-1)
			repo := fmt.Sprintf("app%d", c)
			for i := range images {
				tag := ""
				if i%2 == 0 {
					tag = fmt.Sprintf("v%d", i)
				}
				ok, err := push(repo, tag, i)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					accepted.Add(1)
					if tag != "" {
						tagged.Store(repo+":"+tag, true)
					}
				}
			}
		})
	}
	wg.Go(func() {
		c := gc.New(md, blobs, gc.Policy{}, logger) // no grace: collect at once
		for pushing.Load() > 0 {
			if _, err := c.Run(t.Context(), false); err != nil {
				t.Error(err)
				return
			}
		}
	})
	checks := 0
	for repair := false; pushing.Load() > 0 || checks < 4; repair = !repair {
		r, err := New(md, blobs, nil).Check(t.Context(), Options{Repair: repair})
		if err != nil {
			t.Fatal(err)
		}
		checks++
		for _, p := range r.Problems {
			if !p.Pending {
				t.Errorf("check %d (repair %v) while pushing and collecting: %s", checks, repair, p)
			}
		}
	}
	wg.Wait()
	if accepted.Load() == 0 {
		t.Fatal("no push was accepted")
	}
	t.Logf("%d checks, %d pushes accepted", checks, accepted.Load())
	// Every accepted tagged image still pulls: no repair broke a push.
	tagged.Range(func(k, _ any) bool {
		repo, tag, _ := strings.Cut(k.(string), ":")
		code, err := do("GET", "/v2/"+repo+"/manifests/"+tag, nil, "")
		if err != nil || code != http.StatusOK {
			t.Errorf("%s = %d, %v", k, code, err)
		}
		return true
	})
	if r, err := New(md, blobs, nil).Check(t.Context(), Options{}); err != nil || r.Unrepaired() != 0 {
		t.Errorf("final check: %v %v", err, r.Problems)
	}
}
