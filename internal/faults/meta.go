package faults

import (
	"context"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// Meta wraps a metadata store so that in decides which of its calls fail.
// A failed call does not reach the inner store: it is as if the transaction
// was rolled back. Methods added to meta.Store later pass through unchanged
// until they get a wrapper here.
func Meta(s meta.Store, in *Injector) meta.Store { return &metaStore{Store: s, s: s, in: in} }

type metaStore struct {
	meta.Store
	s  meta.Store
	in *Injector
}

func (m *metaStore) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	if err := m.in.fail("meta.LinkBlob"); err != nil {
		return err
	}
	return m.s.LinkBlob(ctx, repo, d, size)
}

func (m *metaStore) BlobLink(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	if err := m.in.fail("meta.BlobLink"); err != nil {
		return 0, err
	}
	return m.s.BlobLink(ctx, repo, d)
}

func (m *metaStore) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	if err := m.in.fail("meta.UnlinkBlob"); err != nil {
		return err
	}
	return m.s.UnlinkBlob(ctx, repo, d)
}

func (m *metaStore) BlobKnown(ctx context.Context, d digest.Digest) (int64, error) {
	if err := m.in.fail("meta.BlobKnown"); err != nil {
		return 0, err
	}
	return m.s.BlobKnown(ctx, d)
}

func (m *metaStore) PutManifest(ctx context.Context, mf *meta.Manifest, tags ...string) error {
	if err := m.in.fail("meta.PutManifest"); err != nil {
		return err
	}
	return m.s.PutManifest(ctx, mf, tags...)
}

func (m *metaStore) GetManifest(ctx context.Context, repo string, d digest.Digest) (*meta.Manifest, error) {
	if err := m.in.fail("meta.GetManifest"); err != nil {
		return nil, err
	}
	return m.s.GetManifest(ctx, repo, d)
}

func (m *metaStore) ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	if err := m.in.fail("meta.ResolveTag"); err != nil {
		return "", err
	}
	return m.s.ResolveTag(ctx, repo, tag)
}

func (m *metaStore) ManifestBody(ctx context.Context, repo string, d digest.Digest) (meta.ManifestBody, error) {
	if err := m.in.fail("meta.ManifestBody"); err != nil {
		return meta.ManifestBody{}, err
	}
	return m.s.ManifestBody(ctx, repo, d)
}

func (m *metaStore) TagBody(ctx context.Context, repo, tag string) (meta.ManifestBody, error) {
	if err := m.in.fail("meta.TagBody"); err != nil {
		return meta.ManifestBody{}, err
	}
	return m.s.TagBody(ctx, repo, tag)
}

func (m *metaStore) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	if err := m.in.fail("meta.DeleteManifest"); err != nil {
		return err
	}
	return m.s.DeleteManifest(ctx, repo, d)
}

func (m *metaStore) DeleteTag(ctx context.Context, repo, tag string) error {
	if err := m.in.fail("meta.DeleteTag"); err != nil {
		return err
	}
	return m.s.DeleteTag(ctx, repo, tag)
}

func (m *metaStore) Tags(ctx context.Context, repo, last string, n int) ([]string, error) {
	if err := m.in.fail("meta.Tags"); err != nil {
		return nil, err
	}
	return m.s.Tags(ctx, repo, last, n)
}

func (m *metaStore) Repositories(ctx context.Context, last string, n int) ([]string, error) {
	if err := m.in.fail("meta.Repositories"); err != nil {
		return nil, err
	}
	return m.s.Repositories(ctx, last, n)
}

func (m *metaStore) Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string, after digest.Digest, n int) ([]meta.Descriptor, error) {
	if err := m.in.fail("meta.Referrers"); err != nil {
		return nil, err
	}
	return m.s.Referrers(ctx, repo, d, artifactType, after, n)
}

func (m *metaStore) CreateUpload(ctx context.Context, u meta.Upload) error {
	if err := m.in.fail("meta.CreateUpload"); err != nil {
		return err
	}
	return m.s.CreateUpload(ctx, u)
}

func (m *metaStore) GetUpload(ctx context.Context, repo, id string) (meta.Upload, error) {
	if err := m.in.fail("meta.GetUpload"); err != nil {
		return meta.Upload{}, err
	}
	return m.s.GetUpload(ctx, repo, id)
}

func (m *metaStore) UpdateUpload(ctx context.Context, id string, prevOffset, offset int64, state []byte) error {
	if err := m.in.fail("meta.UpdateUpload"); err != nil {
		return err
	}
	return m.s.UpdateUpload(ctx, id, prevOffset, offset, state)
}

func (m *metaStore) FinishUpload(ctx context.Context, id, repo string, d digest.Digest, size int64) error {
	if err := m.in.fail("meta.FinishUpload"); err != nil {
		return err
	}
	return m.s.FinishUpload(ctx, id, repo, d, size)
}

func (m *metaStore) DeleteUpload(ctx context.Context, id string) error {
	if err := m.in.fail("meta.DeleteUpload"); err != nil {
		return err
	}
	return m.s.DeleteUpload(ctx, id)
}

func (m *metaStore) Close() error { return m.s.Close() }
