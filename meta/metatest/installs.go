package metatest

import (
	"context"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// InstallStore is the part of a backend that Flatpak install counting
// (package flatpak's InstallCounter) and the catalogue use.
//
//   - AddInstalls adds counts (rows with the same day, repo, ref, version
//     and kind add up); a kind other than install or update is an error
//     and nothing is added.
//   - InstallTotals sums, from day sinceDay on, per repo, ref, version
//     and kind, in that order.
//   - BlobUsers returns the manifests of repo that reference blob d as
//     config or layer (RefBlob), newest push first, with Digest, Config,
//     ArtifactType, Annotations and Labels.
type InstallStore interface {
	meta.Store
	AddInstalls(ctx context.Context, counts []meta.InstallCount) error
	InstallTotals(ctx context.Context, sinceDay int64) ([]meta.InstallTotal, error)
	BlobUsers(ctx context.Context, repo string, d digest.Digest, n int) ([]meta.Manifest, error)
}

// RunInstalls runs the InstallStore contract.
func RunInstalls(t *testing.T, newStore func(t *testing.T) InstallStore) {
	t.Helper()
	t.Run("Counts", func(t *testing.T) { testInstallCounts(t, newStore(t)) })
	t.Run("BlobUsers", func(t *testing.T) { testBlobUsers(t, newStore(t)) })
}

func testInstallCounts(t *testing.T, s InstallStore) {
	ctx := t.Context()
	v1, v2 := digest.FromString("v1"), digest.FromString("v2")
	const ref = "app/org.example.App/x86_64/stable"
	noErr(t, s.AddInstalls(ctx, []meta.InstallCount{
		{Day: 100, Repo: "app", Ref: ref, Version: v1, Kind: meta.KindInstall, Count: 2},
		{Day: 101, Repo: "app", Ref: ref, Version: v1, Kind: meta.KindInstall, Count: 1},
		{Day: 101, Repo: "app", Ref: ref, Version: v2, Kind: meta.KindUpdate, Count: 1},
	}), "AddInstalls")
	noErr(t, s.AddInstalls(ctx, []meta.InstallCount{
		{Day: 101, Repo: "app", Ref: ref, Version: v1, Kind: meta.KindInstall, Count: 4},
	}), "AddInstalls again")
	if err := s.AddInstalls(ctx, []meta.InstallCount{
		{Day: 101, Repo: "app", Ref: ref, Version: v2, Kind: meta.KindUpdate, Count: 100},
		{Day: 101, Repo: "app", Ref: ref, Version: v2, Kind: "download", Count: 1},
	}); err == nil {
		t.Error("AddInstalls with an unknown kind: no error")
	}
	got, err := s.InstallTotals(ctx, 0)
	noErr(t, err, "InstallTotals")
	want := map[[2]string]int64{{v1.String(), meta.KindInstall}: 7, {v2.String(), meta.KindUpdate}: 1}
	if len(got) != len(want) {
		t.Fatalf("InstallTotals = %+v, want %v (the refused batch added nothing)", got, want)
	}
	for _, g := range got {
		if g.Repo != "app" || g.Ref != ref || want[[2]string{g.Version.String(), g.Kind}] != g.Count {
			t.Errorf("total %+v, want %v", g, want)
		}
	}
	got, _ = s.InstallTotals(ctx, 101)
	for _, g := range got {
		if g.Version == v1 && g.Count != 5 {
			t.Errorf("totals from day 101: v1 installs %d, want 5", g.Count)
		}
	}
	if got, _ := s.InstallTotals(ctx, 102); len(got) != 0 {
		t.Errorf("totals from day 102 = %+v, want none", got)
	}
}

func testBlobUsers(t *testing.T, s InstallStore) {
	ctx := t.Context()
	ds := link(t, s, "app", "config", "layer", "other")
	m := image("app", "one", ds[0], ds[1])
	m.Labels = map[string]string{"org.flatpak.ref": "app/org.example.App/x86_64/stable"}
	m.Annotations = map[string]string{"a": "b"}
	put(t, s, m)
	m2 := image("app", "two", ds[2], ds[1])
	put(t, s, m2)
	got, err := s.BlobUsers(ctx, "app", ds[1], 10)
	noErr(t, err, "BlobUsers")
	if len(got) != 2 || got[0].Digest != m2.Digest {
		t.Fatalf("BlobUsers(layer) = %+v, want both manifests, the newer (two) first", got)
	}
	for _, g := range got {
		if g.Digest == m.Digest && (g.Config != ds[0] || g.Labels["org.flatpak.ref"] == "" || g.Annotations["a"] != "b") {
			t.Errorf("BlobUsers facts = %+v", g)
		}
	}
	if got, _ := s.BlobUsers(ctx, "app", ds[0], 10); len(got) != 1 || got[0].Digest != m.Digest {
		t.Errorf("BlobUsers(config) = %+v", got)
	}
	if got, _ := s.BlobUsers(ctx, "other", ds[1], 10); len(got) != 0 {
		t.Errorf("BlobUsers in another repository = %+v", got)
	}
	if got, _ := s.BlobUsers(ctx, "app", ds[1], 1); len(got) != 1 {
		t.Errorf("BlobUsers with n=1 = %d", len(got))
	}
}
