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

// indexFormat changes whenever the same store content would be answered
// differently (the JSON shape, the icon URLs, what is left out), so that
// ETags from an older Berth do not match.
const indexFormat = "berth-index-1"

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

// etag is the strong ETag of the answer to q at generation gen for a
// client reaching Berth at base.
func etag(gen int64, base, queryKey string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%s\x00%s", indexFormat, gen, base, queryKey)
	return `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
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
	base := h.baseURL(r)
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Vary", "Accept-Encoding")
	if dynamic {
		hdr.Set("Cache-Control", "no-store")
	} else {
		hdr.Set("Cache-Control", "no-cache")
	}

	gen, err := h.md.IndexGeneration(ctx)
	if err != nil {
		h.internalError(w, r, "index generation", err)
		return
	}
	tag := etag(gen, base, q.key)
	if etagMatch(r.Header.Get("If-None-Match"), tag) {
		hdr.Set("ETag", tag)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	cacheKey := base + "\x00" + q.key
	ans, err := h.cache.get(ctx, cacheKey, gen, func() (*indexAnswer, error) {
		return h.buildIndex(ctx, q, base)
	})
	if err != nil {
		h.internalError(w, r, "index", err)
		return
	}
	// The answer may be of a newer generation than the one read above.
	hdr.Set("ETag", ans.etag)
	if ans.etag != tag && etagMatch(r.Header.Get("If-None-Match"), ans.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
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

// buildIndex queries the store and encodes the answer, gzipped.
func (h *Handler) buildIndex(ctx context.Context, q indexQuery, base string) (*indexAnswer, error) {
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
		results  = map[string]*resultEntry{}
		lists    = map[meta.ManifestKey]*listEntry{}
		withIcon = map[meta.ManifestKey][]*indexImage{} // entries whose labels name icons
	)
	result := func(repo string) *resultEntry {
		res := results[repo]
		if res == nil {
			res = &resultEntry{}
			results[repo] = res
		}
		return res
	}
	gen, err := h.md.IndexImages(ctx, q.filter, func(img, list *meta.Manifest, tags []string) error {
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
			Labels:       copyMap(img.Labels),
			Annotations:  copyMap(img.Annotations),
		}
		if list == nil {
			e.Tags = sortedCopy(tags)
			res := result(img.Repo)
			res.images = append(res.images, e)
		} else {
			lk := meta.ManifestKey{Repo: list.Repo, Digest: list.Digest}
			l := lists[lk]
			if l == nil {
				l = &listEntry{list: indexList{Digest: string(list.Digest), MediaType: list.MediaType, Tags: sortedCopy(tags)}, seen: map[digest.Digest]bool{}}
				lists[lk] = l
				res := result(list.Repo)
				res.lists = append(res.lists, l)
			}
			if l.seen[img.Digest] {
				return nil
			}
			l.seen[img.Digest] = true
			l.images = append(l.images, e)
		}
		if hasIconKey(e.Labels) || hasIconKey(e.Annotations) {
			k := meta.ManifestKey{Repo: img.Repo, Digest: img.Digest}
			withIcon[k] = append(withIcon[k], e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := h.rewriteIcons(ctx, withIcon, base); err != nil {
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

	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	cw := &countingWriter{w: zw}
	enc := json.NewEncoder(cw)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(resp); err != nil {
		return nil, fmt.Errorf("encode index: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress index: %w", err)
	}
	return &indexAnswer{gen: gen, etag: etag(gen, base, q.key), gz: buf.Bytes(), size: cw.n}, nil
}

// rewriteIcons replaces the icon labels and annotations of the entries
// with absolute /icons/ URLs of the icons recorded for their manifest at
// push time (one store query for all), and drops an icon key for which
// none was recorded (its data: URI was malformed). URLs keep the answer
// small; the flatpak client fetches them like data: URIs are decoded
// (protocol §2.3).
func (h *Handler) rewriteIcons(ctx context.Context, entries map[meta.ManifestKey][]*indexImage, base string) error {
	if len(entries) == 0 {
		return nil
	}
	keys := make([]meta.ManifestKey, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	icons, err := h.md.ManifestIcons(ctx, keys...)
	if err != nil {
		return err
	}
	for k, es := range entries {
		for _, e := range es {
			for _, m := range []map[string]string{e.Labels, e.Annotations} {
				for key := range m {
					size := IconSize(key)
					if size == 0 {
						continue
					}
					if d, ok := icons[k][size]; ok {
						m[key] = base + IconPath(d)
					} else {
						delete(m, key)
					}
				}
			}
		}
	}
	return nil
}

func hasIconKey(m map[string]string) bool {
	for _, l := range iconLabels {
		if _, ok := m[l.key]; ok {
			return true
		}
	}
	return false
}

// copyMap copies m, never returning nil.
func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
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

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
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
