package gc

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// TestRace runs gc continuously with no grace period while several clients
// push images sharing layers through the registry's HTTP API, delete tags
// and push again. Pushes may have to retry (a zero grace period lets gc
// take a blob between its upload and its manifest), but every acknowledged
// tag must pull complete, and afterwards exactly the blobs of the tagged
// images are left.
// pushDeadline is how long one push of TestRace may take, retries
// included, before the test calls it starved.
const pushDeadline = 2 * time.Minute

func TestRace(t *testing.T) {
	e := newEnv(t)
	const workers, rounds = 4, 20
	if testing.Short() {
		t.Skip("race test skipped in -short mode")
	}
	shared := [][]byte{layerA, layerB, layerC}

	var (
		stop    = make(chan struct{})
		gcDone  = make(chan struct{})
		runs    atomic.Int64
		freed   atomic.Int64
		retries atomic.Int64
		deleted atomic.Int64
		// GC runs every 10 ms. A grace period of zero would let it take
		// the links of every push whose manifest comes more than one run
		// after its blobs, so pushes would starve; 30 ms still frees the
		// deleted tags' blobs while layers are re-pushed. The last run,
		// after the pushes, has no grace at all.
		c        = e.collector(Policy{Grace: 30 * time.Millisecond, UntaggedAfter: time.Nanosecond}, 0)
		c0       = e.collector(Policy{Grace: 0, UntaggedAfter: time.Nanosecond}, 0)
		mu       sync.Mutex
		expected = map[string]manifest{} // "repo:tag" → image
	)
	go func() {
		defer close(gcDone)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			r, err := c.Run(t.Context(), false)
			if err != nil {
				t.Errorf("gc: %v", err)
				return
			}
			runs.Add(1)
			freed.Add(r.BytesFreed)
			deleted.Add(int64(r.Blobs + r.Manifests))
		}
	}()

	// push pushes m under tag, retrying what gc's short grace period may
	// take away; it reports whether the push was acknowledged. The bound
	// is time, not attempts: on a loaded machine (CI, the race detector,
	// fsyncs behind other tests' writes) most attempts can outlast the
	// grace for a while, and a push is starved only if none gets through
	// in pushDeadline.
	var mostRetries atomic.Int64
	push := func(repo, tag string, m manifest) error {
		end := time.Now().Add(pushDeadline)
		for attempt := 0; time.Now().Before(end); attempt++ {
			mostRetries.Store(max(mostRetries.Load(), int64(attempt)))
			ok := true
			for _, b := range m.blobs {
				code, body, err := e.do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), b, "")
				if err != nil {
					return err
				}
				if code == http.StatusServiceUnavailable {
					ok = false
					break
				}
				if code != http.StatusCreated {
					return fmt.Errorf("blob push: %d %s", code, body)
				}
			}
			if ok {
				code, body, err := e.do("PUT", "/v2/"+repo+"/manifests/"+tag, m.body, m.mediaType)
				if err != nil {
					return err
				}
				if code == http.StatusCreated {
					return nil
				}
				if code != http.StatusBadRequest || !bytes.Contains(body, []byte("MANIFEST_BLOB_UNKNOWN")) {
					return fmt.Errorf("manifest push: %d %s", code, body)
				}
			}
			retries.Add(1)
		}
		return fmt.Errorf("push of %s:%s did not succeed in %v", repo, tag, pushDeadline)
	}

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			repo := fmt.Sprintf("repo%d", w%2)
			for i := range rounds {
				m := newImage(fmt.Sprintf("w%d-r%d", w, i), nil, layerA, shared[(w+i)%3], fmt.Appendf(nil, "unique %d %d", w, i))
				tag := fmt.Sprintf("w%d-t%d", w, i%3)
				if err := push(repo, tag, m); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				expected[repo+":"+tag] = m
				mu.Unlock()
				if i%4 == 3 {
					old := fmt.Sprintf("w%d-t%d", w, (i+1)%3)
					mu.Lock()
					_, ok := expected[repo+":"+old]
					delete(expected, repo+":"+old)
					mu.Unlock()
					if ok {
						e.must("DELETE", "/v2/"+repo+"/manifests/"+old, nil, "", http.StatusAccepted)
					}
				}
				// Pull what this worker has tagged while gc runs.
				if err := e.pull(repo, tag, m); err != nil {
					t.Errorf("pull right after push: %v", err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-gcDone
	final := e.run(c0, false)
	t.Logf("%d gc runs during the pushes deleted %d manifests and blobs, %d bytes; %d push retries, at most %d for one push; final run %+v",
		runs.Load(), deleted.Load(), freed.Load(), retries.Load(), mostRetries.Load(), final)

	want := map[digest.Digest]int64{}
	var wantBytes int64
	for key, m := range expected {
		repo, tag, _ := strings.Cut(key, ":")
		if err := e.pull(repo, tag, m); err != nil {
			t.Errorf("after the race: %v", err)
		}
		for _, b := range m.blobs {
			if _, ok := want[digest.FromBytes(b)]; !ok {
				want[digest.FromBytes(b)] = int64(len(b))
				wantBytes += int64(len(b))
			}
		}
	}
	files, total := e.files()
	if len(files) != len(want) || total != wantBytes {
		t.Errorf("%d files, %d bytes left; want exactly the %d blobs (%d bytes) of the tagged images", len(files), total, len(want), wantBytes)
	}
	for d := range files {
		if _, ok := want[d]; !ok {
			t.Errorf("garbage left: %s", d)
		}
	}
	if deleted.Load()+int64(final.Blobs+final.Manifests) == 0 {
		t.Error("gc deleted nothing: the test did not exercise it")
	}
}
