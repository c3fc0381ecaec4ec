package flatpak

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/etag"
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
	// typed is filter as the store takes it.
	typed meta.IndexFilter
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
	if q.typed, err = meta.ParseIndexFilter(q.filter); err != nil {
		return indexQuery{}, fmt.Errorf("%w: %v", errBadQuery, err)
	}
	return q, nil
}

// The index JSON (flatpak-oci-protocol.md §4): an object
// {"Registry": …, "Results": [{"Name": …, "Images": […], "Lists":
// [{"Digest", "MediaType", "Images", "Tags"}]}]}, written part by part
// (indexParts.encode). Field names are the protocol's; arrays are never
// null (flatpak treats null as missing and rejects the whole index or
// silently lists nothing).
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

// cacheKey is the cache key of a query for a view: equal only for equal
// views and equal normalized queries (the view key's length comes first,
// so no view key and query can be confused with another pair).
func cacheKey(view, query string) string {
	return strconv.Itoa(len(view)) + ":" + view + "?" + query
}

// serveIndex answers /index/static and /index/dynamic: the same answer;
// dynamic is not to be stored by caches (protocol §3). The answer lists
// only images of repositories the requester may pull (Options.Access).
func (h *Handler) serveIndex(w http.ResponseWriter, r *http.Request, dynamic bool) {
	ctx := r.Context()
	q, err := parseIndexQuery(r.URL.RawQuery)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	viewKey, canPull := h.view(r)
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
	gen, err := h.md.IndexGeneration(ctx, q.typed.Scope())
	if err != nil {
		h.internalError(w, r, "index generation", err)
		return
	}
	// Requests of one view share answers (and builds): canPull is the
	// same predicate for all of them.
	key := cacheKey(viewKey, q.key)
	ans, err := h.cache.get(ctx, key, gen, func(ctx context.Context) (*indexAnswer, error) {
		return h.buildIndex(ctx, q, canPull, gen, h.cache.current(key))
	})
	if err != nil {
		h.internalError(w, r, "index", err)
		return
	}
	if ans.truncated {
		hdr.Set("X-Berth-Index-Truncated", "true")
	}
	gz := acceptsGzip(r.Header.Get("Accept-Encoding"))
	tag, other := ans.etag, ans.etagGzip()
	if gz {
		tag, other = other, tag
	}
	// A cache may hold either representation and send both tags
	// (RFC 9111 §4.3.2): a 304 names the one that is still current.
	if inm := r.Header.Get("If-None-Match"); etag.NoneMatch(inm, tag, true) {
		hdr.Set("ETag", tag)
		w.WriteHeader(http.StatusNotModified)
		return
	} else if etag.NoneMatch(inm, other, true) {
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

// errIndexFull stops the store's walk when the answer is full.
var errIndexFull = errors.New("index answer full")

// Framing bytes the answer adds around its parts, counted generously so
// that the parts' sum bounds the body: a result's
// {"Name":…,"Images":[],"Lists":[]} and a list's
// {"Digest":…,"MediaType":…,"Images":[],"Tags":[]}, plus a comma per part.
const (
	resultFraming = 40
	listFraming   = 60
	answerFraming = 40
)

// indexParts is an answer being built: each image is encoded as soon as
// the store passes it, so what is held is the encoded JSON, never more
// than Options.MaxIndexBytes of it.
type indexParts struct {
	results map[string]*resultParts
	lists   map[meta.ManifestKey]*listParts
	size    int64 // bytes the body will have at most
	max     int64
	full    bool
	// bounds are each repository's share of size: a refresh counts the
	// repositories it keeps as a full build would, so it is cut exactly
	// when a full build would be.
	bounds map[string]int64
}

type resultParts struct {
	name   []byte   // JSON string
	images [][]byte // encoded indexImage values
	lists  []*listParts
}

type listParts struct {
	digest, mediaType, tags []byte // JSON values
	images                  [][]byte
	seen                    map[digest.Digest]bool
}

// add counts n more bytes of repo's, or reports that they would pass
// the cap.
func (p *indexParts) add(repo string, n int64) bool {
	if p.size+n > p.max {
		p.full = true
		return false
	}
	p.size += n
	p.bounds[repo] += n
	return true
}

// buildIndex answers q at generation gen (or newer): from prev, the
// cached answer of the same view and query, when the events outbox says
// which repositories changed since it (refreshIndex), else from the whole
// store (readIndex).
func (h *Handler) buildIndex(ctx context.Context, q indexQuery, canPull func(string) bool, gen int64, prev *indexAnswer) (*indexAnswer, error) {
	if prev != nil {
		ans, ok, err := h.refreshIndex(ctx, q, canPull, gen, prev)
		if err != nil || ok {
			return ans, err
		}
	}
	return h.readIndex(ctx, q, canPull)
}

// Events is what the index reads of the events outbox (meta.Outbox) to
// re-read only the repositories a change touched; a store without it is
// read whole at every change.
type Events interface {
	Events(ctx context.Context, after int64, n int) ([]meta.Event, error)
	LastEventSeq(ctx context.Context) (int64, error)
}

// maxIncremental is the most events an index refresh applies one
// repository at a time; past it the index is read whole.
const maxIncremental = 1024

// readIndex queries the store and encodes the answer, gzipped. URLs in it
// are built on the configured public URL, else relative to the index URL
// (the client resolves Registry and icon URLs against it, §1 and §2.3), so
// the answer does not depend on the request, only on its view: images of
// repositories canPull refuses are left out (nil: none are). The answer
// stops at the first image that would take it past Options.MaxIndexBytes.
//
// The events outbox's sequence is read before the snapshot, so every
// event up to it is reflected in the answer (refreshIndex starts there).
func (h *Handler) readIndex(ctx context.Context, q indexQuery, canPull func(string) bool) (*indexAnswer, error) {
	seq := int64(-1)
	if ev, ok := h.md.(Events); ok {
		var err error
		if seq, err = ev.LastEventSeq(ctx); err != nil {
			return nil, fmt.Errorf("index: events: %w", err)
		}
	}
	// Read before the walk: the snapshot is at least this generation.
	before, err := h.md.IndexGeneration(ctx, q.typed.Scope())
	if err != nil {
		return nil, err
	}
	p, gen, err := h.readParts(ctx, q.typed, canPull, h.answerFixed())
	if errors.Is(err, errIndexFull) {
		// The walk stopped early: the snapshot's generation is not
		// known, so the answer counts as of the one read before it (a
		// later change makes the cache build it again).
		gen, err = before, nil
		h.warnTruncated(ctx, gen, q)
	}
	if err != nil {
		return nil, err
	}
	ans := h.encodeAnswer(p.repoJSON(), nil, nil)
	ans.gen, ans.truncated, ans.seq, ans.bounds = gen, p.full, seq, p.bounds
	if p.full {
		ans.slim() // a cut answer is not refreshed: read whole again
	}
	return ans, nil
}

// refreshIndex builds q's answer at gen from prev by re-reading only the
// repositories the events since prev name. ok is false when that cannot
// be trusted (no outbox, a gc run, too many events, a gap where events
// were pruned, a cut answer) and the caller reads the whole index.
//
// gen is read again before the events: every change up to gen has its
// event among them (an event is written with its change), and the
// repositories are re-read after, so the answer holds at least
// everything of gen.
func (h *Handler) refreshIndex(ctx context.Context, q indexQuery, canPull func(string) bool, gen int64, prev *indexAnswer) (*indexAnswer, bool, error) {
	ev, has := h.md.(Events)
	if !has || prev.seq < 0 || prev.repos == nil || prev.bounds == nil || prev.truncated {
		return nil, false, nil
	}
	// Callers of newer generations may have joined this build before it
	// began (indexCache.get): label it with the generation as of now.
	if g, err := h.md.IndexGeneration(ctx, q.typed.Scope()); err != nil {
		return nil, false, err
	} else if g > gen {
		gen = g
	}
	evs, err := ev.Events(ctx, prev.seq, maxIncremental+1)
	if err != nil {
		return nil, false, fmt.Errorf("index: events: %w", err)
	}
	if len(evs) > maxIncremental || len(evs) > 0 && evs[0].Seq != prev.seq+1 {
		return nil, false, nil
	}
	if len(evs) == 0 {
		// None after prev's: either nothing changed that has an event,
		// or the events were pruned since (then the outbox has moved on).
		last, err := ev.LastEventSeq(ctx)
		if err != nil {
			return nil, false, fmt.Errorf("index: events: %w", err)
		}
		if last != prev.seq {
			return nil, false, nil
		}
	}
	seq := prev.seq
	changed := map[string]bool{}
	for i, e := range evs {
		if i > 0 && e.Seq != evs[i-1].Seq+1 || e.Type == meta.EventGCRun || e.Repo == "" {
			return nil, false, nil
		}
		seq = e.Seq
		if e.Type != meta.EventBlobDelete { // blobs are not in the index
			changed[e.Repo] = true
		}
	}
	// The repositories to re-read: the changed ones the query can list.
	filter := q.typed
	var reread []string
	for repo := range changed {
		if len(filter.Repositories) == 0 || slices.Contains(filter.Repositories, repo) {
			reread = append(reread, repo)
		}
	}
	repos, bounds := prev.repos, prev.bounds
	if len(reread) > 0 {
		slices.Sort(reread)
		filter.Repositories = reread
		// What the answer keeps of prev counts against the cap as in a
		// full build, so the refresh is cut exactly when that would be.
		bounds = maps.Clone(prev.bounds)
		repos = maps.Clone(prev.repos)
		for _, r := range reread {
			delete(bounds, r)
			delete(repos, r)
		}
		used := h.answerFixed()
		for _, n := range bounds {
			used += n
		}
		p, _, err := h.readParts(ctx, filter, canPull, used)
		if errors.Is(err, errIndexFull) {
			return nil, false, nil // it would be cut: read whole, and cut alike
		}
		if err != nil {
			return nil, false, err
		}
		maps.Copy(bounds, p.bounds)
		maps.Copy(repos, p.repoJSON())
	}
	ans := h.encodeAnswer(repos, prev.groups, changed)
	ans.gen, ans.seq, ans.bounds = gen, seq, bounds
	return ans, true, nil
}

// readParts walks the images filter selects and encodes each as the store
// passes it, counting them from used bytes of answer up to
// Options.MaxIndexBytes (errIndexFull past it, with the parts read so
// far). It returns the snapshot's generation.
func (h *Handler) readParts(ctx context.Context, filter meta.IndexFilter, canPull func(string) bool, used int64) (*indexParts, int64, error) {
	base := h.opts.PublicURL
	p := &indexParts{results: map[string]*resultParts{}, lists: map[meta.ManifestKey]*listParts{},
		max: h.opts.MaxIndexBytes, size: used, bounds: map[string]int64{}}
	result := func(repo string) *resultParts {
		res := p.results[repo]
		if res == nil {
			name := jsonBytes(repo)
			if !p.add(repo, int64(len(name))+resultFraming) {
				return nil
			}
			res = &resultParts{name: name}
			p.results[repo] = res
		}
		return res
	}
	gen, err := h.md.IndexImages(ctx, filter, func(img, list *meta.Manifest, tags []string, icons map[int]digest.Digest) error {
		if canPull != nil && !canPull(img.Repo) {
			return nil
		}
		if list != nil && len(tags) == 1 && tags[0] == DeltaIndexTag {
			// The delta index lists delta manifests, not apps.
			return nil
		}
		e := h.indexImage(ctx, img, icons, base)
		if e == nil {
			return nil
		}
		if list == nil {
			e.Tags = sortedCopy(tags)
		}
		enc := jsonBytes(e)
		if list == nil {
			res := result(img.Repo)
			if res == nil || !p.add(img.Repo, int64(len(enc))+1) {
				return errIndexFull
			}
			res.images = append(res.images, enc)
			return nil
		}
		lk := meta.ManifestKey{Repo: list.Repo, Digest: list.Digest}
		l := p.lists[lk]
		if l == nil {
			res := result(list.Repo)
			if res == nil {
				return errIndexFull
			}
			l = &listParts{digest: jsonBytes(string(list.Digest)), mediaType: jsonBytes(list.MediaType),
				tags: jsonBytes(sortedCopy(tags)), seen: map[digest.Digest]bool{}}
			if !p.add(list.Repo, int64(len(l.digest)+len(l.mediaType)+len(l.tags))+listFraming) {
				return errIndexFull
			}
			p.lists[lk] = l
			res.lists = append(res.lists, l)
		}
		if !l.seen[img.Digest] {
			if !p.add(list.Repo, int64(len(enc))+1) {
				return errIndexFull
			}
			l.seen[img.Digest] = true
			l.images = append(l.images, enc)
		}
		return nil
	})
	return p, gen, err
}

// answerFixed is what an answer counts against the cap before any
// repository: its Registry and framing.
func (h *Handler) answerFixed() int64 { return int64(len(h.registryJSON())) + answerFraming }

// registryJSON is the answer's Registry value: the configured public URL,
// else "/" (resolved against the index URL).
func (h *Handler) registryJSON() []byte { return jsonBytes(h.opts.PublicURL + "/") }

// warnTruncated logs, once per generation, that an answer was cut.
func (h *Handler) warnTruncated(ctx context.Context, gen int64, q indexQuery) {
	for {
		last := h.truncatedGen.Load()
		if gen <= last {
			return
		}
		if h.truncatedGen.CompareAndSwap(last, gen) {
			h.log.WarnContext(ctx, "Flatpak index answer cut at its size limit: it lists the first images that fit",
				"max_bytes", h.opts.MaxIndexBytes, "query", q.key, "generation", gen)
			return
		}
	}
}

// repoJSON encodes each repository's result: {"Name":…,"Images":[…],
// "Lists":[…]}.
func (p *indexParts) repoJSON() map[string][]byte {
	out := make(map[string][]byte, len(p.results))
	for name, res := range p.results {
		var b bytes.Buffer
		join := func(items [][]byte) {
			for i, it := range items {
				if i > 0 {
					b.Write(comma)
				}
				b.Write(it)
			}
		}
		b.WriteString(`{"Name":`)
		b.Write(res.name)
		b.WriteString(`,"Images":[`)
		join(res.images)
		b.WriteString(`],"Lists":[`)
		for j, l := range res.lists {
			if j > 0 {
				b.Write(comma)
			}
			b.WriteString(`{"Digest":`)
			b.Write(l.digest)
			b.WriteString(`,"MediaType":`)
			b.Write(l.mediaType)
			b.WriteString(`,"Images":[`)
			join(l.images)
			b.WriteString(`],"Tags":`)
			b.Write(l.tags)
			b.WriteString(`}`)
		}
		b.WriteString(`]}`)
		out[name] = b.Bytes()
	}
	return out
}

// encodeAnswer writes the answer {"Registry":…,"Results":[…]} of repos,
// in repository order, as a gzip body of groups (indexgz.go), reusing
// each group of prev whose repositories are the same and none changed.
func (h *Handler) encodeAnswer(repos map[string][]byte, prev map[string]*gzGroup, changed map[string]bool) *indexAnswer {
	names := make([]string, 0, len(repos))
	for name := range repos {
		names = append(names, name)
	}
	slices.Sort(names)
	group := func(key string, members []string, content func() []byte) *gzGroup {
		if g := prev[key]; g != nil && !slices.ContainsFunc(members, func(n string) bool { return changed[n] }) {
			return g
		}
		return compressGroup(key, content())
	}
	registry := h.registryJSON()
	groups := []*gzGroup{group("head:"+string(registry), nil, func() []byte {
		return slices.Concat([]byte(`{"Registry":`), registry, []byte(`,"Results":[`))
	})}
	var (
		cur      []string
		curBytes int
	)
	flush := func() {
		if len(cur) == 0 {
			return
		}
		first := len(groups) == 1
		members := cur
		groups = append(groups, group(groupKey(first, members), members, func() []byte {
			var b bytes.Buffer
			for i, name := range members {
				if i > 0 || !first {
					b.Write(comma)
				}
				b.Write(repos[name])
			}
			return b.Bytes()
		}))
		cur, curBytes = nil, 0
	}
	for _, name := range names {
		cur = append(cur, name)
		curBytes += len(repos[name])
		if endsGroup(name) || curBytes >= maxGroupBytes {
			flush()
		}
	}
	flush()
	groups = append(groups, group("tail", nil, func() []byte { return []byte("]}\n") }))

	gz, size, etag, placed := assembleGzip(groups)
	var held int64
	byKey := make(map[string]*gzGroup, len(placed))
	for _, g := range placed {
		byKey[g.key] = g
		held += int64(len(g.key))
	}
	for _, b := range repos {
		held += int64(len(b))
	}
	return &indexAnswer{etag: etag, gz: gz, size: size, repos: repos, groups: byKey, held: held}
}

var comma = []byte(",")

// jsonBytes encodes v as the index does: no HTML escaping (the body is
// JSON, never HTML), no trailing newline.
func jsonBytes(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only strings, string slices and maps of strings are encoded.
		panic(fmt.Sprintf("flatpak: encoding %T: %v", v, err))
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// indexImage is the index entry of img, or nil if the image is left out:
// its org.flatpak.metadata could not be passed on byte for byte (V25), or
// what it lists is larger than MaxIndexImageBytes. Only the protocol's
// labels and annotations are copied (indexKey), with icons rewritten
// (rewriteIcons).
func (h *Handler) indexImage(ctx context.Context, img *meta.Manifest, icons map[int]digest.Digest, base string) *indexImage {
	if !refConsistent(img) {
		h.log.WarnContext(ctx, "image left out of the Flatpak index: its org.flatpak.ref is not a valid Flatpak ref",
			"repo", img.Repo, "digest", img.Digest)
		return nil
	}
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

// refConsistent reports whether img's org.flatpak.ref, as a label and as
// an annotation (which flatpak <= 1.4 reads), is a valid ref wherever it is
// present, and the same in both places. An image with neither is not a
// Flatpak image and is listed as any image is.
func refConsistent(img *meta.Manifest) bool {
	label, hasLabel := img.Labels[LabelRef]
	ann, hasAnn := img.Annotations[LabelRef]
	if hasLabel {
		if _, err := ParseRef(label); err != nil {
			return false
		}
	}
	if hasAnn {
		if _, err := ParseRef(ann); err != nil {
			return false
		}
	}
	return !hasLabel || !hasAnn || label == ann
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

// acceptsGzip reports whether an Accept-Encoding header allows gzip
// (RFC 9110 §12.5.3): listed (or "*") without q=0.
func acceptsGzip(header string) bool {
	gzipQ, starQ := -1.0, -1.0
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if k, v, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
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
