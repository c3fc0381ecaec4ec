package flatpak

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/oci"
)

// serveIcon answers GET /icons/<sha256 hex>.png with an icon recorded at
// push time. Icons are content-addressed, so they are cached forever.
func (h *Handler) serveIcon(w http.ResponseWriter, r *http.Request, name string) {
	hexPart, ok := strings.CutSuffix(name, ".png")
	if !ok || len(hexPart) != 64 || strings.Trim(hexPart, "0123456789abcdef") != "" {
		http.NotFound(w, r)
		return
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, hexPart)
	tag := `"` + hexPart + `"`
	hdr := w.Header()
	if etagMatch(r.Header.Get("If-None-Match"), tag) {
		// The bytes of a digest never change: no need to look.
		hdr.Set("ETag", tag)
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	png, ok, err := h.md.Icon(r.Context(), d)
	if err != nil {
		h.internalError(w, r, "icon", err)
		return
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	hdr.Set("Content-Type", "image/png")
	hdr.Set("Content-Length", strconv.Itoa(len(png)))
	hdr.Set("ETag", tag)
	hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	hdr.Set("Content-Security-Policy", "default-src 'none'")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(png)
	}
}

// serveRepoFile answers GET /berth.flatpakrepo: the keyfile `flatpak
// remote-add --from` reads (flatpak-flatpakrepo(5)). OCI remotes have no
// GPG key: the index is trusted through TLS and the images through their
// digests.
func (h *Handler) serveRepoFile(w http.ResponseWriter, r *http.Request) {
	base := h.baseURL(r)
	var b strings.Builder
	b.WriteString("[Flatpak Repo]\n")
	writeKey(&b, "Title", h.opts.Title)
	writeKey(&b, "Url", "oci+"+base+"/")
	writeKey(&b, "Homepage", base+"/")
	writeKey(&b, "Comment", "Flatpak apps from the "+h.opts.Title+" registry")
	writeFile(w, r, "application/vnd.flatpak.repo", h.opts.RemoteName+".flatpakrepo", b.String())
}

// serveFlatpakref answers GET /flatpakref/<repository>/<tag>.flatpakref:
// the keyfile `flatpak install --from` reads (flatpak-flatpakref(5)) for
// the app or runtime the tag points at (for an index, its first image with
// an org.flatpak.ref label). The remote URL selects the tag with its
// fragment when it is not "latest".
func (h *Handler) serveFlatpakref(w http.ResponseWriter, r *http.Request, rest string) {
	ctx := r.Context()
	slash := strings.LastIndexByte(rest, '/')
	if slash < 0 {
		http.NotFound(w, r)
		return
	}
	repo, file := rest[:slash], rest[slash+1:]
	tag, ok := strings.CutSuffix(file, flatpakrefSuffix)
	if !ok || oci.ValidateName(repo) != nil || oci.ValidateTag(tag) != nil {
		http.NotFound(w, r)
		return
	}
	img, err := h.flatpakImage(r, repo, tag)
	switch {
	case errors.Is(err, meta.ErrTagNotFound), errors.Is(err, meta.ErrManifestNotFound), errors.Is(err, errNotFlatpak):
		http.Error(w, fmt.Sprintf("%s:%s is not a Flatpak app or runtime", repo, tag), http.StatusNotFound)
		return
	case err != nil:
		h.internalError(w, r, "flatpakref", err)
		return
	}
	ref, _ := ParseRef(img.Labels[LabelRef])
	base := h.baseURL(r)
	title := ref.ID
	app := h.refApp(ctx, img)
	if app.Name != "" {
		title = app.Name
	}
	remote := "oci+" + base + "/"
	if tag != "latest" {
		remote += "#" + tag
	}
	var b strings.Builder
	b.WriteString("[Flatpak Ref]\n")
	writeKey(&b, "Version", "1")
	writeKey(&b, "Name", ref.ID)
	writeKey(&b, "Branch", ref.Branch)
	writeKey(&b, "Title", title)
	writeKey(&b, "Url", remote)
	writeKey(&b, "IsRuntime", strconv.FormatBool(ref.Kind == "runtime"))
	writeKey(&b, "SuggestRemoteName", h.opts.RemoteName)
	if ref.Kind == "app" {
		runtimeRepo := img.Labels[LabelRuntimeRepo]
		if runtimeRepo == "" {
			runtimeRepo = base + RepoFilePath
		}
		writeKey(&b, "RuntimeRepo", runtimeRepo)
	}
	if app.Summary != "" {
		writeKey(&b, "Comment", app.Summary)
	}
	if app.Homepage != "" {
		writeKey(&b, "Homepage", app.Homepage)
	}
	key := meta.ManifestKey{Repo: img.Repo, Digest: img.Digest}
	if all, err := h.md.ManifestIcons(ctx, key); err == nil {
		icons := all[key]
		if d, ok := icons[128]; ok {
			writeKey(&b, "Icon", base+IconPath(d))
		} else if d, ok := icons[64]; ok {
			writeKey(&b, "Icon", base+IconPath(d))
		}
	}
	writeFile(w, r, "application/vnd.flatpak.ref", ref.ID+".flatpakref", b.String())
}

var errNotFlatpak = errors.New("not a Flatpak image")

// refApp is what a .flatpakref file takes from an image's AppStream data.
type refApp struct{ Name, Summary, Homepage string }

// appCache keeps refApp values by manifest digest (a digest fixes the
// labels), at most appCacheSize of them, so that a .flatpakref request
// parses a given image's AppStream data once.
type appCache struct {
	mu     sync.Mutex
	m      map[digest.Digest]refApp
	parses int // AppStream parses done (for tests)
}

const appCacheSize = 1024

// refApp returns what the AppStream label of img says, parsed once per
// digest; zero if there is none or it does not parse.
func (h *Handler) refApp(ctx context.Context, img *meta.Manifest) refApp {
	data, ok := img.Labels[LabelAppdata]
	if !ok {
		return refApp{}
	}
	c := &h.apps
	c.mu.Lock()
	if a, ok := c.m[img.Digest]; ok {
		c.mu.Unlock()
		return a
	}
	c.parses++
	c.mu.Unlock()
	var a refApp
	if app, err := ParseAppstream([]byte(data)); err == nil {
		a = refApp{Name: app.Name, Summary: app.Summary, Homepage: app.Homepage}
	} else {
		h.log.DebugContext(ctx, "appstream not parsed", "repo", img.Repo, "digest", img.Digest, "err", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[digest.Digest]refApp{}
	}
	if len(c.m) >= appCacheSize {
		for d := range c.m { // any one goes
			delete(c.m, d)
			break
		}
	}
	c.m[img.Digest] = a
	return a
}

// flatpakImage returns the image repo:tag points at, or for an index the
// first image it lists that has a valid org.flatpak.ref label.
func (h *Handler) flatpakImage(r *http.Request, repo, tag string) (*meta.Manifest, error) {
	ctx := r.Context()
	d, err := h.md.ResolveTag(ctx, repo, tag)
	if err != nil {
		return nil, err
	}
	m, err := h.md.GetManifest(ctx, repo, d)
	if err != nil {
		return nil, err
	}
	candidates := []*meta.Manifest{m}
	if oci.IsIndex(m.MediaType) {
		candidates = candidates[:0]
		for _, ref := range m.Refs {
			if ref.Kind != meta.RefManifest {
				continue
			}
			child, err := h.md.GetManifest(ctx, repo, ref.Digest)
			if errors.Is(err, meta.ErrManifestNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			candidates = append(candidates, child)
		}
	}
	for _, c := range candidates {
		if _, err := ParseRef(c.Labels[LabelRef]); err == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%s:%s: %w", repo, tag, errNotFlatpak)
}

// writeKey writes key=value with GKeyFile's escapes, so that a value
// cannot start a new line or group.
func writeKey(b *strings.Builder, key, value string) {
	b.WriteString(key)
	b.WriteByte('=')
	for i, c := range value {
		switch {
		case c == ' ' && i == 0:
			b.WriteString(`\s`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\\':
			b.WriteString(`\\`)
		case c < 0x20 || c == 0x7f:
			// other control characters have no escape: drop them
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('\n')
}

func writeFile(w http.ResponseWriter, r *http.Request, contentType, filename, body string) {
	hdr := w.Header()
	hdr.Set("Content-Type", contentType)
	hdr.Set("Content-Disposition", `attachment; filename="`+strings.Map(safeFilenameRune, filename)+`"`)
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	hdr.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte(body))
	}
}

func safeFilenameRune(c rune) rune {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '-', c == '_':
		return c
	}
	return '_'
}

// Ref is a parsed Flatpak ref, kind/id/arch/branch.
type Ref struct {
	Kind, ID, Arch, Branch string
}

// ParseRef parses an org.flatpak.ref value, "app/ID/ARCH/BRANCH" or
// "runtime/ID/ARCH/BRANCH".
func ParseRef(s string) (Ref, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 4 || (parts[0] != "app" && parts[0] != "runtime") || parts[1] == "" || parts[2] == "" || parts[3] == "" {
		return Ref{}, fmt.Errorf("flatpak ref %q is not app|runtime/ID/ARCH/BRANCH", s)
	}
	return Ref{Kind: parts[0], ID: parts[1], Arch: parts[2], Branch: parts[3]}, nil
}

// String formats the ref as kind/id/arch/branch.
func (r Ref) String() string { return r.Kind + "/" + r.ID + "/" + r.Arch + "/" + r.Branch }
