package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

const (
	gcRaceClients  = 4
	gcRaceRounds   = 30 // pushes per client: 120 in all
	gcRaceTags     = 3  // tags each client cycles through, so re-pushes untag images
	gcRaceShared   = 3  // layers every client uses, in both repositories
	gcRaceDeadline = 4 * time.Minute
	gcRaceAttempts = 50 // tries of one push before the test gives up on it
)

// gcRaceEnv runs garbage collection in berth serve every 100 ms with no
// grace period and untagged manifests collected at once: every push races
// with a gc run.
var gcRaceEnv = []string{"BERTH_GC_INTERVAL=100ms", "BERTH_GC_GRACE=0s", "BERTH_GC_UNTAGGED_AFTER=1ns"}

// TestGCRace is the GC race test: while berth serve collects garbage every
// 100 ms with a zero grace period, clients push images that share layers
// over HTTP, move and delete tags and push again. A push may have to be
// retried (a zero grace period lets gc take a blob between its upload and
// the manifest: 503 on the upload, or MANIFEST_BLOB_UNKNOWN on the
// manifest; see package gc); retries are counted. Afterwards every tagged
// image pulls complete, berth stops cleanly, fsck is clean, and after one
// more `berth gc` exactly the blobs of the tagged images are left on disk
// (count and bytes), and every image that lost its tag is gone.
//
// BERTH_GCRACE_SEED=<n> replays a run's layer sizes.
func TestGCRace(t *testing.T) {
	seed := testSeed(t, "BERTH_GCRACE_SEED")
	rng := rand.New(rand.NewPCG(seed, 0x6c))

	data := t.TempDir()
	srv := startServerOn(t, data, gcRaceEnv...)
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConnsPerHost: gcRaceClients,
		},
	}
	base := "http://" + srv.Addr
	p := &pusher{c: client, base: func() string { return base }}

	shared := make([][]byte, gcRaceShared)
	for i := range shared {
		shared[i] = seededBytes(rng, 16<<10+rng.IntN(16<<10))
	}
	// Each client's images, made up front so the rng replays.
	plans := make([][]testImage, gcRaceClients)
	for c := range plans {
		repo := fmt.Sprintf("gcrace/r%d", c%2)
		for i := range gcRaceRounds {
			cfg, _ := json.Marshal(map[string]any{
				"architecture": "amd64", "os": "linux",
				"config": map[string]any{"Labels": map[string]string{"client": strconv.Itoa(c), "round": strconv.Itoa(i)}},
				"rootfs": map[string]any{"type": "layers", "diff_ids": []string{}},
			})
			layers := [][]byte{shared[(c+i)%gcRaceShared], seededBytes(rng, 1<<10+rng.IntN(16<<10))}
			tag := fmt.Sprintf("c%d-t%d", c, i%gcRaceTags)
			plans[c] = append(plans[c], makeTestImage(repo, tag, cfg, layers...))
		}
	}

	var (
		mu       sync.Mutex
		tagged   = map[string]testImage{} // "repo:tag" → the image it must pull as
		untagged []testImage              // images whose tag moved or was deleted
		retries  = map[string]*atomic.Int64{"503": {}, "MANIFEST_BLOB_UNKNOWN": {}}
		deletes  atomic.Int64
		wg       sync.WaitGroup
		deadline = time.Now().Add(gcRaceDeadline)
	)
	// push pushes img until acknowledged, retrying what a zero grace
	// period may take away, and fails on anything else.
	push := func(img testImage) error {
		var last error
		for range gcRaceAttempts {
			if time.Now().After(deadline) {
				break
			}
			last = pushAll(p, img, false)
			var se *statusError
			switch {
			case last == nil:
				return nil
			case errors.As(last, &se) && se.status == http.StatusServiceUnavailable:
				retries["503"].Add(1)
			case errors.As(last, &se) && se.status == http.StatusBadRequest && specCode(se.body) == "MANIFEST_BLOB_UNKNOWN":
				retries["MANIFEST_BLOB_UNKNOWN"].Add(1)
			default:
				return last
			}
		}
		return fmt.Errorf("push of %s:%s not acknowledged: %v", img.Repo, img.Tag, last)
	}
	for c := range gcRaceClients {
		wg.Go(func() {
			for i, img := range plans[c] {
				if err := push(img); err != nil {
					t.Errorf("client %d: %v", c, err)
					return
				}
				key := img.Repo + ":" + img.Tag
				mu.Lock()
				if old, ok := tagged[key]; ok && digest.FromBytes(old.Manifest) != digest.FromBytes(img.Manifest) {
					untagged = append(untagged, old)
				}
				tagged[key] = img
				mu.Unlock()
				// Every fourth round, delete another of this client's tags.
				if i%4 == 3 {
					other := img.Repo + ":" + fmt.Sprintf("c%d-t%d", c, (i+1)%gcRaceTags)
					mu.Lock()
					old, ok := tagged[other]
					delete(tagged, other)
					if ok {
						untagged = append(untagged, old)
					}
					mu.Unlock()
					if ok {
						if _, _, err := p.expect(http.StatusAccepted, "DELETE tag "+other, "DELETE", "/v2/"+old.Repo+"/manifests/"+old.Tag, nil); err != nil {
							t.Errorf("client %d: %v", c, err)
							return
						}
						deletes.Add(1)
					}
				}
				// Pull what was just tagged while gc runs.
				if err := p.verify(img); err != nil {
					t.Errorf("client %d: pull right after push: %v", c, err)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d pushes acknowledged, %d tags deleted; retried %d pushes after a 503 and %d after MANIFEST_BLOB_UNKNOWN",
		gcRaceClients*gcRaceRounds, deletes.Load(), retries["503"].Load(), retries["MANIFEST_BLOB_UNKNOWN"].Load())
	if t.Failed() {
		t.FailNow()
	}
	for key, img := range tagged {
		if err := p.verify(img); err != nil {
			t.Errorf("%s after the race: %v", key, err)
		}
	}
	srv.Stop(t)
	if t.Failed() {
		t.FailNow()
	}
	runs, freed := gcActivity(t, srv.LogPath)
	t.Logf("berth serve ran gc %d times and deleted %d manifests, %d blobs and %d orphan files (%d bytes)",
		runs, freed["manifests"], freed["blobs"], freed["orphan_files"], freed["bytes_freed"])
	if runs == 0 || freed["manifests"] == 0 || freed["blobs"] == 0 {
		t.Errorf("gc in berth serve deleted no manifest or no blob during the race: the test did not exercise it")
	}

	fsckClean(t, data, "after the race")
	out, err := runBerthEnv(t, gcRaceEnv, "gc", "--data", data)
	t.Logf("berth gc: %s", fsckSummary(out))
	if err != nil {
		t.Fatalf("berth gc: %v\n%s", err, out)
	}
	fsckClean(t, data, "after berth gc")

	// Exactly the blobs of the tagged images are left.
	want := map[digest.Digest]int64{}
	var wantBytes int64
	for _, img := range tagged {
		for _, b := range img.blobs() {
			d := digest.FromBytes(b)
			if _, ok := want[d]; !ok {
				want[d] = int64(len(b))
				wantBytes += int64(len(b))
			}
		}
	}
	got, gotBytes := blobFiles(t, data)
	if len(got) != len(want) || gotBytes != wantBytes {
		t.Errorf("%d blob files (%d bytes) left; want exactly the %d blobs (%d bytes) of the %d tagged images",
			len(got), gotBytes, len(want), wantBytes, len(tagged))
	}
	for d, size := range got {
		if wsize, ok := want[d]; !ok {
			t.Errorf("garbage left: %s (%d bytes)", d, size)
		} else if size != wsize {
			t.Errorf("blob %s is %d bytes, want %d", d, size, wsize)
		}
	}
	for d := range want {
		if _, ok := got[d]; !ok {
			t.Errorf("blob %s of a tagged image is gone", d)
		}
	}
	t.Logf("%d blob files (%d bytes) left, those of the %d tagged images", len(got), gotBytes, len(tagged))

	// And through the API: the tagged images pull complete, the tags are
	// what the clients left, and the images that lost their tags are gone.
	srv = startServerOn(t, data, "BERTH_GC_INTERVAL=0s")
	base = "http://" + srv.Addr
	for key, img := range tagged {
		if err := p.verify(img); err != nil {
			t.Errorf("%s after berth gc: %v", key, err)
		}
	}
	for _, repo := range []string{"gcrace/r0", "gcrace/r1"} {
		_, b, err := p.expect(http.StatusOK, "tags of "+repo, "GET", "/v2/"+repo+"/tags/list", nil)
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(b, &list); err != nil {
			t.Fatalf("tags of %s: %v", repo, err)
		}
		var wantTags []string
		for _, img := range tagged {
			if img.Repo == repo {
				wantTags = append(wantTags, img.Tag)
			}
		}
		slices.Sort(list.Tags)
		slices.Sort(wantTags)
		if !slices.Equal(list.Tags, wantTags) {
			t.Errorf("tags of %s = %v, want %v", repo, list.Tags, wantTags)
		}
	}
	live := map[digest.Digest]bool{}
	for _, img := range tagged {
		live[digest.FromBytes(img.Manifest)] = true
	}
	gone := 0
	for _, img := range untagged {
		d := digest.FromBytes(img.Manifest)
		if live[d] {
			continue
		}
		if _, _, err := p.expect(http.StatusNotFound, "GET untagged manifest", "GET", "/v2/"+img.Repo+"/manifests/"+d.String(), nil,
			"Accept", "application/vnd.oci.image.manifest.v1+json"); err != nil {
			t.Errorf("untagged image %s@%s is still there: %v", img.Repo, d, err)
		}
		gone++
	}
	t.Logf("%d untagged images are gone", gone)
	srv.Stop(t)
}

// fsckClean runs `berth fsck` with no grace period on data and fails the
// test unless it exits 0 and reports no problem.
func fsckClean(t *testing.T, data, when string) {
	t.Helper()
	out, err := runBerth(t, "fsck", "--data", data, "--grace", "0")
	t.Logf("fsck %s: %s", when, fsckSummary(out))
	if err != nil || len(fsckProblems(out)) != 0 {
		t.Fatalf("fsck %s is not clean: %v\n%s", when, err, out)
	}
}

// runBerthEnv is runBerth with BERTH_* settings added to the environment.
func runBerthEnv(t testing.TB, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, berthBinary(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// blobFiles returns the blob files under data (blob/fs keeps them at
// blobs/<algorithm>/<2 hex>/<hex>) and their total size.
func blobFiles(t *testing.T, data string) (map[digest.Digest]int64, int64) {
	t.Helper()
	files := map[digest.Digest]int64{}
	var total int64
	root := filepath.Join(data, "blobs")
	err := filepath.WalkDir(root, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		alg, rest, _ := cutPath(rel)
		_, hex, _ := cutPath(rest)
		d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
		if err := d.Validate(); err != nil {
			return fmt.Errorf("not a blob file: %s", path)
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		files[d] = fi.Size()
		total += fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, total
}

// cutPath splits a relative path at its first separator.
func cutPath(p string) (first, rest string, ok bool) {
	for i := range len(p) {
		if os.IsPathSeparator(p[i]) {
			return p[:i], p[i+1:], true
		}
	}
	return p, "", false
}

// gcActivity reads berth serve's log: how many gc runs finished, and the
// sum of each report field over them.
func gcActivity(t *testing.T, logPath string) (int, map[string]int64) {
	t.Helper()
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`msg="gc finished"[^\n]*`)
	field := regexp.MustCompile(`report\.([a-z_]+)=(\d+)`)
	sums := map[string]int64{}
	lines := line.FindAll(b, -1)
	for _, l := range lines {
		for _, m := range field.FindAllSubmatch(l, -1) {
			n, _ := strconv.ParseInt(string(m[2]), 10, 64)
			sums[string(m[1])] += n
		}
	}
	return len(lines), sums
}
