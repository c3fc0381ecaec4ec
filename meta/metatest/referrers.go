package metatest

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

func testReferrers(t *testing.T, s meta.Store) {
	ctx := t.Context()
	ds := link(t, s, "app", "config", "sig", "sbom")
	link(t, s, "other", "config")

	subject := image("app", "subject", ds[0])
	put(t, s, subject, "latest")

	referrer := func(repo, name, artifactType string, sub digest.Digest, blob digest.Digest, ann map[string]string) *meta.Manifest {
		var layers []digest.Digest
		if blob != "" {
			layers = append(layers, blob)
		}
		m := image(repo, name, "", layers...)
		m.ArtifactType = artifactType
		m.Subject = sub
		m.Annotations = ann
		return m
	}
	sig1 := referrer("app", "sig1", "application/vnd.example.sig", subject.Digest, ds[1], map[string]string{"org.opencontainers.image.created": "2024-01-01T00:00:00Z"})
	sig2 := referrer("app", "sig2", "application/vnd.example.sig", subject.Digest, ds[1], nil)
	sbom := referrer("app", "sbom", "application/spdx+json", subject.Digest, ds[2], map[string]string{"a": "b"})
	// A referrer of the referrer, one of another subject, one in another
	// repository, and a plain image: none of them listed.
	sigOfSbom := referrer("app", "sig-of-sbom", "application/vnd.example.sig", sbom.Digest, ds[1], nil)
	otherSubject := referrer("app", "other-subject", "application/vnd.example.sig", digest.FromString("x"), ds[1], nil)
	otherRepo := referrer("other", "other-repo", "application/vnd.example.sig", subject.Digest, "", nil)
	for _, m := range []*meta.Manifest{sig1, sig2, sbom, sigOfSbom, otherSubject, otherRepo, image("app", "plain", ds[0])} {
		put(t, s, m)
	}

	descriptor := func(m *meta.Manifest) meta.Descriptor {
		return meta.Descriptor{
			MediaType:    m.MediaType,
			Digest:       m.Digest,
			Size:         int64(len(m.Content)),
			ArtifactType: m.ArtifactType,
			Annotations:  m.Annotations,
		}
	}
	byDigest := func(ms ...*meta.Manifest) []meta.Descriptor {
		var out []meta.Descriptor
		for _, m := range ms {
			out = append(out, descriptor(m))
		}
		slices.SortFunc(out, func(a, b meta.Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
		return out
	}
	check := func(what string, got []meta.Descriptor, err error, want []meta.Descriptor) {
		t.Helper()
		noErr(t, err, what)
		if got == nil {
			t.Errorf("%s = nil, want a non-nil slice", what)
		}
		equal := slices.EqualFunc(got, want, func(a, b meta.Descriptor) bool {
			return a.MediaType == b.MediaType && a.Digest == b.Digest && a.Size == b.Size &&
				a.ArtifactType == b.ArtifactType && maps.Equal(a.Annotations, b.Annotations)
		})
		if !equal {
			t.Errorf("%s =\n%+v\nwant\n%+v", what, got, want)
		}
	}

	got, err := s.Referrers(ctx, "app", subject.Digest, "", "", -1)
	check("Referrers", got, err, byDigest(sig1, sig2, sbom))
	got, err = s.Referrers(ctx, "app", subject.Digest, "application/vnd.example.sig", "", -1)
	check("Referrers(sig)", got, err, byDigest(sig1, sig2))
	got, err = s.Referrers(ctx, "app", subject.Digest, "application/spdx+json", "", -1)
	check("Referrers(spdx)", got, err, byDigest(sbom))
	got, err = s.Referrers(ctx, "app", subject.Digest, "application/unknown", "", -1)
	check("Referrers(unknown type)", got, err, []meta.Descriptor{})
	got, err = s.Referrers(ctx, "app", sbom.Digest, "", "", -1)
	check("Referrers(sbom)", got, err, byDigest(sigOfSbom))
	got, err = s.Referrers(ctx, "other", subject.Digest, "", "", -1)
	check("Referrers(other)", got, err, byDigest(otherRepo))

	// Pages: at most n, strictly after a digest, in digest order.
	all := byDigest(sig1, sig2, sbom)
	got, err = s.Referrers(ctx, "app", subject.Digest, "", "", 2)
	check("Referrers(n=2)", got, err, all[:2])
	got, err = s.Referrers(ctx, "app", subject.Digest, "", all[1].Digest, 2)
	check("Referrers(after second, n=2)", got, err, all[2:])
	got, err = s.Referrers(ctx, "app", subject.Digest, "", all[2].Digest, 5)
	check("Referrers(after last)", got, err, []meta.Descriptor{})
	got, err = s.Referrers(ctx, "app", subject.Digest, "", "", 0)
	check("Referrers(n=0)", got, err, []meta.Descriptor{})
	sigs := byDigest(sig1, sig2)
	got, err = s.Referrers(ctx, "app", subject.Digest, "application/vnd.example.sig", sigs[0].Digest, 10)
	check("Referrers(sig, after first)", got, err, sigs[1:])

	// Deleting a referrer removes it from the list; deleting the subject
	// does not remove its referrers.
	noErr(t, s.DeleteManifest(ctx, "app", sig1.Digest), "DeleteManifest(sig1)")
	noErr(t, s.DeleteManifest(ctx, "app", subject.Digest), "DeleteManifest(subject)")
	got, err = s.Referrers(ctx, "app", subject.Digest, "", "", -1)
	check("Referrers after deletes", got, err, byDigest(sig2, sbom))
}

func testReferrersEmpty(t *testing.T, s meta.Store) {
	ctx := t.Context()
	ds := link(t, s, "app", "config")
	m := image("app", "one", ds[0])
	put(t, s, m)
	for _, c := range []struct {
		repo string
		d    digest.Digest
	}{
		{"app", m.Digest},
		{"app", digest.FromString("nope")},
		{"nope", m.Digest},
	} {
		got, err := s.Referrers(ctx, c.repo, c.d, "", "", -1)
		noErr(t, err, "Referrers")
		if got == nil || len(got) != 0 {
			t.Errorf("Referrers(%s, %s) = %#v, want an empty non-nil slice", c.repo, c.d, got)
		}
	}
}
