package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/flatpak"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/oci"
)

// Page sizes.
const (
	// maxBuildsShown caps the app page's versions table; the repository
	// pages list the rest.
	maxBuildsShown = 50
	appsPerPage    = 48
	reposPerPage   = 50
	tagsPerPage    = 50
	maxReferrers   = 100
)

// pager links the pages of a listing.
type pager struct {
	Page, Pages, Total int
	Prev, Next         string
}

// newPager clamps page to the listing and builds the links, keeping the
// other query parameters of u.
func newPager(u *url.URL, page, perPage, total int) (pager, int, int) {
	pages := max(1, (total+perPage-1)/perPage)
	page = min(max(page, 1), pages)
	p := pager{Page: page, Pages: pages, Total: total}
	link := func(n int) string {
		q := u.Query()
		if n == 1 {
			q.Del("page")
		} else {
			q.Set("page", strconv.Itoa(n))
		}
		if len(q) == 0 {
			return u.Path
		}
		return u.Path + "?" + q.Encode()
	}
	if page > 1 {
		p.Prev = link(page - 1)
	}
	if page < pages {
		p.Next = link(page + 1)
	}
	start := min((page-1)*perPage, total)
	return p, start, min(start+perPage, total)
}

func pageParam(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// card is an app in a grid or a result list.
type card struct {
	Kind, ID, Name, Summary, URL string
	Icon                         icon
}

func cardOf(it *item) card {
	return card{Kind: it.Kind, ID: it.ID, Name: it.Name, Summary: it.Summary, URL: it.URL, Icon: it.Icon}
}

type homeData struct {
	Apps, Runtimes []card
	Pager          pager
	Repos          int
	Empty          bool
}

func (h *Handler) home(w http.ResponseWriter, r *http.Request, s *snapshot) {
	var all []*item
	visible := h.visibleItem(r, s)
	for _, it := range s.items {
		if it.Kind == "image" {
			continue
		}
		if visible != nil {
			if it = visible(it); it == nil {
				continue
			}
		}
		all = append(all, it)
	}
	pg, start, end := newPager(r.URL, pageParam(r), appsPerPage, len(all))
	d := homeData{Pager: pg, Repos: len(h.visibleRepos(r, s.repos)), Empty: len(all) == 0}
	for _, it := range all[start:end] {
		if it.Kind == "app" {
			d.Apps = append(d.Apps, cardOf(it))
		} else {
			d.Runtimes = append(d.Runtimes, cardOf(it))
		}
	}
	h.renderHome(w, r, d)
}

// homeMemoPages is how many of the home page's pages keep their last
// rendering (homeMemo).
const homeMemoPages = 4

// homeMemo is a rendering of the home page and the data it was made from.
// The page is a function of that data (cards, pager, counts) and of the
// Handler's options, so a request whose data is equal is answered with
// the same bytes: rendering 48 cards is about half a millisecond, the
// comparison a microsecond. A push changes the home page only when it
// changes a card (an app's name, summary, icon, or the list itself); a
// new build of an app, or any server image, does not.
type homeMemo struct {
	data homeData
	body []byte
}

func (a homeData) equal(b homeData) bool {
	return a.Pager == b.Pager && a.Repos == b.Repos && a.Empty == b.Empty &&
		slices.Equal(a.Apps, b.Apps) && slices.Equal(a.Runtimes, b.Runtimes)
}

// renderHome answers the home page with data d, from its memo when the
// data is the memo's.
func (h *Handler) renderHome(w http.ResponseWriter, r *http.Request, d homeData) {
	var slot *atomic.Pointer[homeMemo]
	if i := d.Pager.Page - 1; i >= 0 && i < homeMemoPages {
		slot = &h.homeMemos[i]
		if m := slot.Load(); m != nil && m.data.equal(d) {
			writePage(w, r, http.StatusOK, m.body)
			return
		}
	}
	body, err := h.renderBytes("home", pageInfo{Title: "Apps", Nav: "apps"}, d)
	if err != nil {
		h.renderFailed(w, r, "home", err)
		return
	}
	if slot != nil {
		slot.Store(&homeMemo{data: d, body: body})
	}
	writePage(w, r, http.StatusOK, body)
}

type resultRow struct {
	card
	KindLabel   string
	Repos       []string
	Archs       []string
	Tags        []string
	MatchedTags []string
	MoreTags    int
	Updated     time.Time
}

type searchData struct {
	Q, Kind, Arch string
	Kinds         []option
	Archs         []option
	Results       []resultRow
	Pager         pager
	Error         string
}

type option struct {
	Value, Label string
	Selected     bool
}

func kindLabel(kind string) string {
	switch kind {
	case "app":
		return "App"
	case "runtime":
		return "Runtime"
	}
	return "Image"
}

func (h *Handler) searchPage(w http.ResponseWriter, r *http.Request, s *snapshot) {
	q, err := parseQuery(r.URL.Query(), defaultPerPage)
	d := searchData{Q: q.Q, Kind: q.Kind, Arch: q.Arch}
	status := http.StatusOK
	if err != nil {
		d.Error, status = err.Error(), http.StatusBadRequest
		q = query{Q: q.Q, Page: 1, PerPage: defaultPerPage}
		d.Kind, d.Arch = "", ""
	}
	for _, k := range []option{{"", "Everything", false}, {"app", "Apps", false}, {"runtime", "Runtimes", false}, {"image", "Images", false}} {
		k.Selected = k.Value == d.Kind
		d.Kinds = append(d.Kinds, k)
	}
	d.Archs = append(d.Archs, option{Value: "", Label: "Any architecture", Selected: d.Arch == ""})
	for _, a := range s.archs(h.visibleItem(r, s)) {
		d.Archs = append(d.Archs, option{Value: a, Label: a, Selected: a == d.Arch})
	}
	q.PerPage = defaultPerPage
	page := q.Page
	q.Page = 1
	q.PerPage = 1 << 30 // page below, with links
	hits, total := s.search(q, h.visibleItem(r, s))
	pg, start, end := newPager(r.URL, page, defaultPerPage, total)
	d.Pager = pg
	for _, hi := range hits[start:end] {
		it := hi.it
		row := resultRow{card: cardOf(it), KindLabel: kindLabel(it.Kind), Repos: it.Repos, Archs: it.Archs,
			MatchedTags: hi.matched, Updated: it.Updated}
		if hi.matched == nil {
			row.Tags = it.Tags[:min(len(it.Tags), 5)]
			row.MoreTags = len(it.Tags) - len(row.Tags)
		}
		d.Results = append(d.Results, row)
	}
	title := "Search"
	if q.Q != "" {
		title = "Search: " + q.Q
	}
	h.render(w, r, status, "search", pageInfo{Title: title, Nav: "search", Query: q.Q}, d)
}

// archs lists every architecture of the items visible lets through (nil:
// all).
func (s *snapshot) archs(visible func(*item) *item) []string {
	set := map[string]bool{}
	for _, it := range s.items {
		if visible != nil {
			if it = visible(it); it == nil {
				continue
			}
		}
		for _, a := range it.Archs {
			set[a] = true
		}
	}
	return sortedKeys(set)
}

// visibleApp is av as the request may see it: av itself, a copy holding
// only the builds in readable repositories, or nil.
func (h *Handler) visibleApp(ctx context.Context, r *http.Request, av *appView) *appView {
	if h.opts.CanRead == nil {
		return av
	}
	var bs []*build
	for _, b := range av.Builds {
		if h.opts.CanRead(r, b.Repo) {
			bs = append(bs, b)
		}
	}
	switch len(bs) {
	case 0:
		return nil
	case len(av.Builds):
		return av
	}
	// As in newAppView, the kind is the newest build's: here the newest
	// the request may see.
	v := &appView{Kind: bs[0].Ref.Kind, ID: av.ID, Builds: bs, icon: bs[0].icon}
	v.Archs, v.Branches, v.Repos = buildSets(bs)
	f, err := h.factsFor(ctx, bs[0])
	if err != nil {
		h.log.WarnContext(ctx, "catalogue: reading labels", "repo", bs[0].Repo, "digest", bs[0].Digest, "err", err)
	}
	v.facts = f
	return v
}

type appData struct {
	Kind, KindLabel, ID, Name, Summary, Developer string
	Icon                                          icon
	Description                                   []string
	Screenshots                                   []flatpak.Screenshot
	Release                                       *flatpak.Release
	License                                       string
	Installed, Download                           int64
	// Installs30 and Updates30 count the last 30 days (HasInstalls: the
	// store keeps counts).
	Installs30, Updates30          int64
	HasInstalls                    bool
	Archs, Branches                []string
	Runtime, SDK                   *refLink
	Command                        string
	Homepage                       string
	Keywords, Categories           []string
	HasMeta                        bool
	Rating                         ratingView
	Permissions                    []permRow
	RemoteAdd, Install, InstallRef string
	FlatpakrefURL, FlatpakrepoURL  string
	Builds                         []buildRow // the newest maxBuildsShown
	BuildCount                     int
	MoreBuilds                     bool
	MoreRepos                      []tagLink // where all builds are listed
	UsedBy                         []card    // apps on this runtime
}

type ratingView struct {
	Level, Label, Summary string
	Decisive              bool // some permissions decide the level
}

type permRow struct {
	Text    string
	Decides bool // one of the rating's reasons
}

// refLink is a runtime or SDK named by the metadata ("ID/ARCH/BRANCH"),
// linked when the catalogue has it.
type refLink struct{ ID, Branch, URL string }

type buildRow struct {
	Repo, RepoURL, Arch, Branch string
	Tags                        []tagLink
	Pushed                      time.Time
	Size                        int64
	Digest, Short, URL          string
	// Update is the download of an update by delta from the previous
	// version (0: no delta; an update downloads Size).
	Update int64
	// Installs and Updates of this version in the last 30 days.
	Installs, Updates int64
}

type tagLink struct{ Name, URL string }

// DeltaSizes is what the app page reads of Flatpak deltas (package
// delta); a Catalog that implements it gets the "update by delta" column.
type DeltaSizes interface {
	DeltaPairs(ctx context.Context, repo string) ([]meta.DeltaPair, error)
}

// deltaUpdates returns, for each build that has one, the size of the
// delta from its previous version (the newest source of its ready
// deltas): what an update to it downloads.
func (h *Handler) deltaUpdates(ctx context.Context, builds []*build) map[meta.ManifestKey]int64 {
	ds, ok := h.cat.(DeltaSizes)
	if !ok {
		return nil
	}
	out := map[meta.ManifestKey]int64{}
	want := map[meta.ManifestKey]bool{}
	repos := map[string]bool{}
	for _, b := range builds {
		want[meta.ManifestKey{Repo: b.Repo, Digest: b.Digest}] = true
		repos[b.Repo] = true
	}
	for repo := range repos {
		pairs, err := ds.DeltaPairs(ctx, repo)
		if err != nil {
			h.log.WarnContext(ctx, "delta sizes", "repo", repo, "err", err)
			continue
		}
		newest := map[meta.ManifestKey]meta.DeltaPair{}
		for _, p := range pairs {
			k := meta.ManifestKey{Repo: repo, Digest: p.Target}
			if p.State != meta.DeltaReady || !want[k] {
				continue
			}
			if cur, ok := newest[k]; !ok || p.SourcePushed.After(cur.SourcePushed) {
				newest[k] = p
			}
		}
		for k, p := range newest {
			out[k] = p.Size
		}
	}
	return out
}

// ratings are GNOME Software's words for flatpak.Rate's levels.
var ratings = map[string][2]string{
	"safe":               {"Safe", "This app has no access to your files, devices or the network beyond its sandbox."},
	"probably-safe":      {"Probably safe", "This app asks for a few permissions that are usually harmless."},
	"potentially-unsafe": {"Potentially unsafe", "This app asks for permissions that give it access outside its sandbox."},
	"unsafe":             {"Unsafe", "This app can reach much of your system: your files, devices or other programs."},
}

func (h *Handler) appPage(w http.ResponseWriter, r *http.Request, s *snapshot, id string) {
	av := s.appByID[id]
	if av != nil {
		av = h.visibleApp(r.Context(), r, av)
	}
	if av == nil {
		h.notFound(w, r, "No app or runtime with this id is in the registry.")
		return
	}
	f := av.facts
	if f == nil {
		f = &facts{Installed: -1, Download: -1}
	}
	d := appData{
		Kind: av.Kind, KindLabel: kindLabel(av.Kind), ID: av.ID, Name: av.Name(),
		Summary: f.App.Summary, Developer: f.App.Developer, Icon: av.icon,
		Description: f.App.Description, Screenshots: f.App.Screenshots, License: f.App.ProjectLicense,
		Installed: f.Installed, Download: f.Download, Archs: av.Archs, Branches: av.Branches,
		Homepage: f.App.Homepage, Keywords: f.App.Keywords, Categories: f.App.Categories, HasMeta: f.HasMeta,
	}
	if d.License == "" {
		d.License = f.App.License
	}
	if len(f.App.Releases) > 0 {
		d.Release = &f.App.Releases[0]
	}
	if f.HasMeta {
		d.Runtime, d.SDK = h.refLink(r, s, f.Meta.Runtime), h.refLink(r, s, f.Meta.SDK)
		d.Command = cleanLine(f.Meta.Command)
		rating := flatpak.Rate(f.Meta.Permissions)
		words, ok := ratings[rating.Level]
		if !ok {
			words = [2]string{"Unknown", "The app's permissions could not be rated."}
			rating.Level = "unknown"
		}
		d.Rating = ratingView{Level: rating.Level, Label: words[0], Summary: words[1]}
		reasons := map[string]bool{}
		for _, p := range cleanList(rating.Reasons, true) {
			reasons[p] = true
		}
		for _, p := range cleanList(flatpak.Describe(f.Meta.Permissions), true) {
			decides := rating.Level != flatpak.Safe && reasons[p]
			d.Permissions = append(d.Permissions, permRow{Text: p, Decides: decides})
			d.Rating.Decisive = d.Rating.Decisive || decides
		}
	}
	if !h.opts.FlatpakDisabled {
		h.installCommands(r, av, &d)
	}
	d.BuildCount = len(av.Builds)
	shown := av.Builds[:min(len(av.Builds), maxBuildsShown)]
	updates := h.deltaUpdates(r.Context(), shown)
	iv := h.installs(r.Context())
	if iv != nil {
		d.HasInstalls = true
		c := h.appInstalls(r, iv, av.ID)
		d.Installs30, d.Updates30 = c.Installs, c.Updates
	}
	for _, b := range shown {
		row := buildRow{Repo: b.Repo, RepoURL: "/repositories/" + b.Repo, Arch: b.Arch, Branch: b.Ref.Branch,
			Pushed: b.Pushed, Size: b.Size, Digest: string(b.Digest), Short: shortDigest(string(b.Digest)),
			URL: manifestURL(b.Repo, b.Digest), Update: updates[meta.ManifestKey{Repo: b.Repo, Digest: b.Digest}]}
		for _, t := range b.Tags {
			row.Tags = append(row.Tags, tagLink{Name: t, URL: tagURL(b.Repo, t)})
		}
		vc := iv.version(meta.ManifestKey{Repo: b.Repo, Digest: b.Digest})
		row.Installs, row.Updates = vc.Installs, vc.Updates
		d.Builds = append(d.Builds, row)
	}
	if len(shown) < len(av.Builds) {
		d.MoreBuilds = true
		for _, repo := range av.Repos {
			d.MoreRepos = append(d.MoreRepos, tagLink{Name: repo, URL: "/repositories/" + repo})
		}
	}
	if av.Kind == "runtime" {
		// Which runtime an app uses is read from the newest build the
		// request may see, not from a hidden newer one (V14).
		for _, other := range s.apps {
			v := h.visibleApp(r.Context(), r, other)
			if v == nil || v.facts == nil || !v.facts.HasMeta {
				continue
			}
			if rid, _, _ := strings.Cut(v.facts.Meta.Runtime, "/"); rid == av.ID {
				d.UsedBy = append(d.UsedBy, cardOf(appItem(v)))
			}
		}
	}
	h.render(w, r, http.StatusOK, "app", pageInfo{Title: d.Name, Nav: "apps"}, d)
}

// installCommands fills the app page's install commands. The remote
// installs what is tagged latest (the index query flatpak sends names
// that tag), so the remote-add and install commands are offered only when
// a build is; the .flatpakref file, which names its tag, always is.
func (h *Handler) installCommands(r *http.Request, av *appView, d *appData) {
	base := h.baseURL(r)
	d.FlatpakrepoURL = flatpak.RepoFilePath
	var latest *build
	for _, b := range av.Builds { // newest first
		if slices.Contains(b.Tags, "latest") {
			latest = b
			break
		}
	}
	if latest != nil {
		d.RemoteAdd = shellCommand("flatpak remote-add --user --if-not-exists", h.opts.RemoteName, base+flatpak.RepoFilePath)
		d.Install = shellCommand("flatpak install --user", h.opts.RemoteName, av.ID)
	}
	b := latest
	if b == nil {
		b = av.Latest()
	}
	if len(b.Tags) > 0 {
		tag := b.Tags[0]
		if b == latest {
			tag = "latest"
		}
		ref := flatpak.FlatpakrefPath(b.Repo, tag)
		d.FlatpakrefURL = ref
		d.InstallRef = shellCommand("flatpak install --user --from", base+ref)
	}
}

// refLink reads a metadata runtime or sdk value, "ID/ARCH/BRANCH".
func (h *Handler) refLink(r *http.Request, s *snapshot, v string) *refLink {
	v = cleanLine(v)
	if v == "" {
		return nil
	}
	parts := strings.Split(v, "/")
	l := &refLink{ID: parts[0]}
	if len(parts) == 3 {
		l.Branch = parts[2]
	}
	if av := s.appByID[l.ID]; av != nil && h.visibleApp(r.Context(), r, av) != nil {
		l.URL = "/apps/" + l.ID
	}
	return l
}

// visibleRepos filters repositories by CanRead.
func (h *Handler) visibleRepos(r *http.Request, repos []*repoView) []*repoView {
	if h.opts.CanRead == nil {
		return repos
	}
	out := make([]*repoView, 0, len(repos))
	for _, rv := range repos {
		if h.opts.CanRead(r, rv.Name) {
			out = append(out, rv)
		}
	}
	return out
}

type repoRow struct {
	Name, URL   string
	Tags        int
	Size        int64
	Updated     time.Time
	Archs       []string
	Flatpak     bool
	Apps        []tagLink
	LatestTag   string
	LatestTagTo string
}

type sortLink struct {
	Label, URL string
	Active     bool
	Arrow      string
}

type reposData struct {
	Repos []repoRow
	Sorts []sortLink
	Pager pager
}

// repoSorts are the orders of the repositories page, each with its
// natural direction.
var repoSorts = []struct {
	key, label, order string
}{
	{"pushed", "Last pushed", "desc"},
	{"name", "Name", "asc"},
	{"size", "Size", "desc"},
}

func (h *Handler) reposPage(w http.ResponseWriter, r *http.Request, s *snapshot) {
	qv := r.URL.Query()
	key, order := qv.Get("sort"), qv.Get("order")
	def := ""
	for _, rs := range repoSorts {
		if rs.key == key {
			def = rs.order
		}
	}
	if def == "" {
		key, def = "pushed", "desc"
	}
	if order != "asc" && order != "desc" {
		order = def
	}
	repos := slices.Clone(h.visibleRepos(r, s.repos))
	slices.SortStableFunc(repos, func(a, b *repoView) int {
		var c int
		switch key {
		case "pushed":
			c = a.Updated.Compare(b.Updated)
		case "size":
			c = cmpInt64(a.Size, b.Size)
		}
		if order == "desc" {
			c = -c
		}
		if c == 0 {
			c = naturalCompare(a.Name, b.Name)
			if key == "name" && order == "desc" {
				c = -c
			}
		}
		return c
	})
	pg, start, end := newPager(r.URL, pageParam(r), reposPerPage, len(repos))
	d := reposData{Pager: pg}
	for _, rs := range repoSorts {
		sl := sortLink{Label: rs.label, Active: rs.key == key}
		o := rs.order
		if sl.Active {
			if order == "asc" {
				sl.Arrow = "↑"
			} else {
				sl.Arrow = "↓"
			}
			if order == rs.order {
				o = map[string]string{"asc": "desc", "desc": "asc"}[rs.order]
			}
		}
		v := url.Values{"sort": {rs.key}}
		if o != rs.order {
			v.Set("order", o)
		}
		sl.URL = "/repositories?" + v.Encode()
		d.Sorts = append(d.Sorts, sl)
	}
	for _, rv := range repos[start:end] {
		row := repoRow{Name: rv.Name, URL: "/repositories/" + rv.Name, Tags: len(rv.Tags), Size: rv.Size,
			Updated: rv.Updated, Archs: rv.Archs, Flatpak: rv.Flatpak}
		for _, id := range rv.AppIDs {
			row.Apps = append(row.Apps, tagLink{Name: id, URL: "/apps/" + id})
		}
		if len(rv.Tags) > 0 {
			row.LatestTag, row.LatestTagTo = rv.Tags[0].Name, tagURL(rv.Name, rv.Tags[0].Name)
		}
		d.Repos = append(d.Repos, row)
	}
	h.render(w, r, http.StatusOK, "repos", pageInfo{Title: "Repositories", Nav: "repos"}, d)
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// repoRoute serves /repositories/<name>[/-/manifests/<digest> | /-/tags/<tag>].
// A repository name never holds "/-/": its components start with a letter
// or digit.
func (h *Handler) repoRoute(w http.ResponseWriter, r *http.Request, s *snapshot, rest string) {
	name, sub, hasSub := strings.Cut(rest, "/-/")
	name = strings.TrimSuffix(name, "/")
	// A repository the request may not read is answered exactly as a
	// missing one, on every sub-page (V14): same status, same page.
	hidden := name == "" || (h.opts.CanRead != nil && !h.opts.CanRead(r, name))
	if !hasSub {
		if hidden {
			h.notFound(w, r, noRepoMessage)
			return
		}
		h.repoPage(w, r, s, name)
		return
	}
	kind, ref, _ := strings.Cut(sub, "/")
	switch kind {
	case "manifests":
		d, err := digest.Parse(ref)
		if err != nil {
			h.notFound(w, r, "This is not a manifest digest.")
			return
		}
		if hidden {
			h.notFound(w, r, noManifestMessage)
			return
		}
		h.manifestPage(w, r, s, name, d, "")
	case "tags":
		rv := s.repoByName[name]
		if rv != nil && !hidden {
			for _, tv := range rv.Tags {
				if tv.Name == ref {
					h.manifestPage(w, r, s, name, tv.Digest, tv.Name)
					return
				}
			}
		}
		h.notFound(w, r, "This repository has no such tag.")
	default:
		h.notFound(w, r, "There is no page at this address.")
	}
}

type tagRow struct {
	Name, URL         string
	Digest, Short     string
	ManifestURL       string
	Platform          string
	Index             bool
	Platforms         []platRow
	Size              int64
	Pushed, Created   time.Time
	PullTag, PullByDg string
	Flatpak           bool
}

type platRow struct {
	Platform, Digest, Short, URL string
	Size                         int64
	Stored                       bool
}

type repoData struct {
	Name        string
	Tags        []tagRow
	Sorts       []sortLink
	Pager       pager
	Size        int64
	Updated     time.Time
	Archs       []string
	Apps        []tagLink
	PullLatest  string
	TagCount    int
	RegistryURL string
}

func (h *Handler) repoPage(w http.ResponseWriter, r *http.Request, s *snapshot, name string) {
	rv := s.repoByName[name]
	if rv == nil {
		h.notFound(w, r, noRepoMessage)
		return
	}
	key := r.URL.Query().Get("sort")
	tags := rv.Tags
	if key == "name" {
		tags = slices.Clone(tags)
		slices.SortFunc(tags, func(a, b *tagView) int {
			if c := naturalCompare(a.Name, b.Name); c != 0 {
				return c
			}
			return strings.Compare(a.Name, b.Name)
		})
	} else {
		key = "pushed"
	}
	host := h.registryHost(r)
	pg, start, end := newPager(r.URL, pageParam(r), tagsPerPage, len(tags))
	d := repoData{Name: name, Pager: pg, Size: rv.Size, Updated: rv.Updated, Archs: rv.Archs, TagCount: len(rv.Tags)}
	for _, k := range []struct{ key, label string }{{"pushed", "Last pushed"}, {"name", "Name"}} {
		u := "/repositories/" + name
		if k.key != "pushed" {
			u += "?sort=" + k.key
		}
		d.Sorts = append(d.Sorts, sortLink{Label: k.label, URL: u, Active: k.key == key})
	}
	for _, id := range rv.AppIDs {
		d.Apps = append(d.Apps, tagLink{Name: id, URL: "/apps/" + id})
	}
	if len(rv.Tags) > 0 {
		d.PullLatest = shellCommand("docker pull", host+"/"+name+":"+rv.Tags[0].Name)
	}
	for _, tv := range tags[start:end] {
		row := tagRow{Name: tv.Name, URL: tagURL(name, tv.Name), Digest: string(tv.Digest), Short: shortDigest(string(tv.Digest)),
			ManifestURL: manifestURL(name, tv.Digest), Platform: tv.Platform(), Index: tv.Index, Size: tv.Size,
			Pushed: tv.Pushed, Created: tv.Created, Flatpak: tv.FlatpakRef != "",
			PullTag:  shellCommand("docker pull", host+"/"+name+":"+tv.Name),
			PullByDg: shellCommand("docker pull", host+"/"+name+"@"+string(tv.Digest))}
		for _, p := range tv.Platforms {
			row.Platforms = append(row.Platforms, platRow{Platform: p.Platform, Digest: string(p.Digest),
				Short: shortDigest(string(p.Digest)), URL: manifestURL(name, p.Digest), Size: p.Size, Stored: p.Stored})
			if p.FlatpakRef != "" {
				row.Flatpak = true
			}
		}
		d.Tags = append(d.Tags, row)
	}
	h.render(w, r, http.StatusOK, "repo", pageInfo{Title: name, Nav: "repos"}, d)
}

// Not-found messages shared by missing and hidden repositories.
const (
	noRepoMessage     = "No repository with this name has tagged images, or you may not see it."
	noManifestMessage = "This repository has no manifest with this digest, or you may not see it."
)

func manifestURL(repo string, d digest.Digest) string {
	return "/repositories/" + repo + "/-/manifests/" + string(d)
}

func tagURL(repo, tag string) string {
	return "/repositories/" + repo + "/-/tags/" + tag
}

// kv is one label or annotation.
type kv struct {
	Key, Value string
	Long       bool // shown in a block
	Cut        int  // bytes left out (a long value is shortened)
}

// maxValueShown is how much of one label or annotation value a page shows.
const maxValueShown = 4096

func kvs(m map[string]string) []kv {
	out := make([]kv, 0, len(m))
	for k, v := range m {
		e := kv{Key: cleanLine(k)}
		if strings.HasPrefix(v, "data:") && len(v) > 128 {
			cut := runeCut(v, 64)
			e.Value, e.Cut = stripControls(v[:cut])+"…", len(v)-cut
		} else if len(v) > maxValueShown {
			cut := runeCut(v, maxValueShown)
			e.Value, e.Cut = stripControls(v[:cut])+"…", len(v)-cut
		} else {
			e.Value = stripControls(v)
		}
		e.Long = strings.Contains(e.Value, "\n") || len(e.Value) > 200
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b kv) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// runeCut is the largest n <= max at which v can be cut without splitting
// a UTF-8 sequence.
func runeCut(v string, max int) int {
	cut := max
	for cut > 0 && !isRuneStart(v[cut]) {
		cut--
	}
	return cut
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

type layerRow struct {
	N             int
	Digest, Short string
	MediaType     string
	Size          int64
	External      bool
	Annotations   []kv
	URLs          []string
}

type referrerRow struct {
	Kind, Class        string
	ArtifactType       string
	Digest, Short, URL string
	Size               int64
	Created            string
	Annotations        []kv
}

type manifestData struct {
	Repo, RepoURL                  string
	Digest, Short, MediaType       string
	ArtifactType, Platform         string
	Tag                            string
	Tags                           []tagLink
	Size                           int64
	ManifestSize                   int
	Pushed, Created                time.Time
	Index                          bool
	Children                       []platRow
	Config                         *layerRow
	Layers                         []layerRow
	History                        []historyRow
	HistoryNote                    string
	Labels, Annotations            []kv
	Referrers                      []referrerRow
	MoreReferrers                  bool
	Subject, SubjectShort, SubjURL string
	PullDigest, PullTag            string
	AppURL, AppID                  string
	Raw                            string
}

// manifestDoc is the part of an image manifest or index the page shows
// (OCI and Docker schema 2 share these fields).
type manifestDoc struct {
	Config      *descriptorDoc    `json:"config"`
	Layers      []descriptorDoc   `json:"layers"`
	Manifests   []descriptorDoc   `json:"manifests"`
	Annotations map[string]string `json:"annotations"`
}

type descriptorDoc struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	URLs        []string          `json:"urls"`
	Annotations map[string]string `json:"annotations"`
	Platform    *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
		Variant      string `json:"variant"`
	} `json:"platform"`
}

func (h *Handler) manifestPage(w http.ResponseWriter, r *http.Request, s *snapshot, repo string, dg digest.Digest, tag string) {
	ctx := r.Context()
	m, err := h.cat.GetManifest(ctx, repo, dg)
	if errors.Is(err, meta.ErrManifestNotFound) {
		h.notFound(w, r, noManifestMessage)
		return
	}
	if err != nil {
		h.serverError(w, r, fmt.Errorf("get manifest %s@%s: %w", repo, dg, err))
		return
	}
	host := h.registryHost(r)
	d := manifestData{
		Repo: repo, RepoURL: "/repositories/" + repo, Digest: string(dg), Short: shortDigest(string(dg)),
		MediaType: cleanFact(m.MediaType), ArtifactType: cleanFact(m.ArtifactType),
		Platform: platformString(cleanFact(m.OS), cleanFact(m.Architecture), cleanFact(m.Variant)), Tag: tag,
		Size: m.TotalSize, ManifestSize: len(m.Content), Pushed: m.Pushed, Created: m.Created,
		Index: oci.IsIndex(m.MediaType), Labels: kvs(m.Labels), Annotations: kvs(m.Annotations),
		PullDigest: shellCommand("docker pull", host+"/"+repo+"@"+string(dg)),
	}
	if tag != "" {
		d.PullTag = shellCommand("docker pull", host+"/"+repo+":"+tag)
	}
	if rv := s.repoByName[repo]; rv != nil {
		for _, tv := range rv.Tags {
			if tv.Digest == dg {
				d.Tags = append(d.Tags, tagLink{Name: tv.Name, URL: tagURL(repo, tv.Name)})
			}
		}
		slices.SortFunc(d.Tags, func(a, b tagLink) int { return naturalCompare(a.Name, b.Name) })
	}
	if ref, ok := parseRef(m.Labels[meta.FlatpakRefLabel]); ok {
		if av := s.appByID[ref.ID]; av != nil && h.visibleApp(ctx, r, av) != nil {
			d.AppURL, d.AppID = "/apps/"+ref.ID, ref.ID
		}
	}
	if m.Subject != "" {
		d.Subject, d.SubjectShort, d.SubjURL = string(m.Subject), shortDigest(string(m.Subject)), manifestURL(repo, m.Subject)
	}
	doc, raw := parseManifestDoc(m.Content)
	d.Raw = raw
	if d.Index {
		for _, c := range doc.Manifests {
			p := ""
			if c.Platform != nil {
				p = platformString(c.Platform.OS, c.Platform.Architecture, c.Platform.Variant)
			}
			cd := digest.Digest(c.Digest)
			d.Children = append(d.Children, platRow{Platform: cleanFact(p), Digest: stripControls(c.Digest), Short: shortDigest(stripControls(c.Digest)),
				URL: manifestURL(repo, cd), Size: c.Size})
		}
	} else {
		if doc.Config != nil {
			c := layerRowOf(0, *doc.Config)
			d.Config = &c
		}
		for i, l := range doc.Layers {
			d.Layers = append(d.Layers, layerRowOf(i+1, l))
		}
		d.History, d.HistoryNote = h.historyOf(ctx, m)
	}
	refs, err := h.cat.Referrers(ctx, repo, dg, "", "", maxReferrers+1)
	if err != nil {
		h.serverError(w, r, fmt.Errorf("referrers of %s@%s: %w", repo, dg, err))
		return
	}
	if len(refs) > maxReferrers {
		refs, d.MoreReferrers = refs[:maxReferrers], true
	}
	for _, rf := range refs {
		kind := referrerKind(rf.ArtifactType)
		d.Referrers = append(d.Referrers, referrerRow{
			Kind: kind, Class: strings.ToLower(strings.ReplaceAll(kind, " ", "-")), ArtifactType: cleanFact(rf.ArtifactType),
			Digest: string(rf.Digest), Short: shortDigest(string(rf.Digest)), URL: manifestURL(repo, rf.Digest),
			Size: rf.Size, Created: annotatedTime(rf.Annotations["org.opencontainers.image.created"]),
			Annotations: kvs(rf.Annotations),
		})
	}
	title := repo + "@" + d.Short
	if tag != "" {
		title = repo + ":" + tag
	}
	h.render(w, r, http.StatusOK, "manifest", pageInfo{Title: title, Nav: "repos"}, d)
}

// annotatedTime shows an org.opencontainers.image.created value: as a UTC
// time when it is RFC 3339, else as cleaned text.
func annotatedTime(v string) string {
	if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(v)); err == nil {
		return humanTime(t)
	}
	return cleanLine(v)
}

func layerRowOf(n int, l descriptorDoc) layerRow {
	row := layerRow{N: n, Digest: cleanFact(l.Digest), Short: shortDigest(cleanFact(l.Digest)), MediaType: cleanFact(l.MediaType),
		Size: l.Size, Annotations: kvs(l.Annotations)}
	for _, u := range l.URLs {
		if su := safeURL(u); su != "" {
			row.URLs = append(row.URLs, su)
		}
	}
	row.External = len(l.URLs) > 0 || strings.Contains(l.MediaType, "nondistributable") || strings.Contains(l.MediaType, "foreign")
	return row
}

// referrerKind names what a referrer is, by its artifact type.
func referrerKind(t string) string {
	lt := strings.ToLower(t)
	switch {
	case strings.Contains(lt, "cosign") && strings.Contains(lt, "sig"),
		strings.Contains(lt, "notary.signature"),
		strings.Contains(lt, "sigstore.bundle"),
		strings.Contains(lt, "signature"):
		return "Signature"
	case strings.Contains(lt, "spdx"), strings.Contains(lt, "cyclonedx"), strings.Contains(lt, "sbom"), strings.Contains(lt, "syft"):
		return "SBOM"
	case strings.Contains(lt, "in-toto"), strings.Contains(lt, "dsse"), strings.Contains(lt, "attestation"),
		strings.Contains(lt, "provenance"), strings.Contains(lt, "slsa"), strings.Contains(lt, "vex"):
		return "Attestation"
	case strings.Contains(lt, "vuln") || strings.Contains(lt, "sarif"):
		return "Scan report"
	}
	return "Artifact"
}
