package registry

import (
	"errors"
	"fmt"
	"net/http"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/oci"
)

// referrers serves GET /v2/<name>/referrers/<digest>[?artifactType=]: always
// an image index, empty when nothing refers to the digest.
func (reg *Registry) referrers(w http.ResponseWriter, r *http.Request, name, ref string) error {
	d, err := parseDigest(ref)
	if err != nil {
		return err
	}
	at := r.URL.Query().Get("artifactType")
	list, err := reg.meta.Referrers(r.Context(), name, d, at)
	if errors.Is(err, meta.ErrRepoNotFound) {
		list, err = nil, nil // no repository, no referrers: still an index
	}
	if err != nil {
		return fmt.Errorf("referrers of %s@%s: %w", name, d, err)
	}
	idx := v1.Index{MediaType: oci.MediaTypeImageIndex, Manifests: make([]v1.Descriptor, 0, len(list))}
	idx.SchemaVersion = 2
	for _, m := range list {
		idx.Manifests = append(idx.Manifests, v1.Descriptor{
			MediaType:    m.MediaType,
			Digest:       m.Digest,
			Size:         m.Size,
			ArtifactType: m.ArtifactType,
			Annotations:  m.Annotations,
		})
	}
	if at != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	return writeJSON(w, r, oci.MediaTypeImageIndex, idx)
}
