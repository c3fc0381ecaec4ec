package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Paging limits of search and listings.
const (
	defaultPerPage = 20
	maxPerPage     = 100
	maxQueryLen    = 200
	maxResultTags  = 10
)

// query is a parsed search request.
type query struct {
	Q       string // trimmed, as typed
	Kind    string // "", "app", "runtime", "image"
	Arch    string // OCI name or ""
	Page    int    // from 1
	PerPage int
}

var errBadParam = errors.New("bad parameter")

// parseQuery reads q, kind, arch, page and per_page.
func parseQuery(v url.Values, perPage int) (query, error) {
	q := query{Q: strings.TrimSpace(cleanLine(v.Get("q"))), Kind: v.Get("kind"), Arch: ociArch(v.Get("arch")), Page: 1, PerPage: perPage}
	if len(q.Q) > maxQueryLen {
		return q, badParam("q: longer than %d bytes", maxQueryLen)
	}
	switch q.Kind {
	case "", "app", "runtime", "image":
	default:
		return q, badParam("kind: %q is not one of app, runtime, image", q.Kind)
	}
	if len(q.Arch) > 32 || strings.ContainsAny(q.Arch, " /") {
		return q, badParam("arch: %q is not an architecture", q.Arch)
	}
	var err error
	if q.Page, err = intParam(v, "page", 1, 1, 1<<20); err != nil {
		return q, err
	}
	if q.PerPage, err = intParam(v, "per_page", perPage, 1, maxPerPage); err != nil {
		return q, err
	}
	return q, nil
}

func intParam(v url.Values, name string, def, lo, hi int) (int, error) {
	s := v.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo {
		return 0, badParam("%s: %q is not a whole number of at least %d", name, s, lo)
	}
	return min(n, hi), nil
}

type paramError struct{ msg string }

func (e *paramError) Error() string        { return e.msg }
func (e *paramError) Is(target error) bool { return target == errBadParam }

func badParam(format string, args ...any) error {
	return &paramError{msg: fmt.Sprintf(format, args...)}
}

// Match tiers, best first.
const (
	tierExact  = iota // id, name or last id component equals the query
	tierPrefix        // one of them, or a word of the name, starts with it
	tierName          // id or name contains it
	tierText          // every word is in the name, id, summary, keywords…
	tierTag           // a tag contains it
	noMatch
)

// hit is one ranked result.
type hit struct {
	it      *item
	tier    int
	sub     int      // within the tier: which field matched, best first
	matched []string // matching tags
}

// search ranks the snapshot's items against q; visible filters by
// repository (nil: all). It returns one page and the total.
func (s *snapshot) search(q query, visible func(*item) *item) ([]hit, int) {
	lq := strings.ToLower(q.Q)
	terms := strings.Fields(lq)
	hits := make([]hit, 0, 64)
	for _, it := range s.items {
		// Ranked on what the requester may see: a hidden build's kind,
		// name, tags or architectures must not make an app match (V14).
		if visible != nil {
			if it = visible(it); it == nil {
				continue
			}
		}
		if q.Kind != "" && it.Kind != q.Kind {
			continue
		}
		if q.Arch != "" && !slices.Contains(it.Archs, q.Arch) {
			continue
		}
		tier, sub, matched := rank(it, lq, terms)
		if tier == noMatch {
			continue
		}
		hits = append(hits, hit{it: it, tier: tier, sub: sub, matched: matched})
	}
	// Stable: hits are in s.items' order (kind, name, id), which breaks
	// ties in ranking.
	slices.SortStableFunc(hits, func(a, b hit) int {
		if a.tier != b.tier {
			return cmpInt(a.tier, b.tier)
		}
		return cmpInt(a.sub, b.sub)
	})
	total := len(hits)
	start := min((q.Page-1)*q.PerPage, total)
	end := min(start+q.PerPage, total)
	return hits[start:end], total
}

// rank returns how well it matches the lower-cased query (and its words):
// the tier, the place within the tier (the name before the last id
// component before the whole id before a word of the name), and the tags
// that contain the query.
func rank(it *item, lq string, terms []string) (tier, sub int, matched []string) {
	if lq == "" {
		return tierExact, 0, nil
	}
	switch {
	case it.lname == lq || it.lid == lq:
		return tierExact, 0, nil
	case it.llast == lq:
		return tierExact, 1, nil
	case strings.HasPrefix(it.lname, lq):
		return tierPrefix, 0, nil
	case strings.HasPrefix(it.llast, lq):
		return tierPrefix, 1, nil
	case strings.HasPrefix(it.lid, lq):
		return tierPrefix, 2, nil
	}
	for _, w := range it.lwords {
		if strings.HasPrefix(w, lq) {
			return tierPrefix, 3, nil
		}
	}
	if strings.Contains(it.lname, lq) {
		return tierName, 0, nil
	}
	if strings.Contains(it.lid, lq) {
		return tierName, 1, nil
	}
	if len(terms) > 0 && allTerms(it, terms) {
		return tierText, 0, nil
	}
	if !strings.Contains(it.ltagsAll, lq) {
		return noMatch, 0, nil
	}
	for i, t := range it.ltags {
		if strings.Contains(t, lq) {
			if matched == nil {
				matched = make([]string, 0, 4)
			}
			matched = append(matched, it.Tags[i])
			if len(matched) == maxResultTags {
				break
			}
		}
	}
	if matched != nil {
		return tierTag, 0, matched
	}
	return noMatch, 0, nil
}

func allTerms(it *item, terms []string) bool {
	for _, t := range terms {
		if !strings.Contains(it.ltext, t) && !strings.Contains(it.lid, t) && !strings.Contains(it.lname, t) {
			return false
		}
	}
	return true
}

// searchResponse is the JSON of GET /api/v1/search (see the package doc).
type searchResponse struct {
	Query   string         `json:"query"`
	Kind    string         `json:"kind"`
	Arch    string         `json:"arch"`
	Page    int            `json:"page"`
	PerPage int            `json:"per_page"`
	Total   int            `json:"total"`
	Results []searchResult `json:"results"`
	// Truncated: the page's results did not all fit in
	// Options.MaxAnswerBytes; the first ones that did are listed.
	Truncated bool `json:"truncated,omitempty"`
}

// searchAnswer is searchResponse as written: the results already
// encoded, each counted against the byte cap.
type searchAnswer struct {
	Query     string            `json:"query"`
	Kind      string            `json:"kind"`
	Arch      string            `json:"arch"`
	Page      int               `json:"page"`
	PerPage   int               `json:"per_page"`
	Total     int               `json:"total"`
	Results   []json.RawMessage `json:"results"`
	Truncated bool              `json:"truncated,omitempty"`
}

type searchResult struct {
	Kind          string   `json:"kind"`
	ID            string   `json:"id"`
	Name          string   `json:"name"`
	Summary       string   `json:"summary"`
	Developer     string   `json:"developer"`
	Icon          string   `json:"icon"`
	URL           string   `json:"url"`
	Repositories  []string `json:"repositories"`
	Architectures []string `json:"architectures"`
	Tags          []string `json:"tags"`
	TagCount      int      `json:"tag_count"`
	MatchedTags   []string `json:"matched_tags"`
	Updated       string   `json:"updated"`
	// Installs30d and Updates30d: apps and runtimes only, over the
	// repositories the requester may read.
	Installs30d *int64 `json:"installs_30d,omitempty"`
	Updates30d  *int64 `json:"updates_30d,omitempty"`
}

func toResult(h hit) searchResult {
	it := h.it
	r := searchResult{
		Kind: it.Kind, ID: it.ID, Name: it.Name, Summary: it.Summary, Developer: it.Developer,
		Icon: it.Icon.Large, URL: it.URL, Repositories: nonNil(it.Repos), Architectures: nonNil(it.Archs),
		Tags: nonNil(it.Tags[:min(len(it.Tags), maxResultTags)]), TagCount: len(it.Tags),
		MatchedTags: nonNil(h.matched), Updated: isoTime(it.Updated),
	}
	return r
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// apiSearch serves GET /api/v1/search.
func (h *Handler) apiSearch(w http.ResponseWriter, r *http.Request, s *snapshot) {
	q, err := parseQuery(r.URL.Query(), defaultPerPage)
	if err != nil {
		h.jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	hits, total := s.search(q, h.visibleItem(r, s))
	iv := h.installs(r.Context())
	resp := searchAnswer{Query: q.Q, Kind: q.Kind, Arch: q.Arch, Page: q.Page, PerPage: q.PerPage, Total: total,
		Results: make([]json.RawMessage, 0, len(hits))}
	// The answer is at most MaxAnswerBytes: each result is encoded on its
	// own and counted (a result lists every readable repository of an
	// app, which a pusher can make many), and the page stops at the
	// first that would not fit. searchOverhead covers the other fields.
	size := int64(searchOverhead + len(q.Q)*6)
	for _, hi := range hits {
		res := toResult(hi)
		if iv != nil && (res.Kind == "app" || res.Kind == "runtime") {
			c := h.appInstalls(r, iv, res.ID)
			res.Installs30d, res.Updates30d = &c.Installs, &c.Updates
		}
		b, err := json.Marshal(res)
		if err != nil {
			h.log.ErrorContext(r.Context(), "catalogue: encoding a search result", "err", err)
			continue
		}
		if size+int64(len(b))+1 > h.opts.MaxAnswerBytes {
			resp.Truncated = true
			break
		}
		size += int64(len(b)) + 1
		resp.Results = append(resp.Results, b)
	}
	h.writeJSON(w, r, http.StatusOK, resp)
}

// searchOverhead bounds the bytes of a search answer other than its
// results and query (JSON escapes at most sextuple a byte of the query).
const searchOverhead = 256

// visibleItem returns the filter search applies when repositories are
// access-controlled (V14): an item shows only if one of its repositories
// is readable, and then lists only those. nil when everything is readable.
func (h *Handler) visibleItem(r *http.Request, s *snapshot) func(*item) *item {
	if h.opts.CanRead == nil {
		return nil
	}
	return func(it *item) *item {
		var repos []string
		for _, repo := range it.Repos {
			if h.opts.CanRead(r, repo) {
				repos = append(repos, repo)
			}
		}
		switch len(repos) {
		case 0:
			return nil
		case len(it.Repos):
			return it
		}
		if it.Kind == "image" {
			return it
		}
		// Some builds of the app are hidden: describe it from the others.
		if av := s.appByID[it.ID]; av != nil {
			if v := h.visibleApp(r.Context(), r, av); v != nil {
				return appItem(v)
			}
		}
		return nil
	}
}
