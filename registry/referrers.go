package registry

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/opencontainers/go-digest"

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
	q := r.URL.Query()
	at := q.Get("artifactType")
	n, err := reg.pageSize(r)
	if err != nil {
		return err
	}
	var after digest.Digest
	if last := q.Get("last"); last != "" {
		if after, err = parseDigest(last); err != nil {
			return err
		}
	}
	// One more than asked tells whether there is a next page (V1: n is
	// capped, so memory is bounded however many referrers there are).
	list, err := reg.meta.Referrers(r.Context(), name, d, at, after, n+1)
	if errors.Is(err, meta.ErrRepoNotFound) {
		list, err = nil, nil // no repository, no referrers: still an index
	}
	if err != nil {
		return fmt.Errorf("referrers of %s@%s: %w", name, d, err)
	}
	if len(list) > n {
		list = list[:n]
		if n > 0 {
			v := url.Values{"n": {strconv.Itoa(n)}, "last": {list[n-1].Digest.String()}}
			if at != "" {
				v.Set("artifactType", at)
			}
			w.Header().Set("Link", "</v2/"+name+"/referrers/"+d.String()+"?"+v.Encode()+`>; rel="next"`)
		}
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
