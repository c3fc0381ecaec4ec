package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

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
	if len(tags) > n {
		tags = tags[:n]
		if n > 0 {
			setNextLink(w, "/v2/"+name+"/tags/list", n, tags[n-1])
		}
	}
	if tags == nil {
		tags = []string{}
	}
	return writeJSON(w, r, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{name, tags})
}

// catalog serves GET /v2/_catalog with n and last.
func (reg *Registry) catalog(w http.ResponseWriter, r *http.Request) error {
	n, err := reg.pageSize(r)
	if err != nil {
		return err
	}
	repos, err := reg.meta.Repositories(r.Context(), r.URL.Query().Get("last"), n+1)
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	if len(repos) > n {
		repos = repos[:n]
		if n > 0 {
			setNextLink(w, "/v2/_catalog", n, repos[n-1])
		}
	}
	if repos == nil {
		repos = []string{}
	}
	return writeJSON(w, r, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{repos})
}

// setNextLink sets the RFC 5988 Link header to the next page.
func setNextLink(w http.ResponseWriter, path string, n int, last string) {
	q := url.Values{"n": {strconv.Itoa(n)}, "last": {last}}
	w.Header().Set("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
}

func writeJSON(w http.ResponseWriter, r *http.Request, contentType string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return nil
}
