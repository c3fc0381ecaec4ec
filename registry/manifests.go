package registry

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/internal/etag"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/oci"
)

// maxTagParams bounds the ?tag= parameters of one manifest push, so one
// request cannot hold the write transaction for a huge number of tags.
const maxTagParams = 100

// getManifest serves GET and HEAD of /v2/<name>/manifests/<ref>: the bytes as
// pushed, with the media type they were pushed with.
//
// A tag and its manifest are read in one query (TagBody).
func (reg *Registry) getManifest(w http.ResponseWriter, r *http.Request, name, ref string) error {
	var (
		m   meta.ManifestBody
		err error
	)
	if oci.IsDigestRef(ref) {
		d, perr := parseDigest(ref)
		if perr != nil {
			return perr
		}
		m, err = reg.meta.ManifestBody(r.Context(), name, d)
	} else {
		if err := oci.ValidateTag(ref); err != nil {
			return err
		}
		m, err = reg.meta.TagBody(r.Context(), name, ref)
	}
	if err != nil {
		return fmt.Errorf("manifest %s:%s: %w", name, ref, err)
	}
	h := w.Header()
	h.Set("Content-Type", m.MediaType)
	h.Set("Content-Length", strconv.Itoa(len(m.Content)))
	h.Set("Docker-Content-Digest", m.Digest.String())
	tag := `"` + m.Digest.String() + `"`
	h.Set("ETag", tag)
	if etag.NoneMatch(r.Header.Get("If-None-Match"), tag, true) {
		h.Del("Content-Length")
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(m.Content)
	}
	return nil
}

// putManifest serves PUT /v2/<name>/manifests/<ref>[?tag=…]: the manifest is
// read whole (under a cap), parsed, checked against the blobs of the
// repository, and stored with its tags in one transaction.
func (reg *Registry) putManifest(w http.ResponseWriter, r *http.Request, name, ref string) error {
	ctx := r.Context()
	var tags []string
	var want digest.Digest
	if oci.IsDigestRef(ref) {
		d, err := parseDigest(ref)
		if err != nil {
			return err
		}
		want = d
	} else {
		if err := oci.ValidateTag(ref); err != nil {
			return err
		}
		tags = append(tags, ref)
	}
	// The query is parsed strictly: url.Values drops pairs it cannot
	// parse ("tag=v1;x", "tag=%zz"), which would store the manifest
	// without a tag the client asked for.
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return errorf(CodeManifestInvalid, 0, err, "malformed query: %v", err)
	}
	extra := query["tag"]
	if len(extra) > maxTagParams {
		return errorf(CodeManifestInvalid, 0, nil, "at most %d tag parameters in one push", maxTagParams)
	}
	for _, t := range extra {
		// An invalid ?tag= is MANIFEST_INVALID: the spec's table has no
		// tag code (TAG_INVALID is distribution's), and ErrTagInvalid
		// maps to MANIFEST_INVALID everywhere else too.
		if err := oci.ValidateTag(t); err != nil {
			return fmt.Errorf("tag parameter: %w", err)
		}
		tags = append(tags, t)
	}
	if r.ContentLength > reg.opts.MaxManifestBytes {
		return reg.manifestTooLarge(nil)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, reg.opts.MaxManifestBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return reg.manifestTooLarge(err)
		}
		return errorf(CodeManifestInvalid, 0, err, "could not read the manifest body")
	}
	alg := digest.Canonical
	if want != "" {
		alg = want.Algorithm()
	}
	d := alg.FromBytes(body)
	if want != "" && d != want {
		return errorf(CodeDigestInvalid, 0, nil, "manifest digest is %s, not %s", d, want)
	}
	pm, err := oci.ParseManifest(r.Header.Get("Content-Type"), body)
	if err != nil {
		return err
	}
	if err := reg.authorizeTagMoves(w, r, name, d, tags); err != nil {
		return err
	}
	m, err := reg.record(r, name, d, pm, body)
	if err != nil {
		return err
	}
	// Without overwrite, the store re-checks in its transaction that no
	// tag moves: authorizeTagMoves read the tags before, and another push
	// may have created one since.
	m.KeepTags = reg.opts.Access != nil && len(tags) > 0 && !reg.allowed(r, name, ActionOverwrite)
	for _, o := range reg.opts.Observers {
		if p, ok := o.(ManifestPreparer); ok {
			p.PrepareManifest(ctx, m)
		}
	}
	if err := reg.meta.PutManifest(ctx, m, tags...); err != nil {
		if errors.Is(err, meta.ErrTagExists) {
			return reg.deny(w, r, scopeFor(name, ActionOverwrite))
		}
		return fmt.Errorf("store manifest %s@%s: %w", name, d, err)
	}
	for _, o := range reg.opts.Observers {
		o.ManifestStored(ctx, m, tags)
	}
	h := w.Header()
	h.Set("Location", "/v2/"+name+"/manifests/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	if pm.Subject != nil {
		h.Set("OCI-Subject", pm.Subject.Digest.String())
	}
	if want != "" {
		for _, t := range tags {
			h.Add("OCI-Tag", t)
		}
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// manifestTooLarge is the 413 of a manifest over the limit.
func (reg *Registry) manifestTooLarge(cause error) *Error {
	e := errorf(CodeManifestInvalid, http.StatusRequestEntityTooLarge, cause, "the manifest is larger than the limit of %d bytes", reg.opts.MaxManifestBytes)
	e.Message = "manifest exceeds the registry's size limit"
	return e
}

// authorizeTagMoves checks that the request may move every tag it names
// (the path tag and each ?tag=) that exists and points at another digest:
// that needs ActionOverwrite besides push (V10, V11). New tags, and tags
// already at d, need only push. No tag name is special.
func (reg *Registry) authorizeTagMoves(w http.ResponseWriter, r *http.Request, name string, d digest.Digest, tags []string) error {
	if reg.opts.Access == nil || len(tags) == 0 || reg.allowed(r, name, ActionOverwrite) {
		return nil
	}
	for _, t := range tags {
		cur, err := reg.meta.ResolveTag(r.Context(), name, t)
		switch {
		case errors.Is(err, meta.ErrTagNotFound), errors.Is(err, meta.ErrRepoNotFound):
			continue
		case err != nil:
			return fmt.Errorf("tag %s:%s: %w", name, t, err)
		case cur != d:
			return reg.deny(w, r, scopeFor(name, ActionOverwrite))
		}
	}
	return nil
}

// addSize adds sizes without overflowing: a sum past the largest int64
// stays there. Sizes of descriptors not stored (sparse layers, index
// children not pushed) are whatever the client wrote.
func addSize(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// sizeMismatch is the refusal of a descriptor whose size is not the stored
// content's.
func sizeMismatch(what string, desc v1.Descriptor, stored int64) error {
	return errorf(CodeManifestInvalid, 0, nil, "%s %s has size %d, but the registry holds it with %d bytes", what, desc.Digest, desc.Size, stored)
}

// record gathers the facts stored with a manifest: its references, and for
// images the platform, labels and creation time from the config blob.
func (reg *Registry) record(r *http.Request, name string, d digest.Digest, pm *oci.Manifest, body []byte) (*meta.Manifest, error) {
	m := &meta.Manifest{
		Repo:         name,
		Digest:       d,
		MediaType:    pm.MediaType,
		Content:      body,
		ArtifactType: pm.ArtifactType,
		Annotations:  pm.Annotations,
		TotalSize:    int64(len(body)),
	}
	if pm.Subject != nil {
		m.Subject = pm.Subject.Digest
	}
	// Every blob the manifest requires is looked up once: a stored blob
	// must have the size the descriptor says (a wrong size would be
	// believed by every client and by the catalogue's image size).
	linked := make(map[digest.Digest]int64)
	for i, desc := range pm.Blobs() {
		size, seen := linked[desc.Digest]
		if !seen {
			var err error
			size, err = reg.meta.BlobLink(r.Context(), name, desc.Digest)
			switch {
			case errors.Is(err, meta.ErrBlobNotFound):
				size = -1
			case err != nil:
				return nil, fmt.Errorf("blob %s of manifest: %w", desc.Digest, err)
			}
			linked[desc.Digest] = size
		}
		kind := meta.RefBlob
		switch {
		case size >= 0 && size != desc.Size:
			what := "layer"
			if i == 0 && pm.Config != nil {
				what = "config"
			}
			return nil, sizeMismatch(what, desc, size)
		case size < 0 && reg.opts.SparseManifests && (pm.Config == nil || desc.Digest != pm.Config.Digest):
			kind = meta.RefExternal // recorded (and kept by gc), not required
		}
		m.Refs = append(m.Refs, meta.Ref{Digest: desc.Digest, Kind: kind, MediaType: desc.MediaType, Size: desc.Size})
		m.TotalSize = addSize(m.TotalSize, desc.Size)
	}
	for _, desc := range pm.External() {
		m.Refs = append(m.Refs, meta.Ref{Digest: desc.Digest, Kind: meta.RefExternal, MediaType: desc.MediaType, Size: desc.Size})
	}
	// An index's size counts each distinct child once: the child manifest
	// and, if it is stored here, what it references (one narrow query,
	// whatever the number of children). A stored child, and a stored
	// subject, must have the size their descriptor says; absent ones may
	// come later (sparse indexes, referrers pushed first).
	children := make([]digest.Digest, 0, len(pm.Manifests)+1)
	seen := make(map[digest.Digest]bool, len(pm.Manifests))
	for _, desc := range pm.Manifests {
		m.Refs = append(m.Refs, meta.Ref{Digest: desc.Digest, Kind: meta.RefManifest, MediaType: desc.MediaType, Size: desc.Size, Platform: oci.PlatformString(desc.Platform)})
		if !seen[desc.Digest] {
			seen[desc.Digest] = true
			children = append(children, desc.Digest)
		}
	}
	lookup := children
	if pm.Subject != nil && !seen[pm.Subject.Digest] {
		lookup = append(lookup, pm.Subject.Digest)
	}
	if len(lookup) > 0 {
		sizes, err := reg.meta.ManifestSizes(r.Context(), name, lookup)
		if err != nil {
			return nil, fmt.Errorf("sizes of the manifests %s refers to: %w", d, err)
		}
		if pm.Subject != nil {
			if sz, ok := sizes[pm.Subject.Digest]; ok && sz.Content != pm.Subject.Size {
				return nil, sizeMismatch("subject", *pm.Subject, sz.Content)
			}
		}
		counted := make(map[digest.Digest]bool, len(children))
		for _, desc := range pm.Manifests {
			sz, stored := sizes[desc.Digest]
			if stored && sz.Content != desc.Size {
				return nil, sizeMismatch("child manifest", desc, sz.Content)
			}
			if counted[desc.Digest] {
				continue
			}
			counted[desc.Digest] = true
			if stored {
				m.TotalSize = addSize(m.TotalSize, sz.Total)
			} else {
				m.TotalSize = addSize(m.TotalSize, desc.Size)
			}
		}
	}
	if pm.Config != nil {
		if m.ArtifactType == "" {
			m.ArtifactType = pm.Config.MediaType
		}
		m.Config = pm.Config.Digest
		if err := reg.readConfig(r, name, pm.Config, m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// readConfig reads an image config (bounded) for its platform and labels.
// A config that is not an image config, too large, or unreadable JSON is
// stored without these facts; a config not linked in the repository is the
// client's error.
func (reg *Registry) readConfig(r *http.Request, name string, desc *v1.Descriptor, m *meta.Manifest) error {
	switch desc.MediaType {
	case oci.MediaTypeImageConfig, oci.MediaTypeDockerConfig:
	default:
		return nil
	}
	if _, err := reg.meta.BlobLink(r.Context(), name, desc.Digest); err != nil {
		return fmt.Errorf("config of manifest: %w", &meta.BlobUnknownError{Digest: desc.Digest})
	}
	if desc.Size > reg.opts.MaxConfigBytes {
		return nil
	}
	f, err := reg.blobs.Open(r.Context(), desc.Digest)
	if errors.Is(err, blob.ErrNotFound) {
		return fmt.Errorf("config of manifest: %w", &meta.BlobUnknownError{Digest: desc.Digest})
	}
	if err != nil {
		return fmt.Errorf("open config %s: %w", desc.Digest, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, reg.opts.MaxConfigBytes))
	if err != nil {
		return fmt.Errorf("read config %s: %w", desc.Digest, err)
	}
	cfg, err := oci.ParseImageConfig(data)
	if err != nil {
		reg.log.WarnContext(r.Context(), "image config not parsed; stored without its facts", "repo", name, "digest", desc.Digest, "err", err)
		return nil
	}
	m.OS, m.Architecture, m.Variant = cfg.OS, cfg.Architecture, cfg.Variant
	m.Labels, m.Created = cfg.Labels, cfg.Created
	return nil
}

// deleteManifest serves DELETE of a manifest by digest (the manifest and
// its tags go) or by tag (only the tag goes).
func (reg *Registry) deleteManifest(w http.ResponseWriter, r *http.Request, name, ref string) error {
	ctx := r.Context()
	if oci.IsDigestRef(ref) {
		d, err := parseDigest(ref)
		if err != nil {
			return err
		}
		if err := reg.meta.DeleteManifest(ctx, name, d); err != nil {
			return fmt.Errorf("delete manifest %s@%s: %w", name, d, err)
		}
		for _, o := range reg.opts.Observers {
			if do, ok := o.(ManifestDeleteObserver); ok {
				do.ManifestDeleted(ctx, name, d)
			}
		}
	} else {
		if err := oci.ValidateTag(ref); err != nil {
			return err
		}
		if err := reg.meta.DeleteTag(ctx, name, ref); err != nil {
			return fmt.Errorf("delete tag %s:%s: %w", name, ref, err)
		}
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
