package fsck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/meta"
)

// exclusive runs a repair as berth fsck --repair does when it holds
// berth serve's lock, with a quarantine directory.
func (s *stores) exclusive(quarantine string) Report {
	s.t.Helper()
	r, err := New(s.meta, s.blobs, nil).Check(s.t.Context(),
		Options{Repair: true, Grace: time.Hour, Exclusive: true, Quarantine: quarantine})
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

// upload writes data to upload id's file and, if session, records the
// session with the writer's state (as the registry does after a PATCH).
func (s *stores) upload(id string, data []byte, session bool) {
	s.t.Helper()
	w, err := s.blobs.Upload(context.Background(), id, blob.UploadState{})
	if err != nil {
		s.t.Fatal(err)
	}
	w.Write(data)
	st, err := w.State()
	if err != nil {
		s.t.Fatal(err)
	}
	w.Close()
	if !session {
		return
	}
	state, _ := json.Marshal(st)
	now := time.Now()
	if err := s.meta.CreateUpload(context.Background(), meta.Upload{ID: id, Repo: "app", Offset: st.Size, State: state, Created: now, Updated: now}); err != nil {
		s.t.Fatal(err)
	}
}

// referencing is the manifest body s.push stores for d.
func referencing(d digest.Digest) []byte { return []byte(`{"m":"` + d.String() + `"}`) }

// TestRepairLeavesStoreClean builds each damaged state a crash or a disk
// can leave, on the real stores, and requires an exclusive repair (berth
// serve not running) to leave a store a following check finds clean,
// without touching an intact image.
func TestRepairLeavesStoreClean(t *testing.T) {
	crashed := meta.Claim{Token: "crashed", At: time.Now().Add(-time.Hour), Lease: meta.DefaultClaimLease}
	corruptBytes := []byte("referenced layer, flipped")
	tests := []struct {
		name   string
		break_ func(s *stores) digest.Digest
		want   []string // kinds found before the repair
		after  func(t *testing.T, s *stores, d digest.Digest, quarantine string)
	}{
		{name: "orphan file of a push killed before its link (recent)", break_: func(s *stores) digest.Digest {
			return s.commit([]byte("orphan"))
		}, want: []string{"orphan-file~"}, after: func(t *testing.T, s *stores, d digest.Digest, _ string) {
			if _, err := s.blobs.Stat(t.Context(), d); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("orphan file still there: %v", err)
			}
		}},
		{name: "missing bytes of a linked blob", break_: func(s *stores) digest.Digest {
			d := s.push("app", []byte("linked only"), false)
			os.Remove(s.path(d))
			return d
		}, want: []string{"dangling-link~", "missing-bytes~"}, after: func(t *testing.T, s *stores, d digest.Digest, _ string) {
			if _, err := s.meta.BlobLink(t.Context(), "app", d); !errors.Is(err, meta.ErrBlobNotFound) {
				t.Errorf("link still there: %v", err)
			}
		}},
		{name: "dangling link a manifest references", break_: func(s *stores) digest.Digest {
			d := s.push("app", []byte("referenced layer"), true)
			os.Remove(s.path(d))
			return d
		}, want: []string{"dangling-link", "missing-blob", "missing-bytes"}, after: func(t *testing.T, s *stores, d digest.Digest, q string) {
			checkQuarantinedManifest(t, s, d, q)
		}},
		{name: "gc tombstone left by a crash, bytes still there", break_: func(s *stores) digest.Digest {
			d := s.commit([]byte("garbage"))
			if got, err := s.meta.ClaimBlobs(context.Background(), []meta.BlobRecord{{Digest: d, Size: 7}}, time.Now(), crashed); len(got) != 1 || err != nil {
				s.t.Fatal(got, err)
			}
			return d
		}, want: []string{"tombstone~"}, after: func(t *testing.T, s *stores, d digest.Digest, _ string) {
			if _, err := s.meta.BlobRecord(t.Context(), d); !errors.Is(err, meta.ErrBlobNotFound) {
				t.Errorf("tombstone still there: %v", err)
			}
		}},
		{name: "gc tombstone left by a crash after the bytes' deletion", break_: func(s *stores) digest.Digest {
			d := s.commit([]byte("garbage"))
			if got, err := s.meta.ClaimBlobs(context.Background(), []meta.BlobRecord{{Digest: d, Size: 7}}, time.Now(), crashed); len(got) != 1 || err != nil {
				s.t.Fatal(got, err)
			}
			os.Remove(s.path(d))
			return d
		}, want: []string{"tombstone~"}},
		{name: "half-written upload whose session is gone", break_: func(s *stores) digest.Digest {
			s.upload("0123456789abcdef0123456789abcdef", []byte("half a lay"), false)
			return ""
		}, want: []string{"upload-data~"}, after: func(t *testing.T, s *stores, _ digest.Digest, _ string) {
			var ids []string
			s.blobs.WalkUploads(t.Context(), func(id string, _ time.Time) error { ids = append(ids, id); return nil })
			if len(ids) != 0 {
				t.Errorf("upload data left: %q", ids)
			}
		}},
		{name: "half-written upload of a live session is resumable, not damage", break_: func(s *stores) digest.Digest {
			s.upload("fedcba9876543210fedcba9876543210", []byte("half a lay"), true)
			return ""
		}, want: nil, after: func(t *testing.T, s *stores, _ digest.Digest, _ string) {
			u, err := s.meta.GetUpload(t.Context(), "app", "fedcba9876543210fedcba9876543210")
			if err != nil {
				t.Fatalf("session removed: %v", err)
			}
			var st blob.UploadState
			json.Unmarshal(u.State, &st)
			w, err := s.blobs.Upload(t.Context(), u.ID, st)
			if err != nil {
				t.Fatalf("upload no longer resumable: %v", err)
			}
			w.Write([]byte("er"))
			if _, err := w.Commit(t.Context(), digest.FromBytes([]byte("half a layer")), 12); err != nil {
				t.Fatalf("resumed upload: %v", err)
			}
		}},
		{name: "corrupt referenced blob", break_: func(s *stores) digest.Digest {
			d := s.push("app", []byte("referenced layer, intact"), true)
			os.WriteFile(s.path(d), corruptBytes, 0o644)
			return d
		}, want: []string{"corrupt"}, after: func(t *testing.T, s *stores, d digest.Digest, q string) {
			b, err := os.ReadFile(filepath.Join(q, "blobs", "sha256", d.Encoded()))
			if err != nil || !bytes.Equal(b, corruptBytes) {
				t.Errorf("quarantined bytes = %q, %v; want the corrupt file", b, err)
			}
			checkQuarantinedManifest(t, s, d, q)
			// Pushing the image again heals the store.
			s.push("app", []byte("referenced layer, intact"), true)
			if r := s.check(false); len(r.Problems) != 0 {
				t.Errorf("after a re-push: %q", kinds(r))
			}
		}},
	}
	for _, backend := range backends {
		for _, tc := range tests {
			t.Run(backend+"/"+tc.name, func(t *testing.T) {
				s := newStoresOn(t, backend)
				intact := s.push("base", []byte("an intact image"), true)
				d := tc.break_(s)
				if got := kinds(s.check(false)); !slices.Equal(got, tc.want) {
					t.Fatalf("check = %q, want %q", got, tc.want)
				}
				q := filepath.Join(t.TempDir(), "quarantine")
				r := s.exclusive(q)
				for _, p := range r.Problems {
					if !p.Repaired {
						t.Errorf("not repaired: %s", p)
					}
				}
				if r := s.check(false); len(r.Problems) != 0 || r.Unrepaired() != 0 {
					t.Fatalf("after repair: %q", kinds(r))
				}
				if tc.after != nil {
					tc.after(t, s, d, q)
				}
				if _, err := s.blobs.Stat(t.Context(), intact); err != nil {
					t.Errorf("intact blob: %v", err)
				}
				if _, err := s.meta.GetManifest(t.Context(), "base", digest.FromBytes(referencing(intact))); err != nil {
					t.Errorf("intact manifest: %v", err)
				}
			})
		}
	}
}

// checkQuarantinedManifest checks that the manifest referencing d was
// saved, byte for byte, and removed.
func checkQuarantinedManifest(t *testing.T, s *stores, d digest.Digest, q string) {
	t.Helper()
	body := referencing(d)
	md := digest.FromBytes(body)
	if _, err := s.meta.GetManifest(t.Context(), "app", md); !errors.Is(err, meta.ErrManifestNotFound) {
		t.Errorf("manifest still there: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(q, "manifests", "app", "sha256-"+md.Encoded()+".json"))
	if err != nil {
		t.Fatalf("quarantined manifest: %v", err)
	}
	var saved quarantined
	if err := json.Unmarshal(b, &saved); err != nil || saved.Repo != "app" || saved.Digest != md || !bytes.Equal(saved.Content, body) {
		t.Errorf("quarantined manifest = %+v, %v", saved, err)
	}
}

// TestCrashLeftoversArePending: what a kill -9 of serve and gc leaves is
// pending collection, not damage, with or without a repair while serve may
// run, which leaves the recent ones and says why.
func TestCrashLeftoversArePending(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { crashLeftoversArePending(t, backend) })
	}
}

func crashLeftoversArePending(t *testing.T, backend string) {
	s := newStoresOn(t, backend)
	s.push("base", []byte("an intact image"), true)
	orphan := s.commit([]byte("orphan of a killed push"))
	s.upload("0123456789abcdef0123456789abcdef", []byte("half"), false)
	g := s.commit([]byte("garbage"))
	crashed := meta.Claim{Token: "crashed", At: time.Now().Add(-time.Hour), Lease: meta.DefaultClaimLease}
	if got, err := s.meta.ClaimBlobs(context.Background(), []meta.BlobRecord{{Digest: g, Size: 7}}, time.Now(), crashed); len(got) != 1 || err != nil {
		t.Fatal(got, err)
	}
	r := s.check(false)
	if got, want := kinds(r), []string{"orphan-file~", "tombstone~", "upload-data~"}; !slices.Equal(got, want) || r.Unrepaired() != 0 {
		t.Fatalf("check = %q (%d unrepaired), want %q and none", got, r.Unrepaired(), want)
	}
	r = s.check(true)
	if got, want := kinds(r), []string{"orphan-file~", "tombstone+", "upload-data~"}; !slices.Equal(got, want) || r.Unrepaired() != 0 {
		t.Fatalf("repair = %q (%d unrepaired), want %q and none", got, r.Unrepaired(), want)
	}
	for _, p := range r.Problems {
		if p.Pending && !p.Repaired && !strings.Contains(p.Detail, "berth serve may be running") {
			t.Errorf("%s: does not say why it is left alone", p)
		}
		if p.Pending && !strings.Contains(p.String(), "pending collection") && !p.Repaired {
			t.Errorf("%q does not say pending collection", p.String())
		}
	}
	if _, err := s.blobs.Stat(t.Context(), orphan); err != nil {
		t.Errorf("a recent orphan was removed while serve may run: %v", err)
	}
}
