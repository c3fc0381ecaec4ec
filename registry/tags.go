package registry

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// Listings (tags, catalog, referrers) are bounded twice: n entries at most
// (PageMax, V1) and MaxListingBytes of body. A page that would pass the
// byte cap ends early with a Link to the rest. Bodies are written entry by
// entry; no listing is marshalled whole.

// page is a listing page being measured: the bytes of its body so far and
// the cap. The body is prefix, entries separated by commas, suffix.
type page struct {
	size, limit int64
	entries     int
}

func newPage(limit int64, prefix, suffix string) *page {
	return &page{size: int64(len(prefix) + len(suffix)), limit: limit}
}

// fits reports whether an entry of n encoded bytes fits; the first entry
// always does, so paging progresses past an entry larger than the cap.
func (p *page) fits(n int) bool {
	add := int64(n)
	if p.entries > 0 {
		add++ // the comma
	}
	return p.entries == 0 || p.size+add <= p.limit
}

func (p *page) add(n int) {
	if p.entries > 0 {
		p.size++
	}
	p.size += int64(n)
	p.entries++
}

// stringPage cuts names (at most n+1 of them, in order) into the page to
// answer: those that fit in n entries and the byte cap, and whether more
// follow.
func (reg *Registry) stringPage(names []string, n int, prefix, suffix string) (kept [][]byte, more bool, size int64) {
	p := newPage(reg.opts.MaxListingBytes, prefix, suffix)
	for i, name := range names {
		if i == n {
			return kept, true, p.size
		}
		b, _ := json.Marshal(name) // a string always encodes
		if !p.fits(len(b)) {
			return kept, true, p.size
		}
		p.add(len(b))
		kept = append(kept, b)
	}
	return kept, false, p.size
}

// writeStrings writes prefix, entries joined by commas, and suffix, with
// the exact Content-Length.
func writeStrings(w http.ResponseWriter, r *http.Request, contentType, prefix string, entries [][]byte, suffix string, size int64) error {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	_, _ = bw.WriteString(prefix)
	for i, e := range entries {
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		_, _ = bw.Write(e)
	}
	_, _ = bw.WriteString(suffix)
	_ = bw.Flush() // a client gone mid-body: nothing left to tell it
	return nil
}

// tagsList serves GET /v2/<name>/tags/list with n and last.
func (reg *Registry) tagsList(w http.ResponseWriter, r *http.Request, name string) error {
	n, err := reg.pageSize(r)
	if err != nil {
		return err
	}
	last := r.URL.Query().Get("last")
	// One more than asked tells whether a next page exists; n=0 still
	// answers whether the repository exists.
	tags, err := reg.meta.Tags(r.Context(), name, last, n+1)
	if err != nil {
		return fmt.Errorf("tags of %s: %w", name, err)
	}
	quoted, _ := json.Marshal(name)
	prefix, suffix := `{"name":`+string(quoted)+`,"tags":[`, `]}`
	kept, more, size := reg.stringPage(tags, n, prefix, suffix)
	if more && len(kept) > 0 {
		setNextLink(w, "/v2/"+name+"/tags/list", n, tags[len(kept)-1])
	}
	return writeStrings(w, r, "application/json", prefix, kept, suffix, size)
}

// catalogBatch is how many repository names the catalog reads at a time
// when it filters them by what the caller may pull.
const catalogBatch = 500

// catalog serves GET /v2/_catalog with n and last. With Access, only the
// repositories the caller may pull are listed; pages still hold n of them
// when there are, and last and Link name only listed repositories.
func (reg *Registry) catalog(w http.ResponseWriter, r *http.Request) error {
	n, err := reg.pageSize(r)
	if err != nil {
		return err
	}
	repos, err := reg.visibleRepositories(r, r.URL.Query().Get("last"), n+1)
	if err != nil {
		return err
	}
	prefix, suffix := `{"repositories":[`, `]}`
	kept, more, size := reg.stringPage(repos, n, prefix, suffix)
	if more && len(kept) > 0 {
		setNextLink(w, "/v2/_catalog", n, repos[len(kept)-1])
	}
	return writeStrings(w, r, "application/json", prefix, kept, suffix, size)
}

// visibleRepositories returns up to want repository names after last that
// the request may pull, reading the store in bounded batches (memory is
// one batch and the result, however many repositories are hidden).
func (reg *Registry) visibleRepositories(r *http.Request, last string, want int) ([]string, error) {
	if reg.opts.Access == nil {
		repos, err := reg.meta.Repositories(r.Context(), last, want)
		if err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		return repos, nil
	}
	out := make([]string, 0, min(want, 64))
	for len(out) < want {
		batch, err := reg.meta.Repositories(r.Context(), last, catalogBatch)
		if err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		for _, repo := range batch {
			if reg.opts.Access.CatalogVisible(r, repo) {
				out = append(out, repo)
				if len(out) == want {
					break
				}
			}
		}
		if len(batch) < catalogBatch {
			break
		}
		last = batch[len(batch)-1]
		if err := r.Context().Err(); err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
	}
	return out, nil
}

// setNextLink sets the RFC 5988 Link header to the next page.
func setNextLink(w http.ResponseWriter, path string, n int, last string) {
	q := url.Values{"n": {strconv.Itoa(n)}, "last": {last}}
	w.Header().Set("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
}

var errPageFull = errors.New("page full")
