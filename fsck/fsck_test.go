package fsck

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/blob/fs"
	"github.com/berth-dev/berth/internal/testenv/pgtest"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/meta/metatest"
	"github.com/berth-dev/berth/meta/postgres"
	"github.com/berth-dev/berth/meta/sqlite"
)

var (
	_ Meta  = (*sqlite.Store)(nil)
	_ Blobs = (*fs.Store)(nil)
)

type stores struct {
	t     testing.TB
	blobs *fs.Store
	meta  metatest.Backend
	n     int
}

// backends are the metadata stores the damage and repair tests run on.
var backends = []string{"sqlite", "postgres"}

func TestMain(m *testing.M) { pgtest.Main(m) }

func newStores(t testing.TB) *stores { return newStoresOn(t, "sqlite") }

// newStoresOn makes filesystem blobs and the named metadata backend.
func newStoresOn(t testing.TB, backend string) *stores {
	t.Helper()
	blobs, md := testutil.Stores(t, t.TempDir(), nil)
	s := &stores{t: t, blobs: blobs, meta: md}
	if backend == "postgres" {
		pg, err := postgres.Open(context.Background(), pgtest.DSN(t), postgres.Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pg.Close() })
		s.meta = pg
	}
	return s
}

// commit stores data as a blob file (no row).
func (s *stores) commit(data []byte) digest.Digest {
	s.t.Helper()
	s.n++
	id := strings.Repeat("0", 30) + string(rune('a'+s.n/10)) + string(rune('0'+s.n%10))
	w, err := s.blobs.Upload(context.Background(), id, blob.UploadState{})
	if err != nil {
		s.t.Fatal(err)
	}
	w.Write(data)
	d := digest.FromBytes(data)
	if _, err := w.Commit(context.Background(), d, int64(len(data))); err != nil {
		s.t.Fatal(err)
	}
	return d
}

// push stores data as a blob linked in repo and, if referenced, a manifest
// referencing it.
func (s *stores) push(repo string, data []byte, referenced bool) digest.Digest {
	s.t.Helper()
	d := s.commit(data)
	if err := s.meta.LinkBlob(context.Background(), repo, d, int64(len(data))); err != nil {
		s.t.Fatal(err)
	}
	if referenced {
		body := []byte(`{"m":"` + d.String() + `"}`)
		m := &meta.Manifest{Repo: repo, Digest: digest.FromBytes(body), MediaType: "application/vnd.oci.image.manifest.v1+json",
			Content: body, Refs: []meta.Ref{{Digest: d, Kind: meta.RefBlob, MediaType: "x", Size: int64(len(data))}}}
		if err := s.meta.PutManifest(context.Background(), m, "t"+d.Encoded()[:8]); err != nil {
			s.t.Fatal(err)
		}
	}
	return d
}

func (s *stores) path(d digest.Digest) string {
	return filepath.Join(s.blobs.Root(), "blobs", string(d.Algorithm()), d.Encoded()[:2], d.Encoded())
}

func (s *stores) check(repair bool) Report {
	s.t.Helper()
	r, err := New(s.meta, s.blobs, nil).Check(s.t.Context(), Options{Repair: repair, Grace: time.Hour})
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

func kinds(r Report) []string {
	var out []string
	for _, p := range r.Problems {
		k := string(p.Kind)
		switch {
		case p.Repaired:
			k += "+"
		case p.Pending:
			k += "~" // pending collection: not counted
		}
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestCheck(t *testing.T) {
	old := time.Now().Add(-2 * time.Hour)
	tests := []struct {
		name   string
		break_ func(s *stores)
		want   []string // kinds found without repair
		repair []string // kinds after --repair ("+" = repaired)
	}{
		{name: "clean", break_: func(s *stores) {
			s.push("app", []byte("layer"), true)
			s.push("app", []byte("linked only"), false)
		}},
		{name: "flipped byte in a referenced blob", break_: func(s *stores) {
			d := s.push("app", []byte("referenced layer"), true)
			b, _ := os.ReadFile(s.path(d))
			b[3] ^= 0xff
			os.WriteFile(s.path(d), b, 0o644)
		}, want: []string{"corrupt"}, repair: []string{"corrupt"}},
		{name: "truncated referenced blob", break_: func(s *stores) {
			d := s.push("app", []byte("referenced layer"), true)
			os.Truncate(s.path(d), 4)
		}, want: []string{"corrupt"}, repair: []string{"corrupt"}},
		{name: "corrupt unreferenced orphan", break_: func(s *stores) {
			d := s.commit([]byte("orphan"))
			os.WriteFile(s.path(d), []byte("0rphan"), 0o644)
			os.Chtimes(s.path(d), old, old)
		}, want: []string{"corrupt"}, repair: []string{"corrupt+"}},
		{name: "deleted referenced blob file", break_: func(s *stores) {
			d := s.push("app", []byte("referenced layer"), true)
			os.Remove(s.path(d))
		}, want: []string{"dangling-link", "missing-blob", "missing-bytes"},
			repair: []string{"dangling-link", "missing-blob", "missing-bytes"}},
		{name: "deleted linked, unreferenced blob file", break_: func(s *stores) {
			d := s.push("app", []byte("linked only"), false)
			os.Remove(s.path(d))
		}, want: []string{"dangling-link~", "missing-bytes~"}, repair: []string{"dangling-link+", "missing-bytes+"}},
		{name: "old orphan file", break_: func(s *stores) {
			d := s.commit([]byte("orphan"))
			os.Chtimes(s.path(d), old, old)
		}, want: []string{"orphan-file~"}, repair: []string{"orphan-file+"}},
		{name: "recent orphan file is left alone", break_: func(s *stores) {
			s.commit([]byte("orphan"))
		}, want: []string{"orphan-file~"}, repair: []string{"orphan-file~"}},
		{name: "interrupted gc deletion", break_: func(s *stores) {
			d := s.commit([]byte("garbage"))
			crashed := meta.Claim{Token: "crashed", At: time.Now().Add(-time.Hour), Lease: meta.DefaultClaimLease}
			if got, err := s.meta.ClaimBlobs(context.Background(), []meta.BlobRecord{{Digest: d, Size: 7}}, time.Now(), crashed); len(got) != 1 || err != nil {
				s.t.Fatal(got, err)
			}
		}, want: []string{"tombstone~"}, repair: []string{"tombstone+"}},
		{name: "gc deletion in progress is left to gc", break_: func(s *stores) {
			d := s.commit([]byte("garbage"))
			running := meta.Claim{Token: "running", At: time.Now(), Lease: time.Hour}
			if got, err := s.meta.ClaimBlobs(context.Background(), []meta.BlobRecord{{Digest: d, Size: 7}}, time.Now(), running); len(got) != 1 || err != nil {
				s.t.Fatal(got, err)
			}
			s.t.Cleanup(func() {
				if _, err := s.blobs.Stat(context.Background(), d); err != nil {
					s.t.Errorf("fsck deleted the bytes of a blob gc holds: %v", err)
				}
			})
		}, want: nil, repair: nil},
	}
	for _, backend := range backends {
		for _, tc := range tests {
			t.Run(backend+"/"+tc.name, func(t *testing.T) {
				s := newStoresOn(t, backend)
				s.push("base", []byte("an intact image"), true)
				tc.break_(s)
				r := s.check(false)
				if got := kinds(r); !slices.Equal(got, tc.want) {
					t.Fatalf("check = %q, want %q", got, tc.want)
				}
				if got, want := r.Unrepaired(), countDamage(tc.want); got != want {
					t.Errorf("Unrepaired() = %d, want %d (pending collection is not damage)", got, want)
				}
				if got := kinds(s.check(true)); !slices.Equal(got, tc.repair) {
					t.Fatalf("repair = %q, want %q", got, tc.repair)
				}
				// After a repair only the unrepairable remain.
				var left []string
				for _, k := range tc.repair {
					if !strings.HasSuffix(k, "+") {
						left = append(left, k)
					}
				}
				if got := kinds(s.check(false)); !slices.Equal(got, left) {
					t.Errorf("after repair = %q, want %q", got, left)
				}
				// The intact image is never touched.
				d := digest.FromBytes([]byte("an intact image"))
				if _, err := s.blobs.Stat(t.Context(), d); err != nil {
					t.Errorf("intact blob: %v", err)
				}
			})
		}
	}
}

// countDamage counts the kinds that are neither repaired nor pending.
func countDamage(ks []string) int {
	n := 0
	for _, k := range ks {
		if !strings.HasSuffix(k, "+") && !strings.HasSuffix(k, "~") {
			n++
		}
	}
	return n
}
