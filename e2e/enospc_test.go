package e2e

import (
	"bytes"
	"crypto/rand"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
)

// mountTmpfs mounts a tmpfs of size (e.g. "64m") on a new directory and
// unmounts it at cleanup (after the servers using it stop: cleanups run
// last-registered first). Without root or mount, the test is skipped, or
// fails when strict().
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	why := ""
	if os.Geteuid() != 0 {
		why = "not root"
	} else if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		why = "mount -t tmpfs failed: " + err.Error() + ": " + string(out)
	}
	if why != "" {
		if strict() {
			t.Fatalf("cannot mount a tmpfs for the ENOSPC test: %s", why)
		}
		t.Skipf("cannot mount a tmpfs (%s); set BERTH_E2E=1 to make this a failure", why)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// freeBytes returns the bytes free on the filesystem holding dir.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// fill writes a file of zeros until it holds n bytes or the disk is full
// (n < 0: until full), and returns how many it wrote.
func fill(t *testing.T, path string, n int64) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var written int64
	for n < 0 || written < n {
		b := buf
		if n >= 0 && n-written < int64(len(b)) {
			b = b[:n-written]
		}
		m, err := f.Write(b)
		written += int64(m)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return written
}

func mustRandom(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// uploadFilesIn lists <data>/uploads (the blob store's partial uploads).
func uploadFilesIn(t *testing.T, data string) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(data, "uploads"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// expectNoSpace checks berth's full-disk answer: 507 with the spec's error
// body, code BLOB_UPLOAD_INVALID.
func expectNoSpace(t *testing.T, what string, err error) {
	t.Helper()
	var se *statusError
	if !errors.As(err, &se) {
		t.Fatalf("%s on a full disk: want 507, got %v", what, err)
	}
	if se.status != http.StatusInsufficientStorage || specCode(se.body) != "BLOB_UPLOAD_INVALID" {
		t.Fatalf("%s on a full disk: want 507 BLOB_UPLOAD_INVALID, got %d %s", what, se.status, se.body)
	}
	t.Logf("%s on a full disk: %d %s", what, se.status, bytes.TrimSpace(se.body))
}

// TestENOSPC runs berth on a 64 MiB tmpfs and fills it: an upload that does
// not fit gets 507 BLOB_UPLOAD_INVALID and leaves no partial data, what was
// stored stays readable, metadata writes on a full disk fail cleanly, and
// once space is freed pushes work again without a restart.
func TestENOSPC(t *testing.T) {
	data := mountTmpfs(t, "64m")
	srv := startServerOn(t, data)
	p := &pusher{c: httpClient(), base: func() string { return "http://" + srv.Addr }}

	first := makeTestImage("enospc/app", "v1", []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`),
		mustRandom(t, 1<<20), mustRandom(t, 2<<20))
	pushImage(t, p, first, false)

	// Leave about 8 MiB free, then push 16 MiB.
	filler := filepath.Join(data, "filler")
	free := freeBytes(t, data)
	fill(t, filler, free-8<<20)
	t.Logf("tmpfs: %d MiB free before the filler, %d MiB after", free>>20, freeBytes(t, data)>>20)
	big := mustRandom(t, 16<<20)
	bigD := digest.FromBytes(big)

	expectNoSpace(t, "monolithic upload", p.monolithic("enospc/app", big))
	if ids := uploadFilesIn(t, data); len(ids) != 0 {
		t.Fatalf("partial upload data left after a monolithic ENOSPC: %v", ids)
	}
	expectNoSpace(t, "chunked upload", p.chunked("enospc/app", big, 4<<20))
	if ids := uploadFilesIn(t, data); len(ids) != 0 {
		t.Fatalf("partial upload data left after a chunked ENOSPC: %v", ids)
	}
	if _, _, err := p.expect(http.StatusNotFound, "GET blob that did not fit", "GET", "/v2/enospc/app/blobs/"+bigD.String(), nil); err != nil {
		t.Fatal(err)
	}
	if err := p.verify(first); err != nil {
		t.Fatalf("stored image after ENOSPC: %v", err)
	}

	// A completely full disk: the metadata database's writes fail too.
	// Each answer is a success (SQLite had room in its files) or the
	// clear 507; never a 500, and berth keeps serving.
	small := makeTestImage("enospc/app", "small", []byte(`{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`), []byte("small layer"))
	for _, b := range small.blobs() {
		if err := p.monolithic(small.Repo, b); err != nil {
			t.Fatal(err)
		}
	}
	filler2 := filepath.Join(data, "filler2")
	fill(t, filler2, -1)
	t.Logf("tmpfs full: %d bytes free", freeBytes(t, data))
	for _, step := range []struct {
		what string
		err  error
	}{
		{"PUT manifest", p.putManifest(small.Repo, small.Tag, small.Manifest)},
		{"start upload", func() error {
			_, _, err := p.expect(http.StatusAccepted, "start upload", "POST", "/v2/enospc/app/blobs/uploads/", nil)
			return err
		}()},
		{"monolithic upload", p.monolithic("enospc/app", mustRandom(t, 1<<20))},
	} {
		var se *statusError
		switch {
		case step.err == nil:
			t.Logf("%s on a full disk: succeeded (room left in SQLite's files)", step.what)
		case errors.As(step.err, &se) && se.status == http.StatusInsufficientStorage:
			expectNoSpace(t, step.what, step.err)
		default:
			t.Fatalf("%s on a full disk: want success or 507, got %v\n%s", step.what, step.err, tailFile(srv.LogPath, 3000))
		}
	}
	if _, _, err := p.expect(http.StatusOK, "GET /v2/", "GET", "/v2/", nil); err != nil {
		t.Fatalf("berth stopped answering on a full disk: %v", err)
	}
	if err := p.verify(first); err != nil {
		t.Fatalf("stored image on a full disk: %v", err)
	}

	// Free the space: pushes work again, same process.
	for _, f := range []string{filler, filler2} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.monolithic("enospc/app", big); err != nil {
		t.Fatalf("monolithic push after freeing space: %v", err)
	}
	second := makeTestImage("enospc/app", "v2", []byte(`{"architecture":"amd64","os":"linux","created":"2026-01-01T00:00:00Z","rootfs":{"type":"layers","diff_ids":[]}}`),
		big, mustRandom(t, 3<<20))
	pushImage(t, p, second, true)
	if err := p.putManifest(small.Repo, small.Tag, small.Manifest); err != nil {
		t.Fatalf("manifest push after freeing space: %v", err)
	}
	for _, img := range []testImage{first, second, small} {
		if err := p.verify(img); err != nil {
			t.Fatalf("after freeing space: %v", err)
		}
	}
	if ids := uploadFilesIn(t, data); len(ids) != 0 {
		t.Fatalf("upload data left: %v", ids)
	}

	// The store is consistent: fsck (on the stopped server's data) finds
	// nothing to repair.
	srv.Stop(t)
	out, err := runBerth(t, "fsck", "--data", data)
	if err != nil || !strings.Contains(out, "0 problems") {
		t.Fatalf("fsck after ENOSPC: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(out))
}

// pushImage pushes img's blobs (monolithic, or chunked in 1 MiB PATCHes)
// and manifest, failing the test on any error.
func pushImage(t *testing.T, p *pusher, img testImage, chunked bool) {
	t.Helper()
	for _, b := range img.blobs() {
		var err error
		if chunked {
			err = p.chunked(img.Repo, b, 1<<20)
		} else {
			err = p.monolithic(img.Repo, b)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := p.putManifest(img.Repo, img.Tag, img.Manifest); err != nil {
		t.Fatal(err)
	}
}
