package flatpak

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/etag"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/oci"
)

// serveIcon answers GET /icons/<sha256 hex>.png with an icon recorded at
// push time, if a repository the requester may pull shows it (else 404,
// as for an unknown icon). Icons are content-addressed, so they are cached
// forever (privately when Options.Access filters them). A request
// revalidating an icon it holds gets 304 without a look: it names the
// bytes it already has, whatever it may see.
func (h *Handler) serveIcon(w http.ResponseWriter, r *http.Request, name string) {
	hexPart, ok := strings.CutSuffix(name, ".png")
	if !ok || len(hexPart) != 64 || strings.Trim(hexPart, "0123456789abcdef") != "" {
		http.NotFound(w, r)
		return
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, hexPart)
	tag := `"` + hexPart + `"`
	hdr := w.Header()
	cacheControl := "public, max-age=31536000, immutable"
	_, canPull := h.view(r)
	if canPull != nil {
		// Not for shared caches: another client may not see it.
		cacheControl = "private, max-age=31536000, immutable"
	}
	inm := r.Header.Get("If-None-Match")
	if etag.NoneMatch(inm, tag, false) {
		// The bytes of a digest never change: no need to look (the client
		// names the bytes it holds, so the answer reveals nothing). A "*"
		// matches only an icon that exists, so it waits for the look.
		hdr.Set("ETag", tag)
		hdr.Set("Cache-Control", cacheControl)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if canPull != nil {
		// Served only if a repository the requester may pull shows it;
		// otherwise exactly as an unknown icon is.
		visible := false
		err := h.md.IconRepositories(r.Context(), d, func(repo string) bool {
			visible = canPull(repo)
			return !visible
		})
		if err != nil {
			h.internalError(w, r, "icon", err)
			return
		}
		if !visible {
			http.NotFound(w, r)
			return
		}
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
	if etag.NoneMatch(inm, tag, true) { // "*", now that the icon is known to exist
		hdr.Set("ETag", tag)
		hdr.Set("Cache-Control", cacheControl)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Type", "image/png")
	hdr.Set("Content-Length", strconv.Itoa(len(png)))
	hdr.Set("ETag", tag)
	hdr.Set("Cache-Control", cacheControl)
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
	writeURLKey(&b, "Url", "oci+", base+"/")
	writeURLKey(&b, "Homepage", "", base+"/")
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
	if _, canPull := h.view(r); canPull != nil && !canPull(repo) {
		// Exactly the answer for a tag that does not exist.
		http.Error(w, notFlatpakMessage(repo, tag), http.StatusNotFound)
		return
	}
	img, err := h.flatpakImage(r, repo, tag)
	switch {
	case errors.Is(err, meta.ErrTagNotFound), errors.Is(err, meta.ErrManifestNotFound), errors.Is(err, errNotFlatpak):
		http.Error(w, notFlatpakMessage(repo, tag), http.StatusNotFound)
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
	writeURLKey(&b, "Url", "oci+", strings.TrimPrefix(remote, "oci+"))
	writeKey(&b, "IsRuntime", strconv.FormatBool(ref.Kind == "runtime"))
	writeKey(&b, "SuggestRemoteName", h.opts.RemoteName)
	if ref.Kind == "app" {
		// The image's own runtime-repo, if it is an http(s) URL;
		// else this remote.
		runtimeRepo := img.Labels[LabelRuntimeRepo]
		if !isHTTPURL(runtimeRepo) {
			runtimeRepo = base + RepoFilePath
		}
		writeURLKey(&b, "RuntimeRepo", "", runtimeRepo)
	}
	if app.Summary != "" {
		writeKey(&b, "Comment", app.Summary)
	}
	if app.Homepage != "" {
		writeURLKey(&b, "Homepage", "", app.Homepage)
	}
	key := meta.ManifestKey{Repo: img.Repo, Digest: img.Digest}
	if all, err := h.md.ManifestIcons(ctx, key); err == nil {
		icons := all[key]
		if d, ok := icons[128]; ok {
			writeURLKey(&b, "Icon", "", base+IconPath(d))
		} else if d, ok := icons[64]; ok {
			writeURLKey(&b, "Icon", "", base+IconPath(d))
		}
	}
	writeFile(w, r, "application/vnd.flatpak.ref", ref.ID+".flatpakref", b.String())
}

var errNotFlatpak = errors.New("not a Flatpak image")

// notFlatpakMessage is the 404 body for a .flatpakref that cannot be
// served: the tag does not exist, is not a Flatpak, or is hidden.
func notFlatpakMessage(repo, tag string) string {
	return fmt.Sprintf("%s:%s is not a Flatpak app or runtime", repo, tag)
}

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

// writeKey writes key=value so that the value cannot start a new line, a
// new key or a new group, nor hide what it says: line breaks and tabs
// become spaces; other control characters (C0, DEL, C1), the
// bidirectional controls and invalid UTF-8 are dropped; a backslash is
// escaped as GKeyFile reads it, and a leading space kept with \s.
func writeKey(b *strings.Builder, key, value string) {
	b.WriteString(key)
	b.WriteByte('=')
	first := true
	for i := 0; i < len(value); {
		c, n := utf8.DecodeRuneInString(value[i:])
		i += n
		switch {
		case c == utf8.RuneError && n <= 1:
			continue // invalid UTF-8
		case c == '\n' || c == '\r' || c == '\t':
			c = ' '
		case !keyfileRune(c):
			continue
		}
		switch {
		case c == ' ' && first:
			b.WriteString(`\s`)
		case c == '\\':
			b.WriteString(`\\`)
		default:
			b.WriteRune(c)
		}
		first = false
	}
	b.WriteByte('\n')
}

// keyfileRune reports whether c may appear in a keyfile value as it is.
func keyfileRune(c rune) bool {
	switch {
	case c < 0x20, c == 0x7f, c >= 0x80 && c <= 0x9f:
		return false
	case c >= 0x202a && c <= 0x202e, c >= 0x2066 && c <= 0x2069, c == 0x200e, c == 0x200f, c == 0x061c:
		return false // bidirectional embeddings, overrides, isolates, marks
	}
	return true
}

// writeURLKey writes key=prefix+u if u is an absolute http or https URL
// with nothing a keyfile would change (no control or white space
// characters); otherwise (a javascript:, file: or relative URL, say) the
// key is left out.
func writeURLKey(b *strings.Builder, key, prefix, u string) {
	if !isHTTPURL(u) || strings.IndexFunc(u, func(c rune) bool { return c <= ' ' || !keyfileRune(c) }) >= 0 {
		return
	}
	writeKey(b, key, prefix+u)
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
// "runtime/ID/ARCH/BRANCH", checking each part as flatpak itself does
// (ValidName, ValidArch, ValidBranch): a ref flatpak would refuse is
// refused here, so nothing Berth shows or writes (the index, the
// catalogue's commands, .flatpakref files) carries one.
func ParseRef(s string) (Ref, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 4 || (parts[0] != "app" && parts[0] != "runtime") {
		return Ref{}, fmt.Errorf("flatpak ref %q is not app|runtime/ID/ARCH/BRANCH", s)
	}
	r := Ref{Kind: parts[0], ID: parts[1], Arch: parts[2], Branch: parts[3]}
	switch {
	case !ValidName(r.ID):
		return Ref{}, fmt.Errorf("flatpak ref %q: %q is not a valid application id", s, r.ID)
	case !ValidArch(r.Arch):
		return Ref{}, fmt.Errorf("flatpak ref %q: %q is not a valid architecture", s, r.Arch)
	case !ValidBranch(r.Branch):
		return Ref{}, fmt.Errorf("flatpak ref %q: %q is not a valid branch", s, r.Branch)
	}
	return r, nil
}

// String formats the ref as kind/id/arch/branch.
func (r Ref) String() string { return r.Kind + "/" + r.ID + "/" + r.Arch + "/" + r.Branch }
