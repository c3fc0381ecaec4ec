package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/tardiff"
)

// pushDeltaImage pushes a one-layer image of l labelled with a Flatpak
// ref under tag latest, streaming the layer from its file; it returns the
// manifest digest.
func pushDeltaImage(t *testing.T, base, repo string, l testutil.Layer) digest.Digest {
	t.Helper()
	post := func(body io.Reader, n int64, d digest.Digest) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/?digest="+d.String(), body)
		req.ContentLength = n
		req.Header.Set("Content-Type", "application/octet-stream")
		res, err := httpClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("push blob %s: %s", d, res.Status)
		}
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Labels": map[string]string{"org.flatpak.ref": "app/org.example.Big/x86_64/stable"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{l.DiffID.String()}},
	})
	post(bytes.NewReader(cfg), int64(len(cfg)), digest.FromBytes(cfg))
	f, err := os.Open(l.Path)
	if err != nil {
		t.Fatal(err)
	}
	post(f, l.Size, l.Digest)
	f.Close()
	mf, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(cfg), "size": len(cfg)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l.Digest, "size": l.Size}},
	})
	req, _ := http.NewRequest(http.MethodPut, base+"/v2/"+repo+"/manifests/latest", bytes.NewReader(mf))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	res, err := httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("push manifest: %s", res.Status)
	}
	return digest.FromBytes(mf)
}

// TestDeltaJobSurvivesKill: berth serve is killed (SIGKILL) while it makes
// a delta; nothing is published, the job is still pending, and after a
// restart the job completes and the published delta rebuilds the new
// layer from the old one exactly. Deltas of 128 MiB layers take a second or more,
// so the kill lands in the middle of one; should a delta be done first,
// another version is pushed and killed again.
func TestDeltaJobSurvivesKill(t *testing.T) {
	const repo, size = "org.example.big", 128 << 20
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o750); err != nil {
		t.Fatal(err)
	}
	srv := startServerOn(t, data)
	base := "http://" + srv.Addr
	layers := []testutil.Layer{testutil.WriteLayer(t, filepath.Join(dir, "v0.tar.gz"), size, -1, 0)}
	pushDeltaImage(t, base, repo, layers[0])

	var target digest.Digest
	killed := false
	for v := 1; v <= 3 && !killed; v++ {
		layers = append(layers, testutil.WriteLayer(t, filepath.Join(dir, fmt.Sprintf("v%d.tar.gz", v)), size, v, 0))
		logStart := fileSize(srv.LogPath)
		target = pushDeltaImage(t, base, repo, layers[v])
		// Kill as soon as the worker has planned the new target's deltas.
		waitFor(t, "the deltas of v"+fmt.Sprint(v)+" planned", 2*time.Minute, func() bool {
			b, _ := os.ReadFile(srv.LogPath)
			return int64(len(b)) > logStart && strings.Contains(string(b[logStart:]), "deltas planned")
		})
		srv.Kill(t)
		out, err := runBerth(t, "deltas", "list", "--data", data, repo)
		if err != nil {
			t.Fatalf("berth deltas list: %v\n%s", err, out)
		}
		if strings.Contains(out, short12(target)) && strings.Contains(out, "pending") {
			killed = true
			t.Logf("killed while making the deltas of v%d:\n%s", v, out)
		} else {
			t.Logf("v%d's deltas were done before the kill; another version\n%s", v, out)
		}
		srv = startServerOn(t, data)
		base = "http://" + srv.Addr
	}
	if !killed {
		t.Fatal("three kills all came after the deltas were made")
	}
	// The restarted server finishes the job and publishes the delta.
	var targets []string
	waitFor(t, "the delta to the target published after the restart", 3*time.Minute, func() bool {
		targets = deltaIndexTargets(t, base, repo)
		return contains(targets, target.String())
	})
	if left, _ := os.ReadDir(filepath.Join(data, "tmp", "deltas")); len(left) != 0 {
		t.Errorf("temporary files left after the job: %d", len(left))
	}
	// The published delta from the layer before rebuilds the target's.
	res, err := httpClient().Get(base + "/v2/" + repo + "/manifests/_deltaindex")
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Manifests []struct {
			Digest      digest.Digest     `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	json.NewDecoder(res.Body).Decode(&idx)
	res.Body.Close()
	last, prev := layers[len(layers)-1], layers[len(layers)-2]
	for _, e := range idx.Manifests {
		if e.Annotations["io.github.containers.delta.target"] != target.String() {
			continue
		}
		var dm struct {
			Layers []struct {
				Digest      digest.Digest     `json:"digest"`
				Annotations map[string]string `json:"annotations"`
			} `json:"layers"`
		}
		r2, err := httpClient().Get(base + "/v2/" + repo + "/manifests/" + e.Digest.String())
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(r2.Body).Decode(&dm)
		r2.Body.Close()
		for _, l := range dm.Layers {
			if l.Annotations["io.github.containers.delta.from"] != prev.DiffID.String() {
				continue
			}
			if l.Annotations["io.github.containers.delta.to"] != last.DiffID.String() {
				t.Errorf("delta to %s, want %s", l.Annotations["io.github.containers.delta.to"], last.DiffID)
			}
			if got := applyDeltaBlob(t, base, repo, l.Digest, prev); got != last.DiffID {
				t.Errorf("the delta published after the restart rebuilds %s, not %s", got, last.DiffID)
			}
			return
		}
	}
	t.Fatalf("no delta from the previous version in %+v", idx)
}

// applyDeltaBlob downloads a delta blob and applies it to the tar of from;
// it returns the DiffID of the result.
func applyDeltaBlob(t *testing.T, base, repo string, d digest.Digest, from testutil.Layer) digest.Digest {
	t.Helper()
	f, err := os.Open(from.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	src, err := tardiff.TarSource(t.Context(), zr, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	res, err := httpClient().Get(base + "/v2/" + repo + "/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	h := digest.SHA256.Digester()
	if err := tardiff.Apply(t.Context(), res.Body, src, h.Hash()); err != nil {
		t.Fatalf("applying the delta: %v", err)
	}
	return h.Digest()
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

func short12(d digest.Digest) string { return d.Encoded()[:12] }
