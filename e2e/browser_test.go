package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// browserTimeout bounds one page's load and checks.
const browserTimeout = 60 * time.Second

// Screenshots are written to <repo>/test-output/screenshots/; with
// BERTH_UPDATE_SCREENSHOTS=1 they are also copied to <repo>/docs/screenshots/
// (committed; the README shows them), so a test run leaves the tree clean. A page
// taller than this is cut, to keep the files small.
const maxShotHeight = 1800

// findChromium returns the Chromium binary (apt package chromium): from
// BERTH_CHROMIUM, else PATH. Missing, it skips, or fails when strict().
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BERTH_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	how := "install the Debian package chromium (./scripts/install-deps.sh does)"
	if strict() {
		t.Fatalf("chromium not found on PATH; %s", how)
	}
	t.Skipf("chromium not found on PATH; %s (set BERTH_E2E=1 to make this a failure)", how)
	return ""
}

// browserSite is one berth with real content: Flatpak apps built by the
// shared fixtures script and pushed with skopeo, and server images (tags,
// a multi-platform index, referrers, hostile labels) pushed with crane and
// oras.
type browserSite struct {
	addr  string
	tools *toolRunner
	work  string

	webappV10 string // digest of library/webapp:v10, which has referrers
	multi     string // digest of the tools/multi:1.0 index
}

func (s *browserSite) ref(repo, tag string) string { return s.addr + "/" + repo + ":" + tag }

// Hostile strings pushed as labels and annotations: the pages must show
// them as text (V20) without their control characters (V26).
const (
	xssLabel      = `<script>alert("label")</script>`
	xssAnnotation = `<img src=x onerror=alert(2)>`
	escLabel      = "red\x1b[31malert\x1b[0m"
)

// tinyLayer writes an uncompressed tar of one file.
func (s *browserSite) tinyLayer(t *testing.T, name string, content []byte) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "srv/" + name, Mode: 0o644, Size: int64(len(content)), ModTime: mtime}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.work, name+".tar")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// image pushes a one-layer image for platform as repo:tag, with extra
// crane mutate arguments (labels, annotations), and returns its digest.
func (s *browserSite) image(t *testing.T, repo, tag, platform string, size int, mutate ...string) string {
	t.Helper()
	name := strings.NewReplacer("/", "-", ":", "-").Replace(repo + "-" + tag + "-" + platform)
	layer := s.tinyLayer(t, name, randomBytes(t, size))
	// append tags the bare image, mutate moves the tag to the final one:
	// the bare manifest stays, untagged, as after a rebuild.
	s.tools.run(t, "crane", "append", "--insecure", "--oci-empty-base", "-f", layer, "-t", s.ref(repo, tag))
	args := append([]string{"mutate", "--insecure", s.ref(repo, tag), "--set-platform", platform, "-t", s.ref(repo, tag)}, mutate...)
	s.tools.run(t, "crane", args...)
	d := strings.TrimSpace(string(s.tools.run(t, "crane", "digest", "--insecure", s.ref(repo, tag)).Stdout))
	return d
}

func (s *browserSite) push(t *testing.T, fixtures string) {
	t.Helper()
	skopeo := func(dir, repo, tag string) {
		s.tools.run(t, "skopeo", "copy", "--quiet", "--dest-tls-verify=false",
			"oci:"+filepath.Join(fixtures, dir), "docker://"+s.ref(repo, tag))
	}
	skopeo("org.berth.Platform", "org.berth.platform", "latest")
	skopeo("org.berth.Bare", "org.berth.bare", "latest")
	skopeo("org.berth.Hello", "org.berth.hello", "1.0")
	skopeo("org.berth.Hello-v2", "org.berth.hello", "2.0")
	s.tools.run(t, "crane", "tag", "--insecure", s.ref("org.berth.hello", "2.0"), "latest")

	// Server images: tags whose names sort differently by byte and by
	// number, hostile labels and annotations, an index, referrers.
	for _, tag := range []string{"v1", "v2"} {
		s.image(t, "library/webapp", tag, "linux/amd64", 40<<10,
			"-l", "org.opencontainers.image.title=webapp "+tag)
	}
	s.webappV10 = s.image(t, "library/webapp", "v10", "linux/amd64", 90<<10,
		"-l", "org.opencontainers.image.description="+xssLabel,
		"-l", "org.example.escape="+escLabel,
		"-a", "org.opencontainers.image.source="+xssAnnotation,
		"--cmd", "/srv/webapp,--listen=:8080")
	s.tools.run(t, "crane", "tag", "--insecure", s.ref("library/webapp", "v10"), "latest")
	sbom := filepath.Join(s.work, "sbom.spdx.json")
	if err := os.WriteFile(sbom, []byte(`{"spdxVersion":"SPDX-2.3","name":"webapp"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s.tools.runIn(t, s.work, "oras", "attach", "--plain-http", "--artifact-type", "application/spdx+json",
		s.ref("library/webapp", "v10"), "sbom.spdx.json:application/spdx+json")
	s.tools.runIn(t, s.work, "oras", "attach", "--plain-http", "--artifact-type", "application/vnd.dev.cosign.artifact.sig.v1+json",
		"--annotation", "org.opencontainers.image.created=2026-01-02T03:04:05Z",
		s.ref("library/webapp", "v10"))

	amd := s.image(t, "tools/multi", "amd64", "linux/amd64", 120<<10)
	arm := s.image(t, "tools/multi", "arm64", "linux/arm64/v8", 110<<10)
	s.tools.run(t, "crane", "index", "append", "--insecure",
		"-m", s.addr+"/tools/multi@"+amd, "-m", s.addr+"/tools/multi@"+arm, "-t", s.ref("tools/multi", "1.0"))
	s.multi = strings.TrimSpace(string(s.tools.run(t, "crane", "digest", "--insecure", s.ref("tools/multi", "1.0")).Stdout))

	for _, repo := range []string{"team/api-2", "team/api-10"} {
		s.image(t, repo, "stable", "linux/amd64", 8<<10)
	}
}

// browser drives one headless Chromium; it collects the console (calls,
// exceptions, the browser log: failed loads, CSP violations) and any
// JavaScript dialog (an XSS payload that ran would open one).
type browser struct {
	ctx     context.Context
	phone   bool // emulating a phone
	mu      sync.Mutex
	console []chromedp.ConsoleMessage
	dialogs []string
}

func newBrowser(t *testing.T, exe string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) { cmd.Env = cleanEnv() }),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // start the browser and its tab
		t.Fatalf("starting chromium: %v", err)
	}
	b := &browser{ctx: ctx}
	messages := chromedp.Console(ctx)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, ev.Type.String()+": "+ev.Message)
			b.mu.Unlock()
			// Close it, or the page stays blocked.
			go chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
				_, err := cdp.Call(ctx, t, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
				return err
			}))
		}
	}()
	return b
}

// problems returns the console errors and dialogs since mark.
func (b *browser) problems(mark int) (msgs []string, next int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.console[mark:] {
		if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleWarning {
			msgs = append(msgs, fmt.Sprintf("%s (%s:%d)", m.String(), m.URL, m.Line))
		}
	}
	for _, d := range b.dialogs {
		msgs = append(msgs, "dialog opened: "+d)
	}
	b.dialogs = nil
	return msgs, len(b.console)
}

func (b *browser) mark() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.console)
}

// open loads a page and waits until it and its images have loaded.
func (b *browser) open(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	b.waitImages(t, ctx)
}

// waitImages waits until every image of the page has finished loading
// (successfully or not); lazy images are made eager first.
func (b *browser) waitImages(t *testing.T, ctx context.Context) {
	t.Helper()
	const js = `(() => {
		document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; });
		return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete);
	})()`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js)); err != nil {
		t.Fatalf("waiting for images: %v", err)
	}
}

func (b *browser) eval(t *testing.T, expr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// shot saves the page (cut at maxShotHeight, or at the screen's height on
// a phone) as name.png in test-output/screenshots (and docs/screenshots
// with BERTH_UPDATE_SCREENSHOTS=1).
func (b *browser) shot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.Action[[]byte](func(ctx context.Context, tg *chromedp.Target) ([]byte, error) {
		m, err := cdp.Call(ctx, tg, page.GetLayoutMetrics, cdp.Empty{})
		if err != nil {
			return nil, err
		}
		limit := float64(maxShotHeight)
		if b.phone {
			limit = float64(m.CSSLayoutViewport.ClientHeight)
		}
		w, h := m.CSSContentSize.Width, min(m.CSSContentSize.Height, limit)
		r, err := cdp.Call(ctx, tg, page.CaptureScreenshot, page.CaptureScreenshotParams{
			Format: page.CaptureScreenshotFormatPng, Clip: &page.Viewport{Width: w, Height: h, Scale: 1},
			CaptureBeyondViewport: ptrTo(true), FromSurface: ptrTo(true),
		})
		if err != nil {
			return nil, err
		}
		return r.Data, nil
	}))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dirs := []string{outputDir(t, "screenshots")}
	if os.Getenv("BERTH_UPDATE_SCREENSHOTS") == "1" {
		dirs = append(dirs, filepath.Join(repoRoot(t), "docs", "screenshots"))
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot %s.png: %d bytes", name, len(png))
}

func ptrTo[T any](v T) *T { return &v }

// emulate sets the viewport and colour scheme for the next pages.
func (b *browser) emulate(t *testing.T, width, height int64, mobile bool, scheme string) {
	t.Helper()
	err := chromedp.Do(b.ctx,
		chromedp.EmulateViewport(width, height, func(p *emulation.SetDeviceMetricsOverrideParams, _ *emulation.SetTouchEmulationEnabledParams) {
			p.Mobile = mobile
			if mobile {
				p.DeviceScaleFactor = 2
			}
		}),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
			})
			return err
		}))
	if err != nil {
		t.Fatalf("emulate: %v", err)
	}
	b.phone = mobile
}

// TestBrowser loads every catalogue page in headless Chromium against a
// real berth holding real Flatpak apps and server images: no console
// errors, no dialogs (hostile labels stay text), search as you type finds
// an app by part of its name, the app page shows its icon and permissions.
// Each page's screenshot is saved.
func TestBrowser(t *testing.T) {
	exe := findChromium(t)
	tools := newToolRunner(t)
	tools.need(t, "skopeo", "crane", "oras")
	fixtures, _ := makeFlatpakFixtures(t) // shared with the flatpak client test, cached
	addr, _ := startBerth(t)
	site := &browserSite{addr: addr, tools: tools, work: t.TempDir()}
	site.push(t, fixtures)
	base := "http://" + addr

	b := newBrowser(t, exe)
	b.emulate(t, 1280, 900, false, "light")
	mark := b.mark()
	check := func(t *testing.T, what string) {
		t.Helper()
		var msgs []string
		msgs, mark = b.problems(mark)
		for _, m := range msgs {
			t.Errorf("%s: %s", what, m)
		}
	}

	t.Run("Home", func(t *testing.T) {
		b.open(t, base+"/")
		if n := b.eval(t, `String(document.querySelectorAll('.grid .card').length)`); n != "3" {
			t.Errorf("home shows %s app and runtime cards, want 3 (Hello, Bare, Platform)", n)
		}
		if got := b.eval(t, `(() => { const i = document.querySelector('a[href="/apps/org.berth.Hello"] img'); return i ? i.getAttribute('src') + ' ' + i.naturalWidth : 'none'; })()`); !strings.HasPrefix(got, "/icons/") || strings.HasSuffix(got, " 0") {
			t.Errorf("Hello's icon on the home page: %s, want a loaded /icons/ image", got)
		}
		if got := b.eval(t, `(() => { const i = document.querySelector('a[href="/apps/org.berth.Bare"] img'); return i ? String(i.naturalWidth) : '0'; })()`); got == "0" {
			t.Error("Bare (no icon) has no placeholder image")
		}
		check(t, "home")
		b.shot(t, "home")
	})

	t.Run("SearchAsYouType", func(t *testing.T) {
		b.open(t, base+"/")
		ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
		defer cancel()
		if err := chromedp.Do(ctx, chromedp.SendKeys("#q", "ello"), chromedp.WaitVisible("#suggest a[href='/apps/org.berth.Hello']")); err != nil {
			t.Fatalf("typing a partial name: %v", err)
		}
		if got := b.eval(t, `document.querySelector('#suggest a').textContent`); !strings.Contains(got, "Berth Hello") {
			t.Errorf("first suggestion for %q = %q, want Berth Hello", "ello", got)
		}
		b.waitImages(t, ctx)
		check(t, "search as you type")
		b.shot(t, "search-as-you-type")
	})

	t.Run("SearchPage", func(t *testing.T) {
		b.open(t, base+"/search?q=hel")
		got := b.eval(t, `Array.from(document.querySelectorAll('.results .name')).map(e => e.firstChild.textContent.trim()).join('|')`)
		if !strings.HasPrefix(got, "Berth Hello") {
			t.Errorf("results for hel = %q, want Berth Hello first", got)
		}
		b.open(t, base+"/search?q=v1")
		if got := b.eval(t, `document.querySelector('.results') ? document.querySelector('.results').textContent : ''`); !strings.Contains(got, "library/webapp") || !strings.Contains(got, "v10") {
			t.Errorf("search for a tag: %q, want library/webapp with v10", got)
		}
		check(t, "search page")
		b.open(t, base+"/search?q=berth")
		check(t, "search page")
		b.shot(t, "search")
	})

	t.Run("App", func(t *testing.T) {
		b.open(t, base+"/apps/org.berth.Hello")
		if got := b.eval(t, `(() => { const i = document.querySelector('img.app-icon'); return i.getAttribute('src') + ' ' + i.naturalWidth; })()`); !strings.HasPrefix(got, "/icons/") || !strings.HasSuffix(got, " 128") {
			t.Errorf("app icon = %s, want a loaded 128 px /icons/ image", got)
		}
		perms := b.eval(t, `document.getElementById('permissions').innerText`)
		if !strings.Contains(perms, "Permissions") || !strings.Contains(strings.ToLower(perms), "network") && !strings.Contains(strings.ToLower(perms), "internet") {
			t.Errorf("permissions section = %q, want the network permission in words", perms)
		}
		if got := b.eval(t, `document.querySelector('.rating-label').textContent`); got == "" {
			t.Error("no safety rating")
		}
		text := b.eval(t, `document.body.innerText`)
		for _, want := range []string{"Berth Hello", "flatpak install", "2.0", "MIT", "org.berth.Platform"} {
			if !strings.Contains(text, want) {
				t.Errorf("app page lacks %q", want)
			}
		}
		if got := b.eval(t, `document.getElementById("install").getAttribute("href")`); got != "/flatpakref/org.berth.hello/latest.flatpakref" {
			t.Errorf("install link = %q", got)
		}
		// The links the page offers are served (by the Flatpak remote).
		for _, p := range []string{"/flatpakref/org.berth.hello/latest.flatpakref", "/berth.flatpakrepo"} {
			resp, err := httpClient().Get(base + p)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("[Flatpak")) {
				t.Errorf("GET %s: %s\n%s", p, resp.Status, body)
			}
		}
		check(t, "app page")
		b.shot(t, "app")
		b.open(t, base+"/apps/org.berth.Platform")
		check(t, "runtime page")
	})

	t.Run("Repositories", func(t *testing.T) {
		b.open(t, base+"/repositories?sort=name")
		got := b.eval(t, `Array.from(document.querySelectorAll('.repo-name')).map(e => e.textContent).join(' ')`)
		if !strings.Contains(got, "team/api-2 team/api-10") {
			t.Errorf("repositories by name = %q, want team/api-2 before team/api-10", got)
		}
		check(t, "repositories")
		b.open(t, base+"/repositories")
		check(t, "repositories")
		b.shot(t, "repositories")
	})

	t.Run("Repository", func(t *testing.T) {
		b.open(t, base+"/repositories/library/webapp?sort=name")
		got := b.eval(t, `Array.from(document.querySelectorAll('.tag-name')).map(e => e.textContent).join(' ')`)
		if got != "latest v1 v2 v10" {
			t.Errorf("tags by name = %q, want latest v1 v2 v10", got)
		}
		check(t, "repository")
		b.open(t, base+"/repositories/tools/multi")
		if got := b.eval(t, `Array.from(document.querySelectorAll('tr.platform-row')).map(r => r.innerText).join(' | ')`); !strings.Contains(got, "linux/amd64") || !strings.Contains(got, "linux/arm64/v8") {
			t.Errorf("multi-platform tag shows %q, want both platforms", got)
		}
		check(t, "multi-platform repository")
		b.shot(t, "repository-multiplatform")
		b.open(t, base+"/repositories/library/webapp")
		check(t, "repository")
		b.shot(t, "repository")
	})

	t.Run("Manifest", func(t *testing.T) {
		b.open(t, base+"/repositories/library/webapp/-/manifests/"+site.webappV10)
		text := b.eval(t, `document.body.innerText`)
		for _, want := range []string{xssLabel, xssAnnotation, "red[31malert[0m", "SBOM", "Signature", "Layers", "History"} {
			if !strings.Contains(text, want) {
				t.Errorf("manifest page lacks %q", want)
			}
		}
		if strings.Contains(text, "\x1b") {
			t.Error("an escape character reached the page")
		}
		if n := b.eval(t, `String(document.querySelectorAll('main script, main img[src=x]').length)`); n != "0" {
			t.Errorf("%s elements made from labels", n)
		}
		check(t, "manifest page")
		b.shot(t, "manifest")
		b.open(t, base+"/repositories/tools/multi/-/manifests/"+site.multi)
		check(t, "index page")
	})

	t.Run("DarkAndPhone", func(t *testing.T) {
		b.emulate(t, 1280, 900, false, "dark")
		b.open(t, base+"/apps/org.berth.Hello")
		if bg := b.eval(t, `getComputedStyle(document.body).backgroundColor`); bg == "rgb(246, 247, 249)" {
			t.Errorf("dark mode background = %s, the light one", bg)
		}
		check(t, "dark app page")
		b.shot(t, "app-dark")
		b.emulate(t, 390, 844, true, "light")
		b.open(t, base+"/")
		if w := b.eval(t, `String(document.documentElement.scrollWidth)`); w != "390" {
			t.Errorf("home on a phone is %s px wide, want 390 (no sideways scrolling)", w)
		}
		check(t, "phone home")
		b.shot(t, "home-phone")
		b.open(t, base+"/apps/org.berth.Hello")
		if w := b.eval(t, `String(document.documentElement.scrollWidth)`); w != "390" {
			t.Errorf("app page on a phone is %s px wide, want 390", w)
		}
		check(t, "phone app page")
		b.shot(t, "app-phone")
	})
}
