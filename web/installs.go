package web

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/berth-dev/berth/flatpak"
	"github.com/berth-dev/berth/meta"
)

// Install counts (package flatpak's InstallCounter writes them): the app
// page and the search API show the installs and updates of the last 30
// days, summed over the repositories the requester may read.

// InstallStats is what the catalogue reads of install counts; a Catalog
// that implements it gets them.
type InstallStats interface {
	InstallTotals(ctx context.Context, sinceDay int64) ([]meta.InstallTotal, error)
}

// installDays is the span the catalogue shows.
const installDays = 30

// installTTL is how long a read of the counts is reused.
const installTTL = 5 * time.Second

// installCounts are installs and updates.
type installCounts struct{ Installs, Updates int64 }

func (c *installCounts) add(kind string, n int64) {
	if kind == meta.KindUpdate {
		c.Updates += n
	} else {
		c.Installs += n
	}
}

// installView is one read of the counts of the last installDays days.
type installView struct {
	at        time.Time
	byApp     map[string]map[string]*installCounts // app id → repository → counts
	byVersion map[meta.ManifestKey]*installCounts
}

type installCache struct {
	mu   sync.Mutex
	view *installView
}

// installs returns the counts of the last 30 days, or nil when the store
// keeps none or cannot be read (the page then shows none).
func (h *Handler) installs(ctx context.Context) *installView {
	st, ok := h.cat.(InstallStats)
	if !ok {
		return nil
	}
	h.installCache.mu.Lock()
	defer h.installCache.mu.Unlock()
	if v := h.installCache.view; v != nil && time.Since(v.at) < installTTL {
		return v
	}
	since := time.Now().UTC().Unix()/86400 - (installDays - 1)
	totals, err := st.InstallTotals(ctx, since)
	if err != nil {
		h.log.WarnContext(ctx, "catalogue: install counts", "err", err)
		return h.installCache.view
	}
	v := &installView{at: time.Now(), byApp: map[string]map[string]*installCounts{}, byVersion: map[meta.ManifestKey]*installCounts{}}
	for _, t := range totals {
		ref, err := flatpak.ParseRef(t.Ref)
		if err != nil {
			continue
		}
		repos := v.byApp[ref.ID]
		if repos == nil {
			repos = map[string]*installCounts{}
			v.byApp[ref.ID] = repos
		}
		c := repos[t.Repo]
		if c == nil {
			c = &installCounts{}
			repos[t.Repo] = c
		}
		c.add(t.Kind, t.Count)
		k := meta.ManifestKey{Repo: t.Repo, Digest: t.Version}
		if v.byVersion[k] == nil {
			v.byVersion[k] = &installCounts{}
		}
		v.byVersion[k].add(t.Kind, t.Count)
	}
	h.installCache.view = v
	return v
}

// app sums an app's counts over the repositories r may read.
func (h *Handler) appInstalls(r *http.Request, v *installView, id string) installCounts {
	var sum installCounts
	if v == nil {
		return sum
	}
	for repo, c := range v.byApp[id] {
		if h.opts.CanRead != nil && !h.opts.CanRead(r, repo) {
			continue
		}
		sum.Installs += c.Installs
		sum.Updates += c.Updates
	}
	return sum
}

// version returns a version's counts.
func (v *installView) version(k meta.ManifestKey) installCounts {
	if v == nil || v.byVersion[k] == nil {
		return installCounts{}
	}
	return *v.byVersion[k]
}
