package fs_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	iofs "io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/blob/blobtest"
	"github.com/berth-dev/berth/blob/fs"
)

func TestStore(t *testing.T) {
	blobtest.RunFactory(t, blobtest.Factory{
		New: func(t *testing.T) blob.Store {
			return newStore(t, t.TempDir())
		},
		Reopen: func(t *testing.T, s blob.Store) blob.Store {
			return newStore(t, s.(*fs.Store).Root())
		},
		Leftovers: func(t *testing.T, s blob.Store) []string {
			return leftovers(t, s.(*fs.Store).Root())
		},
	})
}

func TestOpenIsFile(t *testing.T) {
	s := newStore(t, t.TempDir())
	w, err := s.Upload(t.Context(), "u", blob.UploadState{})
	if err != nil {
		t.Fatal(err)
	}
	d := digest.NewDigestFromEncoded(blob.SHA256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
	if _, err := w.Commit(t.Context(), d, 0); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, ok := rc.(*os.File); !ok {
		t.Errorf("Open returned %T, want *os.File (for sendfile)", rc)
	}
}

func newStore(t testing.TB, root string) *fs.Store {
	t.Helper()
	s, err := fs.New(root, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		t.Fatalf("New(%s): %v", root, err)
	}
	return s
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// leftovers lists every file under root that is not a committed blob at its
// place: upload data, and anything else.
func leftovers(t *testing.T, root string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(root, func(path string, e iofs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) == 4 && parts[0] == "blobs" && e.Type().IsRegular() {
			d := digest.NewDigestFromEncoded(digest.Algorithm(parts[1]), parts[3])
			if blob.ValidateDigest(d) == nil && parts[3][:2] == parts[2] {
				return nil
			}
		}
		names = append(names, rel)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return names
}

func BenchmarkWriteCommit(b *testing.B) {
	const size = 32 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	sum := sha256.Sum256(data)
	d := digest.NewDigestFromBytes(blob.SHA256, sum[:])
	s := newStore(b, b.TempDir())
	ctx := b.Context()
	chunk := make([]byte, 32<<10) // io.Copy's buffer size

	b.SetBytes(size)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w, err := s.Upload(ctx, "bench-"+strconv.Itoa(i), blob.UploadState{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{bytes.NewReader(data)}, chunk); err != nil {
			b.Fatal(err)
		}
		if _, err := w.Commit(ctx, d, size); err != nil {
			b.Fatal(err)
		}
		if err := s.Delete(ctx, d); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestRepushHealsDamagedBlob: a stored file whose size is not its
// content's (truncated, or grown by a bad disk write) is replaced by the
// next verified commit of the same digest, instead of being kept as a
// duplicate.
func TestRepushHealsDamagedBlob(t *testing.T) {
	for name, damage := range map[string]func([]byte) []byte{
		"truncated": func(b []byte) []byte { return b[:len(b)/2] },
		"grown":     func(b []byte) []byte { return append(append([]byte{}, b...), "junk"...) },
	} {
		t.Run(name, func(t *testing.T) {
			s := newStore(t, t.TempDir())
			data := bytes.Repeat([]byte("berth "), 1000)
			d := digest.FromBytes(data)
			commit := func(id string) {
				t.Helper()
				w, err := s.Upload(t.Context(), id, blob.UploadState{})
				if err != nil {
					t.Fatal(err)
				}
				w.Write(data)
				if _, err := w.Commit(t.Context(), d, int64(len(data))); err != nil {
					t.Fatal(err)
				}
			}
			commit("0123456789abcdef0123456789abcdef")
			path := filepath.Join(s.Root(), "blobs", "sha256", d.Encoded()[:2], d.Encoded())
			if err := os.WriteFile(path, damage(data), 0o644); err != nil {
				t.Fatal(err)
			}
			commit("fedcba9876543210fedcba9876543210")
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("after a re-push the file holds %d bytes (%v), want the %d verified ones", len(got), err, len(data))
			}
			if left := leftovers(t, s.Root()); len(left) != 0 {
				t.Errorf("leftovers: %v", left)
			}
		})
	}
}
