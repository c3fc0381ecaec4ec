package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/flatpak"
)

// pageNames are the templates under templates/, each rendered inside
// layout.html.
var pageNames = []string{"home", "search", "app", "repos", "repo", "manifest", "error"}

// pageInfo is what the layout needs of a page.
type pageInfo struct {
	Title string
	Nav   string // the active navigation entry: apps, repos, search
	Query string // the search box's value
}

// pageData is what every template gets.
type pageData struct {
	pageInfo
	Site     string
	RepoFile string // the .flatpakrepo file's path; "" when the remote is off
	Data     any
}

func (h *Handler) parseTemplates() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"size": func(n int64) string {
			if n < 0 {
				return "unknown"
			}
			return humanSize(n)
		},
		"time":   humanTime,
		"iso":    isoTime,
		"ago":    func(t time.Time) string { return ago(t, h.opts.Now()) },
		"static": h.assetURL,
		"join":   strings.Join,
		"date": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2 Jan 2006")
		},
		"add": func(a, b int) int { return a + b },
	}
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// render writes a whole page, or a 500 if the template fails (the page is
// rendered into a buffer first, so nothing half-written goes out).
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, info pageInfo, data any) {
	body, err := h.renderBytes(name, info, data)
	if err != nil {
		h.renderFailed(w, r, name, err)
		return
	}
	writePage(w, r, status, body)
}

// renderFailed answers a 500 for a page whose template failed.
func (h *Handler) renderFailed(w http.ResponseWriter, r *http.Request, name string, err error) {
	h.log.ErrorContext(r.Context(), "catalogue: rendering", "page", name, "err", err)
	http.Error(w, "500 internal error; request id "+w.Header().Get("X-Request-Id"), http.StatusInternalServerError)
}

// renderBytes renders page name inside the layout. The result depends on
// info and data alone (and the Handler's options), never on the request.
func (h *Handler) renderBytes(name string, info pageInfo, data any) ([]byte, error) {
	h.renders.Add(1)
	var buf bytes.Buffer
	pd := pageData{pageInfo: info, Site: h.opts.Title, Data: data}
	if !h.opts.FlatpakDisabled {
		pd.RepoFile = flatpak.RepoFilePath
	}
	pd.Title = cleanLine(pd.Title)
	if err := h.pages[name].ExecuteTemplate(&buf, "layout", pd); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writePage answers a rendered page.
func writePage(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

type errorData struct{ Heading, Message string }

func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, status int, heading, msg string) {
	h.render(w, r, status, "error", pageInfo{Title: heading}, errorData{Heading: heading, Message: msg})
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request, msg string) {
	h.errorPage(w, r, http.StatusNotFound, "Not found", msg)
}

func (h *Handler) serverError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	h.log.ErrorContext(r.Context(), "catalogue: request failed", "path", r.URL.Path, "err", err)
	h.errorPage(w, r, http.StatusInternalServerError, "Something went wrong",
		"The page could not be built. The request id is "+w.Header().Get("X-Request-Id")+".")
}

// maxRawShown bounds the manifest JSON a page shows.
const maxRawShown = 64 << 10

// parseManifestDoc reads the fields the manifest page lists, and the
// manifest as indented, cleaned JSON ("" if it is too large to show).
func parseManifestDoc(content []byte) (manifestDoc, string) {
	var doc manifestDoc
	_ = json.Unmarshal(content, &doc) // stored manifests were validated at push
	if len(content) > maxRawShown {
		return doc, ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, content, "", "  "); err != nil {
		return doc, stripControls(string(content))
	}
	return doc, stripControls(buf.String())
}
