package web

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/flatpak"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/oci"
)

// Catalog is what the catalogue reads of the metadata store.
type Catalog interface {
	// CatalogVersion changes whenever a tag or manifest is added, moved or
	// removed; it is compared for equality only.
	CatalogVersion(ctx context.Context) (string, error)
	// CatalogTags lists tags with their manifests' facts, by (repo, tag),
	// strictly after the cursor, at most n.
	CatalogTags(ctx context.Context, after meta.TagKey, n int) ([]meta.CatalogTag, error)
	// CatalogChildren lists the children of tagged indexes, by (repo,
	// index, position), strictly after the cursor, at most n.
	CatalogChildren(ctx context.Context, after meta.ChildKey, n int) ([]meta.CatalogChild, error)
	// CatalogRepo lists one repository's rows of the two above.
	CatalogRepo(ctx context.Context, repo string) ([]meta.CatalogTag, []meta.CatalogChild, error)
	// GetManifest returns a manifest or an error matching
	// meta.ErrManifestNotFound.
	GetManifest(ctx context.Context, repo string, d digest.Digest) (*meta.Manifest, error)
	// Referrers lists the manifests of repo whose subject is d.
	Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string, after digest.Digest, n int) ([]meta.Descriptor, error)
	// ManifestIcons returns the icons recorded for each of the manifests
	// at push time, by size (absent: none).
	ManifestIcons(ctx context.Context, keys ...meta.ManifestKey) (map[meta.ManifestKey]map[int]digest.Digest, error)
}

// listPage is how many rows one catalogue listing call returns.
const listPage = 1000

// snapshot is the catalogue as of one CatalogVersion: every tagged
// manifest, grouped by repository and by Flatpak id. It is immutable once
// built and shared by concurrent requests.
type snapshot struct {
	version string
	// readAt is when its version was read, before any of its rows: the
	// snapshot shows every change committed before then.
	readAt time.Time
	// seq is the events outbox's sequence its rows reflect at least
	// (LastEventSeq read before them; -1 without an outbox): the next
	// change re-reads only the repositories the events after it name
	// (see refresh).
	seq        int64
	repos      []*repoView // by name, byte order
	repoByName map[string]*repoView
	apps       []*appView // apps then runtimes, by name
	appByID    map[string]*appView
	items      []*item // what search looks through
	// parts are the repositories' parts, by name (shared with the
	// snapshots before and after this one).
	parts map[string]*repoPart
	// unread are the ids of the apps whose labels could not be read.
	unread []string
}

// tagView is one tag.
type tagView struct {
	Repo, Name   string
	Digest       digest.Digest
	MediaType    string
	ArtifactType string
	OS, Arch     string
	Variant      string
	Size         int64
	Created      time.Time
	Pushed       time.Time // the tag's last move
	Index        bool
	Platforms    []platformView // an index's children
	FlatpakRef   string
}

// Platform is "os/arch[/variant]" of a single-platform manifest.
func (t *tagView) Platform() string { return platformString(t.OS, t.Arch, t.Variant) }

// platformView is one child of an index.
type platformView struct {
	Platform   string
	Digest     digest.Digest
	MediaType  string
	Size       int64 // the child's total size when stored, else its manifest's
	Stored     bool
	Arch       string
	FlatpakRef string
}

// repoView is one repository with tags.
type repoView struct {
	Name    string
	Tags    []*tagView // newest first
	Updated time.Time  // the newest tag move
	Size    int64      // total sizes of the distinct images its tags reach (an index counts its children)
	Archs   []string
	AppIDs  []string // Flatpak ids built here, sorted
	Flatpak bool     // every tag is a Flatpak build
}

// maxFact bounds one platform or media type string as pages show it.
const maxFact = 255

// cleanFact is a platform or type string from a pushed image as the
// catalogue shows it: cleanLine'd (no control or bidirectional
// characters) and at most maxFact bytes.
func cleanFact(s string) string {
	return shorten(cleanLine(s), maxFact)
}

// parseRef parses an org.flatpak.ref label as flatpak does
// (flatpak.ParseRef), refusing parts that would not show as they are.
func parseRef(s string) (flatpak.Ref, bool) {
	r, err := flatpak.ParseRef(s)
	if err != nil {
		return flatpak.Ref{}, false
	}
	for _, p := range []string{r.ID, r.Arch, r.Branch} {
		if cleanLine(p) != p || strings.ContainsAny(p, " /") {
			return flatpak.Ref{}, false
		}
	}
	return r, true
}

// build is one Flatpak image: a single-platform manifest carrying
// org.flatpak.ref, reached from one or more tags of a repository.
type build struct {
	Repo   string
	Digest digest.Digest // the single-platform manifest
	Index  digest.Digest // the tagged index it came through, if any
	Tags   []string
	Ref    flatpak.Ref
	Arch   string // OCI name
	Size   int64
	Pushed time.Time // newest move of its tags
	icon   icon      // recorded at push time
}

// appView is one Flatpak app or runtime: every build of its id.
type appView struct {
	Kind, ID string
	Builds   []*build // newest first
	Archs    []string
	Branches []string
	Repos    []string
	facts    *facts // of Builds[0]
	icon     icon   // of Builds[0]
	item     *item  // its search item
	// unread: Builds[0]'s labels could not be read (facts are empty); the
	// next refresh regroups it to try again.
	unread bool
}

// Latest is the newest build.
func (a *appView) Latest() *build { return a.Builds[0] }

// Name is the AppStream name, else the id.
func (a *appView) Name() string {
	if a.facts != nil && a.facts.App.Name != "" {
		return a.facts.App.Name
	}
	return a.ID
}

// item is one search result candidate with its text lower-cased once.
type item struct {
	Kind, ID, Name, Summary, Developer string
	Icon                               icon
	URL                                string
	Repos                              []string
	Archs                              []string
	Tags                               []string // newest first
	Updated                            time.Time

	lid, lname, llast string
	lwords            []string // of the name
	ltext             string   // summary, keywords, categories, developer
	ltags             []string
	ltagsAll          string // "\n"-joined ltags, to rule out a match in one pass
}

// icon is an app's icon URLs: Small for 64 px, Large for 128 px; one may
// stand for the other; both "" when there is none.
type icon struct{ Small, Large string }

// facts are what a Flatpak manifest's labels say, parsed and cleaned once
// per digest.
type facts struct {
	App       flatpak.App
	HasApp    bool
	Meta      flatpak.Metadata
	HasMeta   bool
	Installed int64 // -1 when unknown
	Download  int64
}

// factCache keeps facts by manifest digest (a digest fixes the labels).
type factCache struct {
	mu sync.Mutex
	m  map[digest.Digest]*facts
}

// Events is what the catalogue reads of the events outbox (meta.Outbox)
// to re-read only the repositories a change touched; a Catalog without it
// is re-read whole at every change.
type Events interface {
	Events(ctx context.Context, after int64, n int) ([]meta.Event, error)
	LastEventSeq(ctx context.Context) (int64, error)
}

// maxChangedRepos is the most repositories a refresh re-reads one at a
// time; past it the catalogue is re-read whole. It bounds repositories,
// not events: pushes to a few repositories while a refresh waits for the
// CPU make many events but little work, and counting events sent the
// catalogue under 16 pushing clients (400 events/s) from one whole
// re-read to the next. Events are read eventPage at a time.
const (
	maxChangedRepos = 256
	eventPage       = 512
)

// load builds a snapshot of the catalogue at version, from every row.
func (h *Handler) load(ctx context.Context, version string) (*snapshot, error) {
	seq := int64(-1)
	if ev, ok := h.cat.(Events); ok {
		var err error
		if seq, err = ev.LastEventSeq(ctx); err != nil {
			return nil, err
		}
	}
	tags, children := map[string][]meta.CatalogTag{}, map[string][]meta.CatalogChild{}
	var after meta.TagKey
	for {
		page, err := h.cat.CatalogTags(ctx, after, listPage)
		if err != nil {
			return nil, err
		}
		for _, ct := range page {
			tags[ct.Repo] = append(tags[ct.Repo], ct)
		}
		if len(page) < listPage {
			break
		}
		after = page[len(page)-1].TagKey
	}
	var cafter meta.ChildKey
	for {
		page, err := h.cat.CatalogChildren(ctx, cafter, listPage)
		if err != nil {
			return nil, err
		}
		for _, c := range page {
			children[c.Repo] = append(children[c.Repo], c)
		}
		if len(page) < listPage {
			break
		}
		cafter = page[len(page)-1].ChildKey
	}
	parts := make(map[string]*repoPart, len(tags))
	var fresh []*build
	for repo, rows := range tags {
		part := newRepoPart(rows, children[repo])
		fresh = append(fresh, part.builds...)
		parts[repo] = part
	}
	if err := h.loadIcons(ctx, fresh); err != nil {
		return nil, err
	}
	return h.build(ctx, version, seq, parts)
}

// refresh builds the snapshot at version from prev, re-reading only the
// repositories the events since prev name; ok is false when that cannot
// be trusted (no outbox, a gc run, too many events, a gap where events
// were pruned), and the caller loads everything.
func (h *Handler) refresh(ctx context.Context, prev *snapshot, version string) (s *snapshot, ok bool, err error) {
	ev, has := h.cat.(Events)
	if !has || prev == nil || prev.seq < 0 {
		return nil, false, nil
	}
	seq := prev.seq
	changed := map[string]bool{}
	for {
		evs, err := ev.Events(ctx, seq, eventPage)
		if err != nil {
			return nil, false, err
		}
		for _, e := range evs {
			// A gap is events pruned before the catalogue saw them.
			if e.Seq != seq+1 || e.Type == meta.EventGCRun || e.Repo == "" {
				return nil, false, nil
			}
			changed[e.Repo] = true
			seq = e.Seq
		}
		if len(changed) > maxChangedRepos {
			return nil, false, nil
		}
		if len(evs) < eventPage {
			break
		}
	}
	if seq == prev.seq {
		// None after prev's: either nothing changed that has an event,
		// or the events were pruned since (then the outbox has moved on).
		last, err := ev.LastEventSeq(ctx)
		if err != nil {
			return nil, false, err
		}
		if last != prev.seq {
			return nil, false, nil
		}
	}
	// The changed repositories' new parts; nil: no tags, or only the
	// delta index (such a repository is not shown).
	parts := make(map[string]*repoPart, len(changed))
	var fresh []*build
	for repo := range changed {
		tags, children, err := h.cat.CatalogRepo(ctx, repo)
		if err != nil {
			return nil, false, err
		}
		var part *repoPart
		if len(tags) > 0 {
			part = newRepoPart(tags, children)
			fresh = append(fresh, part.builds...)
			if len(part.rv.Tags) == 0 {
				part = nil
			}
		}
		parts[repo] = part
	}
	if err := h.loadIcons(ctx, fresh); err != nil {
		return nil, false, err
	}
	if s, ok = h.buildChanged(ctx, version, seq, prev, parts); ok || ctx.Err() != nil {
		return s, ok, ctx.Err()
	}
	all := maps.Clone(prev.parts)
	for repo, part := range parts {
		if part == nil {
			delete(all, repo)
		} else {
			all[repo] = part
		}
	}
	s, err = h.build(ctx, version, seq, all)
	return s, err == nil, err
}

// buildChanged makes the snapshot at version from prev when only the
// repositories in parts moved (their new parts; nil for a repository no
// longer shown), and the apps with a build in them (before or after) are
// regrouped; every other
// repository, app and search item is prev's. Each is put in place by
// binary search, so a push costs the catalogue the re-read of its
// repository and work on what it touched, not a regrouping of every
// repository and app (build). ok is false when more than maxChangedApps
// apps are touched; build then does the work. The result is what build
// makes from the same rows (TestIncrementalRefresh).
func (h *Handler) buildChanged(ctx context.Context, version string, seq int64, prev *snapshot, parts map[string]*repoPart) (*snapshot, bool) {
	repos := slices.Sorted(maps.Keys(parts))
	// The app ids with a build in a changed repository, and those whose
	// labels could not be read last time (tried again).
	touched := map[string]bool{}
	for _, id := range prev.unread {
		touched[id] = true
	}
	for _, repo := range repos {
		for _, p := range []*repoPart{prev.parts[repo], parts[repo]} {
			if p != nil {
				for _, b := range p.builds {
					touched[b.Ref.ID] = true
				}
			}
		}
	}
	if len(touched) > maxChangedApps {
		return nil, false
	}
	s := &snapshot{version: version, seq: seq, repos: slices.Clone(prev.repos), repoByName: maps.Clone(prev.repoByName),
		apps: prev.apps, appByID: prev.appByID, items: slices.Clone(prev.items), parts: maps.Clone(prev.parts)}
	for _, repo := range repos {
		if old := prev.parts[repo]; old != nil && old.item != nil {
			if !removeSorted(&s.items, old.item, compareItems) {
				return nil, false // not where build put it: let build redo all
			}
		}
		i, found := slices.BinarySearchFunc(s.repos, repo, func(rv *repoView, name string) int {
			return strings.Compare(rv.Name, name)
		})
		part := parts[repo]
		if part == nil {
			delete(s.parts, repo)
			delete(s.repoByName, repo)
			if found {
				s.repos = slices.Delete(s.repos, i, i+1)
			}
			continue
		}
		s.parts[repo] = part
		s.repoByName[repo] = &part.rv
		if found {
			s.repos[i] = &part.rv
		} else {
			s.repos = slices.Insert(s.repos, i, &part.rv)
		}
		if part.item != nil {
			insertSorted(&s.items, part.item, compareItems)
		}
	}
	if len(touched) == 0 {
		s.nilIfEmpty()
		return s, true
	}

	s.apps, s.appByID = slices.Clone(prev.apps), maps.Clone(prev.appByID)
	for _, id := range slices.Sorted(maps.Keys(touched)) {
		var bs []*build
		if old := prev.appByID[id]; old != nil {
			if !removeSorted(&s.apps, old, compareApps) || !removeSorted(&s.items, old.item, compareItems) {
				return nil, false
			}
			delete(s.appByID, id)
			for _, b := range old.Builds {
				if _, changed := parts[b.Repo]; !changed {
					bs = append(bs, b)
				}
			}
		}
		for _, repo := range repos {
			if part := parts[repo]; part != nil {
				for _, b := range part.builds {
					if b.Ref.ID == id {
						bs = append(bs, b)
					}
				}
			}
		}
		if len(bs) == 0 {
			continue
		}
		av, err := h.newAppView(ctx, bs)
		if err != nil {
			return nil, false
		}
		s.appByID[id] = av
		insertSorted(&s.apps, av, compareApps)
		insertSorted(&s.items, av.item, compareItems)
	}
	for _, id := range slices.Sorted(maps.Keys(touched)) {
		if av := s.appByID[id]; av != nil && av.unread {
			s.unread = append(s.unread, id)
		}
	}
	// Labels of builds no longer shown are forgotten once they are many:
	// build prunes at every full load, which may be rare.
	if n := h.facts.len(); n > 2*len(s.apps)+factSlack {
		live := map[digest.Digest]bool{}
		for _, av := range s.apps {
			for _, b := range av.Builds {
				live[b.Digest] = true
			}
		}
		if n > 2*len(live)+factSlack {
			h.facts.prune(live)
		}
	}
	s.nilIfEmpty()
	return s, true
}

// factSlack is how many more labels than twice the builds shown the fact
// cache may hold before a refresh prunes it.
const factSlack = 16

// nilIfEmpty makes s's empty lists nil, as build leaves them.
func (s *snapshot) nilIfEmpty() {
	if len(s.repos) == 0 {
		s.repos = nil
	}
	if len(s.apps) == 0 {
		s.apps = nil
	}
	if len(s.items) == 0 {
		s.items = nil
	}
}

// maxChangedApps is the most apps a refresh regroups one at a time.
const maxChangedApps = 256

// insertSorted puts v into the sorted *list where cmp says it goes.
func insertSorted[T any](list *[]T, v T, cmp func(a, b T) int) {
	i, _ := slices.BinarySearchFunc(*list, v, cmp)
	*list = slices.Insert(*list, i, v)
}

// removeSorted takes v out of the sorted *list (v itself, found by cmp);
// false if it is not there.
func removeSorted[T comparable](list *[]T, v T, cmp func(a, b T) int) bool {
	i, found := slices.BinarySearchFunc(*list, v, cmp)
	if !found || (*list)[i] != v {
		return false
	}
	*list = slices.Delete(*list, i, i+1)
	return true
}

// newRepoPart derives one repository's part from its rows.
func newRepoPart(tags []meta.CatalogTag, children []meta.CatalogChild) *repoPart {
	part := &repoPart{}
	rv := &part.rv
	indexes := map[digest.Digest][]*tagView{}
	for _, ct := range tags {
		if ct.Tag == flatpak.DeltaIndexTag {
			// Delta updates are the remote's content, not an image
			// or app of the repository's.
			continue
		}
		rv.Name = ct.Repo
		// Platform and type strings come from the pushed config and
		// manifest: cleaned once here, so no page or answer shows
		// control characters from them (V26).
		tv := &tagView{
			Repo: ct.Repo, Name: ct.Tag, Digest: ct.Digest, MediaType: cleanFact(ct.MediaType),
			ArtifactType: cleanFact(ct.ArtifactType), OS: cleanFact(ct.OS), Arch: cleanFact(ct.Architecture), Variant: cleanFact(ct.Variant),
			Size: ct.TotalSize, Created: ct.Created, Pushed: ct.Updated, FlatpakRef: ct.FlatpakRef,
			Index: oci.IsIndex(ct.MediaType),
		}
		rv.Tags = append(rv.Tags, tv)
		if tv.Index {
			indexes[ct.Digest] = append(indexes[ct.Digest], tv)
		}
	}
	for _, c := range children {
		pv := platformView{Platform: cleanFact(c.Platform), Digest: c.Digest, MediaType: cleanFact(c.MediaType), Size: c.Size,
			Stored: c.Stored, Arch: cleanFact(c.Architecture), FlatpakRef: c.FlatpakRef}
		if c.Stored {
			pv.Size = c.TotalSize
			if p := platformString(cleanFact(c.OS), cleanFact(c.Architecture), cleanFact(c.Variant)); p != "" {
				pv.Platform = p
			}
		}
		if pv.Arch == "" {
			pv.Arch = archOf(pv.Platform)
		}
		for _, tv := range indexes[c.Index] {
			tv.Platforms = append(tv.Platforms, pv)
		}
	}

	builds := map[digest.Digest]*build{}
	addBuild := func(tv *tagView, d, index digest.Digest, ref, arch string, size int64) bool {
		r, ok := parseRef(ref)
		if !ok {
			return false
		}
		b := builds[d]
		if b == nil {
			b = &build{Repo: tv.Repo, Digest: d, Index: index, Ref: r, Arch: arch, Size: size}
			if b.Arch == "" {
				b.Arch = ociArch(r.Arch)
			}
			builds[d] = b
			part.builds = append(part.builds, b)
		}
		b.Tags = append(b.Tags, tv.Name)
		if tv.Pushed.After(b.Pushed) {
			b.Pushed = tv.Pushed
		}
		return true
	}
	seen := map[digest.Digest]bool{}
	archs := map[string]bool{}
	flatpakTags := 0
	for _, tv := range rv.Tags {
		if tv.Pushed.After(rv.Updated) {
			rv.Updated = tv.Pushed
		}
		isFlatpak := false
		if tv.Index {
			for _, p := range tv.Platforms {
				if !seen[p.Digest] {
					seen[p.Digest] = true
					rv.Size += p.Size
				}
				if p.Arch != "" {
					archs[p.Arch] = true
				}
				if p.FlatpakRef != "" && addBuild(tv, p.Digest, tv.Digest, p.FlatpakRef, p.Arch, p.Size) {
					isFlatpak = true
				}
			}
		} else {
			if !seen[tv.Digest] {
				seen[tv.Digest] = true
				rv.Size += tv.Size
			}
			if tv.Arch != "" {
				archs[tv.Arch] = true
			}
			if tv.FlatpakRef != "" && addBuild(tv, tv.Digest, "", tv.FlatpakRef, tv.Arch, tv.Size) {
				isFlatpak = true
			}
		}
		if isFlatpak {
			flatpakTags++
		}
	}
	rv.Flatpak = flatpakTags > 0 && flatpakTags == len(rv.Tags)
	rv.Archs = sortedKeys(archs)
	slices.SortStableFunc(rv.Tags, func(a, b *tagView) int {
		if c := b.Pushed.Compare(a.Pushed); c != 0 {
			return c
		}
		return -naturalCompare(a.Name, b.Name) // v10 before v9 at the same instant
	})
	for _, b := range part.builds {
		slices.SortFunc(b.Tags, func(x, y string) int { return naturalCompare(x, y) })
	}
	ids := map[string]bool{}
	for _, b := range part.builds {
		ids[b.Ref.ID] = true
	}
	rv.AppIDs = sortedKeys(ids)
	if len(rv.Tags) > 0 && !rv.Flatpak {
		part.item = repoItem(rv)
	}
	return part
}

// repoPart is what build derives from one repository's rows alone: its
// view, its search item and its Flatpak builds, icons loaded. A part is
// never changed once built, so a snapshot refreshed after a change shares
// the parts of the repositories the change did not touch with the
// snapshot before it. The rows are not kept.
type repoPart struct {
	rv     repoView
	builds []*build
	// item is the repository's search item: nil for a repository of
	// Flatpak builds only (its apps are the items) or with no tags.
	item *item
}

// build makes the snapshot at version from every repository's part
// (icons loaded), grouping their builds into apps.
func (h *Handler) build(ctx context.Context, version string, seq int64, parts map[string]*repoPart) (*snapshot, error) {
	s := &snapshot{version: version, seq: seq, repoByName: map[string]*repoView{}, appByID: map[string]*appView{},
		parts: map[string]*repoPart{}}
	byID := map[string][]*build{}
	for _, repo := range slices.Sorted(maps.Keys(parts)) {
		part := parts[repo]
		if len(part.rv.Tags) == 0 {
			continue // only the delta index
		}
		s.parts[repo] = part
		s.repoByName[repo] = &part.rv
		s.repos = append(s.repos, &part.rv)
		for _, b := range part.builds {
			byID[b.Ref.ID] = append(byID[b.Ref.ID], b)
		}
	}

	// Apps and runtimes, by id.
	live := map[digest.Digest]bool{}
	for _, bs := range byID {
		av, err := h.newAppView(ctx, bs)
		if err != nil {
			return nil, err
		}
		s.appByID[av.ID] = av
		s.apps = append(s.apps, av)
		for _, b := range bs {
			live[b.Digest] = true
		}
	}
	h.facts.prune(live)
	slices.SortFunc(s.apps, compareApps)
	for _, av := range s.apps {
		if av.unread {
			s.unread = append(s.unread, av.ID)
		}
	}

	for _, av := range s.apps {
		s.items = append(s.items, av.item)
	}
	for _, repo := range s.repos {
		if it := s.parts[repo.Name].item; it != nil {
			s.items = append(s.items, it)
		}
	}
	slices.SortFunc(s.items, compareItems)
	return s, nil
}

// newAppView groups the builds of one id (they are sorted newest first):
// the newest says whether it is an app or a runtime and gives the icon and
// the labels' facts. Only a cancelled ctx is an error; a manifest whose
// labels cannot be read is logged and shown without them.
func (h *Handler) newAppView(ctx context.Context, bs []*build) (*appView, error) {
	sortBuilds(bs)
	latest := bs[0]
	av := &appView{Kind: latest.Ref.Kind, ID: latest.Ref.ID, Builds: bs, icon: latest.icon}
	av.Archs, av.Branches, av.Repos = buildSets(bs)
	f, err := h.factsFor(ctx, latest)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		h.log.WarnContext(ctx, "catalogue: reading labels", "repo", latest.Repo, "digest", latest.Digest, "err", err)
		av.unread = true
	}
	av.facts = f
	av.item = appItem(av)
	return av, nil
}

// compareApps orders apps before runtimes, then by name in natural order,
// then by id.
func compareApps(a, b *appView) int {
	if a.Kind != b.Kind {
		return cmpInt(kindOrder(a.Kind), kindOrder(b.Kind))
	}
	if c := naturalCompare(a.Name(), b.Name()); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// sortBuilds puts the newest first; ties by repository and digest so the
// order is stable.
func sortBuilds(bs []*build) {
	slices.SortFunc(bs, func(a, b *build) int {
		if c := b.Pushed.Compare(a.Pushed); c != 0 {
			return c
		}
		if c := strings.Compare(a.Repo, b.Repo); c != 0 {
			return c
		}
		return strings.Compare(string(a.Digest), string(b.Digest))
	})
}

// buildSets returns the architectures, branches and repositories of
// builds: architectures and branches sorted, repositories newest first.
func buildSets(bs []*build) (archs, branches, repos []string) {
	a, br, rs := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, b := range bs {
		a[b.Arch] = true
		br[b.Ref.Branch] = true
		if !rs[b.Repo] {
			rs[b.Repo] = true
			repos = append(repos, b.Repo)
		}
	}
	return sortedKeys(a), sortedKeys(br), repos
}

func kindOrder(kind string) int {
	switch kind {
	case "app":
		return 0
	case "runtime":
		return 1
	}
	return 2
}

// compareItems orders items by kind (apps, runtimes, images), then name
// in natural order, then id.
func compareItems(a, b *item) int {
	if a.Kind != b.Kind {
		return cmpInt(kindOrder(a.Kind), kindOrder(b.Kind))
	}
	if c := naturalCompare(a.Name, b.Name); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

func appItem(av *appView) *item {
	it := &item{
		Kind: av.Kind, ID: av.ID, Name: av.Name(), URL: "/apps/" + av.ID,
		Repos: av.Repos, Archs: av.Archs, Updated: av.Latest().Pushed,
	}
	it.Icon = av.icon
	var text []string
	if f := av.facts; f != nil {
		it.Summary, it.Developer = cleanLine(f.App.Summary), cleanLine(f.App.Developer)
		text = append(text, f.App.Summary, f.App.Developer)
		text = append(text, f.App.Keywords...)
		text = append(text, f.App.Categories...)
	}
	seen := map[string]bool{}
	for _, b := range av.Builds {
		for _, t := range b.Tags {
			if !seen[t] {
				seen[t] = true
				it.Tags = append(it.Tags, t)
			}
		}
	}
	it.index(text)
	return it
}

func repoItem(rv *repoView) *item {
	it := &item{
		Kind: "image", ID: rv.Name, Name: rv.Name, URL: "/repositories/" + rv.Name,
		Repos: []string{rv.Name}, Archs: rv.Archs, Updated: rv.Updated,
	}
	it.Tags = make([]string, len(rv.Tags))
	for i, tv := range rv.Tags {
		it.Tags[i] = tv.Name
	}
	it.index(nil)
	return it
}

// index fills the lower-cased fields search compares.
func (it *item) index(text []string) {
	it.lid, it.lname = strings.ToLower(it.ID), strings.ToLower(it.Name)
	it.llast = it.lid
	if i := strings.LastIndexAny(it.lid, "./"); i >= 0 && i+1 < len(it.lid) {
		it.llast = it.lid[i+1:]
	}
	it.lwords = strings.FieldsFunc(it.lname, func(r rune) bool {
		return r == ' ' || r == '-' || r == '_' || r == '.' || r == '/'
	})
	it.ltext = strings.ToLower(strings.Join(text, "\n"))
	it.ltags = make([]string, len(it.Tags))
	for i, t := range it.Tags {
		it.ltags[i] = strings.ToLower(t)
	}
	it.ltagsAll = strings.Join(it.ltags, "\n")
}

// factsFor returns the facts of a build's labels, from the cache or read
// once from meta. On error it returns empty facts, never nil.
func (h *Handler) factsFor(ctx context.Context, b *build) (*facts, error) {
	if f := h.facts.get(b.Digest); f != nil {
		return f, nil
	}
	m, err := h.cat.GetManifest(ctx, b.Repo, b.Digest)
	if err != nil {
		return &facts{Installed: -1, Download: -1}, err
	}
	f := h.parseFacts(ctx, m)
	h.facts.put(b.Digest, f)
	return f, nil
}

// parseFacts reads what the catalogue shows from a Flatpak manifest's
// labels. A broken part is left out with a logged warning.
func (h *Handler) parseFacts(ctx context.Context, m *meta.Manifest) *facts {
	f := &facts{Installed: parseSize(m.Labels[flatpak.LabelInstalledSize]), Download: parseSize(m.Labels[flatpak.LabelDownloadSize])}
	if s := m.Labels[flatpak.LabelAppdata]; s != "" {
		app, err := flatpak.ParseAppstream([]byte(s))
		if err != nil {
			h.log.WarnContext(ctx, "catalogue: AppStream data not parsed", "repo", m.Repo, "digest", m.Digest, "err", err)
		} else {
			f.App, f.HasApp = cleanApp(app), true
		}
	}
	if s := m.Labels[flatpak.LabelMetadata]; s != "" {
		md, err := flatpak.ParseMetadata([]byte(s))
		if err != nil {
			h.log.WarnContext(ctx, "catalogue: Flatpak metadata not parsed", "repo", m.Repo, "digest", m.Digest, "err", err)
		} else {
			f.Meta, f.HasMeta = md, true
		}
	}
	return f
}

func parseSize(s string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// cleanApp cleans every string of AppStream data and keeps only http(s)
// links.
func cleanApp(a flatpak.App) flatpak.App {
	a.ID, a.Name, a.Summary = cleanLine(a.ID), cleanLine(a.Name), cleanLine(a.Summary)
	a.Developer, a.License, a.ProjectLicense = cleanLine(a.Developer), cleanLine(a.License), cleanLine(a.ProjectLicense)
	a.Homepage = safeURL(a.Homepage)
	a.Description = cleanList(a.Description, false)
	a.Keywords = cleanList(a.Keywords, true)
	a.Categories = cleanList(a.Categories, true)
	var shots []flatpak.Screenshot
	for _, s := range a.Screenshots {
		if u := safeURL(s.URL); u != "" {
			shots = append(shots, flatpak.Screenshot{Caption: cleanLine(s.Caption), URL: u})
		}
	}
	a.Screenshots = shots
	rels := make([]flatpak.Release, 0, len(a.Releases))
	for _, r := range a.Releases {
		r.Version = cleanLine(r.Version)
		rels = append(rels, r)
	}
	a.Releases = rels
	return a
}

func cleanList(in []string, line bool) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if line {
			s = cleanLine(s)
		} else {
			s = strings.TrimSpace(stripControls(s))
		}
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// iconBatch is how many manifests one ManifestIcons call asks about.
const iconBatch = 500

// loadIcons sets each build's icon from those recorded at push time
// (flatpak.IconRecorder), whose URLs the flatpak package serves
// (flatpak.IconPath).
func (h *Handler) loadIcons(ctx context.Context, builds []*build) error {
	for start := 0; start < len(builds); start += iconBatch {
		batch := builds[start:min(start+iconBatch, len(builds))]
		keys := make([]meta.ManifestKey, len(batch))
		for i, b := range batch {
			keys[i] = meta.ManifestKey{Repo: b.Repo, Digest: b.Digest}
		}
		icons, err := h.cat.ManifestIcons(ctx, keys...)
		if err != nil {
			return fmt.Errorf("icons: %w", err)
		}
		for i, b := range batch {
			url := func(size int) string {
				if d, ok := icons[keys[i]][size]; ok {
					return flatpak.IconPath(d)
				}
				return ""
			}
			b.icon = pairIcon(url(64), url(128))
		}
	}
	return nil
}

// pairIcon lets either size stand for the other.
func pairIcon(small, large string) icon {
	if small == "" {
		small = large
	}
	if large == "" {
		large = small
	}
	return icon{Small: small, Large: large}
}

func (c *factCache) get(d digest.Digest) *facts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[d]
}

func (c *factCache) put(d digest.Digest, f *facts) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[digest.Digest]*facts{}
	}
	c.m[d] = f
}

// len is how many digests' facts are kept.
func (c *factCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// prune forgets every digest not in live.
func (c *factCache) prune(live map[digest.Digest]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for d := range c.m {
		if !live[d] {
			delete(c.m, d)
		}
	}
}

func platformString(os, arch, variant string) string {
	switch {
	case os == "" && arch == "":
		return ""
	case variant == "":
		return os + "/" + arch
	}
	return os + "/" + arch + "/" + variant
}

// archOf is the architecture of an "os/arch[/variant]" string.
func archOf(platform string) string {
	parts := strings.Split(platform, "/")
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k != "" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
