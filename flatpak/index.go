package flatpak

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// Limits on an index query (V1: nothing is sized by the client).
const (
	maxQueryBytes  = 8 << 10
	maxQueryValues = 64
)

// indexQuery is a parsed, normalized index query.
type indexQuery struct {
	filter map[string][]string
	// key is the filter in a canonical form: keys sorted, each key's
	// values sorted and unique. Equal filters have equal keys.
	key string
}

// errBadQuery is a query the index refuses (400).
var errBadQuery = errors.New("bad index query")

// parseIndexQuery reads the protocol's parameters (flatpak-oci-protocol.md
// §3): repository, tag, os, architecture, label:K, label:K:exists,
// annotation:K and annotation:K:exists. Values of one key are
// alternatives; different keys must all hold. Other parameters are
// ignored. An :exists parameter must have the value 1 (the spec leaves
// other values undefined).
func parseIndexQuery(raw string) (indexQuery, error) {
	if len(raw) > maxQueryBytes {
		return indexQuery{}, fmt.Errorf("%w: longer than %d bytes", errBadQuery, maxQueryBytes)
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return indexQuery{}, fmt.Errorf("%w: %v", errBadQuery, err)
	}
	q := indexQuery{filter: map[string][]string{}}
	n := 0
	for k, vs := range vals {
		switch k {
		case "repository", "tag", "os", "architecture":
		default:
			kind, rest, _ := strings.Cut(k, ":")
			if kind != "label" && kind != "annotation" {
				continue // not part of the protocol
			}
			name, exists := strings.CutSuffix(rest, ":exists")
			if name == "" {
				return indexQuery{}, fmt.Errorf("%w: %q names no %s", errBadQuery, k, kind)
			}
			if exists {
				for _, v := range vs {
					if v != "1" {
						return indexQuery{}, fmt.Errorf("%w: %s=%q: only the value 1 is defined", errBadQuery, k, v)
					}
				}
				vs = []string{"1"}
			}
		}
		if n += len(vals[k]); n > maxQueryValues {
			return indexQuery{}, fmt.Errorf("%w: more than %d values", errBadQuery, maxQueryValues)
		}
		vs = slices.Clone(vs)
		slices.Sort(vs)
		vs = slices.Compact(vs)
		q.filter[k] = vs
	}
	keys := make([]string, 0, len(q.filter))
	for k := range q.filter {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, v := range q.filter[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(k))
			b.WriteByte('=')
			b.WriteString(url.QueryEscape(v))
		}
	}
	q.key = b.String()
	return q, nil
}

// The index JSON (flatpak-oci-protocol.md §4). Field names are the
// protocol's; arrays are never null (flatpak treats null as missing and
// rejects the whole index or silently lists nothing).
type indexResponse struct {
	Registry string        `json:"Registry"`
	Results  []indexResult `json:"Results"`
}

type indexResult struct {
	Name   string       `json:"Name"`
	Images []indexImage `json:"Images"`
	Lists  []indexList  `json:"Lists"`
}

type indexList struct {
	Digest    string       `json:"Digest"`
	MediaType string       `json:"MediaType"`
	Images    []indexImage `json:"Images"`
	Tags      []string     `json:"Tags"`
}

type indexImage struct {
	Digest       string            `json:"Digest"`
	MediaType    string            `json:"MediaType"`
	OS           string            `json:"OS"`
	Architecture string            `json:"Architecture"`
	Tags         []string          `json:"Tags,omitempty"` // images inside a list carry none
	Annotations  map[string]string `json:"Annotations"`
	Labels       map[string]string `json:"Labels"`
}

// Limits on what the index copies of one image (V1: an image's labels are
// as large as its pusher makes them, and every index answer repeats them).
const (
	// MaxIndexImageBytes caps the labels and annotations (keys and values,
	// after icon rewriting) the index lists for one image; an image with
	// more is left out with a warning.
	MaxIndexImageBytes = 512 << 10
)

// indexKeys reports whether a label or annotation key is one the protocol
// gives the client through the index (flatpak-oci-protocol.md §4, §6): the
// org.flatpak.* labels (ref, metadata, sizes, commit metadata, …), the
// AppStream data and icons, and the delta URL. Older clients (flatpak <=
// 1.4) read the same keys from annotations. Nothing else is passed on.
func indexKey(k string) bool {
	return strings.HasPrefix(k, "org.flatpak.") || strings.HasPrefix(k, "org.freedesktop.appstream.") ||
		k == "io.github.containers.DeltaUrl"
}

// etagOf is the strong ETag of an index body: a fingerprint of its bytes
// (which hold the base URL, in Registry), so equal answers have equal tags
// whatever the generation they were built at.
func etagOf(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// serveIndex answers /index/static and /index/dynamic: the same answer;
// dynamic is not to be stored by caches (protocol §3).
func (h *Handler) serveIndex(w http.ResponseWriter, r *http.Request, dynamic bool) {
	ctx := r.Context()
	q, err := parseIndexQuery(r.URL.RawQuery)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Vary", "Accept-Encoding")
	if dynamic {
		hdr.Set("Cache-Control", "no-store")
	} else {
		hdr.Set("Cache-Control", "no-cache")
	}

	// The generation only says whether a cached answer is still valid;
	// the ETag is the answer's own.
	gen, err := h.md.IndexGeneration(ctx)
	if err != nil {
		h.internalError(w, r, "index generation", err)
		return
	}
	ans, err := h.cache.get(ctx, q.key, gen, func(ctx context.Context) (*indexAnswer, error) {
		return h.buildIndex(ctx, q)
	})
	if err != nil {
		h.internalError(w, r, "index", err)
		return
	}
	gz := acceptsGzip(r.Header.Get("Accept-Encoding"))
	tag, other := ans.etag, ans.etagGzip()
	if gz {
		tag, other = other, tag
	}
	// A cache may hold either representation and send both tags
	// (RFC 9111 §4.3.2): a 304 names the one that is still current.
	if inm := r.Header.Get("If-None-Match"); etagMatch(inm, tag) {
		hdr.Set("ETag", tag)
		w.WriteHeader(http.StatusNotModified)
		return
	} else if etagMatch(inm, other) {
		hdr.Set("ETag", other)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("ETag", tag)
	if gz {
		hdr.Set("Content-Encoding", "gzip")
		hdr.Set("Content-Length", strconv.Itoa(len(ans.gz)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(ans.gz)
		}
		return
	}
	hdr.Set("Content-Length", strconv.FormatInt(ans.size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		zr, err := gzip.NewReader(bytes.NewReader(ans.gz))
		if err == nil {
			_, err = io.Copy(w, zr)
		}
		if err != nil && ctx.Err() == nil {
			h.log.ErrorContext(ctx, "index: writing the uncompressed answer", "err", err)
		}
	}
}

// buildIndex queries the store and encodes the answer, gzipped. URLs in it
// are built on the configured public URL, else relative to the index URL
// (the client resolves Registry and icon URLs against it, §1 and §2.3), so
// the answer does not depend on the request.
func (h *Handler) buildIndex(ctx context.Context, q indexQuery) (*indexAnswer, error) {
	base := h.opts.PublicURL
	type listEntry struct {
		list   indexList
		images []*indexImage
		seen   map[digest.Digest]bool
	}
	type resultEntry struct {
		images []*indexImage
		lists  []*listEntry
	}
	var (
		results = map[string]*resultEntry{}
		lists   = map[meta.ManifestKey]*listEntry{}
	)
	result := func(repo string) *resultEntry {
		res := results[repo]
		if res == nil {
			res = &resultEntry{}
			results[repo] = res
		}
		return res
	}
	gen, err := h.md.IndexImages(ctx, q.filter, func(img, list *meta.Manifest, tags []string, icons map[int]digest.Digest) error {
		e := h.indexImage(ctx, img, icons, base)
		if e == nil {
			return nil
		}
		if list == nil {
			e.Tags = sortedCopy(tags)
			res := result(img.Repo)
			res.images = append(res.images, e)
			return nil
		}
		lk := meta.ManifestKey{Repo: list.Repo, Digest: list.Digest}
		l := lists[lk]
		if l == nil {
			l = &listEntry{list: indexList{Digest: string(list.Digest), MediaType: list.MediaType, Tags: sortedCopy(tags)}, seen: map[digest.Digest]bool{}}
			lists[lk] = l
			res := result(list.Repo)
			res.lists = append(res.lists, l)
		}
		if !l.seen[img.Digest] {
			l.seen[img.Digest] = true
			l.images = append(l.images, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	resp := indexResponse{Registry: base + "/", Results: make([]indexResult, 0, len(results))}
	for name, res := range results {
		r := indexResult{Name: name, Images: derefAll(res.images), Lists: make([]indexList, 0, len(res.lists))}
		for _, l := range res.lists {
			l.list.Images = derefAll(l.images)
			r.Lists = append(r.Lists, l.list)
		}
		resp.Results = append(resp.Results, r)
	}
	slices.SortFunc(resp.Results, func(a, b indexResult) int { return strings.Compare(a.Name, b.Name) })

	var plain bytes.Buffer
	enc := json.NewEncoder(&plain)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(resp); err != nil {
		return nil, fmt.Errorf("encode index: %w", err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(plain.Bytes()); err != nil {
		return nil, fmt.Errorf("compress index: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress index: %w", err)
	}
	return &indexAnswer{gen: gen, etag: etagOf(plain.Bytes()), gz: gz.Bytes(), size: int64(plain.Len())}, nil
}

// indexImage is the index entry of img, or nil if the image is left out:
// its org.flatpak.metadata could not be passed on byte for byte (V25), or
// what it lists is larger than MaxIndexImageBytes. Only the protocol's
// labels and annotations are copied (indexKey), with icons rewritten
// (rewriteIcons).
func (h *Handler) indexImage(ctx context.Context, img *meta.Manifest, icons map[int]digest.Digest, base string) *indexImage {
	if md, ok := img.Labels[LabelMetadata]; ok && !cleanMetadata(md) {
		h.log.WarnContext(ctx, "image left out of the Flatpak index: its org.flatpak.metadata holds NUL or invalid UTF-8",
			"repo", img.Repo, "digest", img.Digest)
		return nil
	}
	e := &indexImage{
		Digest:       string(img.Digest),
		MediaType:    img.MediaType,
		OS:           img.OS,
		Architecture: img.Architecture,
		Labels:       indexMap(img.Labels),
		Annotations:  indexMap(img.Annotations),
	}
	size := 0
	for _, m := range []map[string]string{e.Labels, e.Annotations} {
		rewriteIcons(m, icons, base)
		for k, v := range m {
			size += len(k) + len(v)
		}
	}
	if size > MaxIndexImageBytes {
		h.log.WarnContext(ctx, "image left out of the Flatpak index: its Flatpak labels are too large",
			"repo", img.Repo, "digest", img.Digest, "bytes", size, "max", MaxIndexImageBytes)
		return nil
	}
	return e
}

// indexMap copies the protocol's keys of m (indexKey), never returning nil.
func indexMap(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if indexKey(k) {
			out[k] = v
		}
	}
	return out
}

// rewriteIcons replaces each icon label (or annotation) of m that holds a
// data: URI with the URL of the icon recorded for it at push time, base +
// /icons/…, or drops it when none was recorded (the URI was malformed).
// URLs keep the answer small; the client fetches them as it decodes data:
// URIs (protocol §2.3). An absolute http(s) URL is passed on as it is; any
// other value is dropped.
func rewriteIcons(m map[string]string, icons map[int]digest.Digest, base string) {
	for key, v := range m {
		size := IconSize(key)
		if size == 0 {
			continue
		}
		switch {
		case isDataURI(v):
			if d, ok := icons[size]; ok {
				m[key] = base + IconPath(d)
			} else {
				delete(m, key)
			}
		case isHTTPURL(v):
		default:
			delete(m, key)
		}
	}
}

func isDataURI(v string) bool {
	return len(v) >= 5 && strings.EqualFold(v[:5], "data:")
}

// isHTTPURL reports whether v is an absolute http or https URL.
func isHTTPURL(v string) bool {
	u, err := url.Parse(v)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func derefAll(ps []*indexImage) []indexImage {
	out := make([]indexImage, len(ps))
	for i, p := range ps {
		out[i] = *p
	}
	return out
}

// cleanMetadata reports whether a metadata label can be passed on: no
// NUL, valid UTF-8, and no U+FFFD (which a JSON decoder puts in place of
// invalid UTF-8, so such a label no longer matches the config's bytes).
func cleanMetadata(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0) && !strings.ContainsRune(s, utf8.RuneError)
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	if out == nil {
		out = []string{}
	}
	slices.Sort(out)
	return out
}

// etagMatch reports whether an If-None-Match header matches tag (RFC 9110
// §13.1.2: weak comparison, "*" matches anything).
func etagMatch(header, tag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == tag {
			return true
		}
	}
	return false
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip
// (RFC 9110 §12.5.3): listed (or "*") without q=0.
func acceptsGzip(header string) bool {
	gzipQ, starQ := -1.0, -1.0
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if k, v, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.TrimSpace(k) == "q" {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				q = f
			}
		}
		switch strings.ToLower(strings.TrimSpace(coding)) {
		case "gzip", "x-gzip":
			gzipQ = q
		case "*":
			starQ = q
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return starQ > 0
}
