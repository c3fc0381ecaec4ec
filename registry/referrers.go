package registry

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/oci"
)

// referrersRetain: a referrers page whose body is at most this is kept
// while it is measured and written at once; a larger one is measured, then
// read again and written entry by entry, so a request holds about one
// referrer at a time however large the page (the audit's 30 referrers of
// large annotations took 608 MB per request).
const referrersRetain = 64 << 10

const referrersPrefix = `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeImageIndex + `","manifests":[`

// referrers serves GET /v2/<name>/referrers/<digest>[?artifactType=]: always
// an image index, empty when nothing refers to the digest. Pages end at n
// entries or MaxListingBytes of body, whichever comes first, with a Link
// to the next (the spec lets the index be paged with Link).
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
	const suffix = `]}`
	// Pass 1: measure. One more than asked tells whether there is a next
	// page. Entries are encoded (writeReferrer, which allocates nothing)
	// into a counter, or while the page is small into the body kept for
	// writing.
	p := newPage(reg.opts.MaxListingBytes, referrersPrefix, suffix)
	var (
		lastIn   digest.Digest
		more     bool
		retained bytes.Buffer
		retain   = true
		count    countWriter
	)
	err = reg.meta.EachReferrer(r.Context(), name, d, at, after, n+1, func(m meta.Descriptor) error {
		if p.entries == n {
			more = true
			return errPageFull
		}
		count = 0
		if err := writeReferrer(&count, m); err != nil {
			return err
		}
		size := int(count)
		mark := retained.Len()
		if retain && retained.Len()+size+1 > referrersRetain {
			retain = false
			retained = bytes.Buffer{}
		}
		if retain {
			if p.entries > 0 {
				retained.WriteByte(',')
			}
			_ = writeReferrer(&retained, m)
		}
		if !p.fits(size) {
			if retain {
				retained.Truncate(mark)
			}
			more = true
			return errPageFull
		}
		p.add(size)
		lastIn = m.Digest
		return nil
	})
	if errors.Is(err, meta.ErrRepoNotFound) {
		err = nil // no repository, no referrers: still an index
	}
	if err != nil && !errors.Is(err, errPageFull) {
		return fmt.Errorf("referrers of %s@%s: %w", name, d, err)
	}
	h := w.Header()
	if more && p.entries > 0 {
		v := url.Values{"n": {strconv.Itoa(n)}, "last": {lastIn.String()}}
		if at != "" {
			v.Set("artifactType", at)
		}
		h.Set("Link", "</v2/"+name+"/referrers/"+d.String()+"?"+v.Encode()+`>; rel="next"`)
	}
	if at != "" {
		h.Set("OCI-Filters-Applied", "artifactType")
	}
	if retain {
		return writeStrings(w, r, oci.MediaTypeImageIndex, referrersPrefix, [][]byte{retained.Bytes()}, suffix, p.size)
	}
	// Pass 2: the same range again, written as it is read. The Link is
	// already set from pass 1, so the page ends at its last entry even if
	// referrers were pushed or deleted in between (the body then differs
	// from pass 1's measure by those, hence no Content-Length).
	h.Set("Content-Type", oci.MediaTypeImageIndex)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	_, _ = bw.WriteString(referrersPrefix)
	first := true
	err = reg.meta.EachReferrer(r.Context(), name, d, at, after, -1, func(m meta.Descriptor) error {
		if m.Digest > lastIn {
			return errPageFull
		}
		if !first {
			_ = bw.WriteByte(',')
		}
		first = false
		return writeReferrer(bw, m)
	})
	if err != nil && !errors.Is(err, errPageFull) {
		// The status is sent: end the body short so the client sees
		// invalid JSON rather than a page that looks whole.
		reg.log.WarnContext(r.Context(), "referrers body cut short", "repo", name, "digest", d, "err", err)
		_ = bw.Flush()
		return nil
	}
	_, _ = bw.WriteString(suffix)
	_ = bw.Flush()
	return nil
}
