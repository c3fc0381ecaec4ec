package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestFlatpakInstallCounts: after a known sequence with the real flatpak
// client (two users install org.berth.Hello 1.0, v2.0 is pushed, one user
// updates), the app page and the search API show 2 installs and 1 update
// in the last 30 days, and the runtime 2 installs.
func TestFlatpakInstallCounts(t *testing.T) {
	env := newFlatpakEnv(t)
	fx := env.fx
	srv := startServer(t)
	base := "http://" + srv.Addr
	env.push(t, srv.Addr, "org.berth.Platform")
	env.push(t, srv.Addr, "org.berth.Hello")
	a, b := env.user(t, base), env.user(t, base)
	for _, u := range []*flatpakUser{a, b} {
		u.flatpak(t, "install", "-y", "--noninteractive", "berthtest", "org.berth.Hello")
	}
	env.push(t, srv.Addr, "org.berth.Hello-v2")
	a.flatpak(t, "update", "-y", "--noninteractive")
	if got := a.info(t, fx["org.berth.Hello"].Ref)["Alt-id"]; got != strings.TrimPrefix(fx["org.berth.Hello-v2"].ManifestDigest, "sha256:") {
		t.Fatalf("user a is not on v2 after the update: %q", got)
	}

	type result struct {
		Kind       string `json:"kind"`
		ID         string `json:"id"`
		Installs30 *int64 `json:"installs_30d"`
		Updates30  *int64 `json:"updates_30d"`
	}
	counts := func(id string) (int64, int64, bool) {
		var ans struct {
			Results []result `json:"results"`
		}
		if err := json.Unmarshal([]byte(httpGetString(t, base+"/api/v1/search?q="+id)), &ans); err != nil {
			t.Fatal(err)
		}
		for _, r := range ans.Results {
			if r.ID == id && r.Installs30 != nil && r.Updates30 != nil {
				return *r.Installs30, *r.Updates30, true
			}
		}
		return 0, 0, false
	}
	// Counts are written every few seconds.
	waitFor(t, "install counts in the search API", time.Minute, func() bool {
		i, u, ok := counts("org.berth.Hello")
		return ok && i == 2 && u == 1
	})
	if i, u, _ := counts("org.berth.Platform"); i != 2 || u != 0 {
		t.Errorf("runtime org.berth.Platform: %d installs, %d updates; want 2, 0", i, u)
	}
	page := httpGetString(t, base+"/apps/org.berth.Hello")
	if !strings.Contains(page, `<span class="installs">2 installs</span>, <span class="updates">1 update</span>`) {
		t.Errorf("the app page does not show 2 installs and 1 update:\n%s", clipString(page, 6000))
	}
	// The tagged version (v2) was installed by the update.
	if !strings.Contains(page, `title="0 installs, 1 updates in the last 30 days"`) {
		t.Errorf("the versions table does not show v2's update")
	}
	// Metrics count them without naming the app or repository.
	metrics := httpGetString(t, base+"/metrics")
	arch := strings.Split(fx["org.berth.Hello"].Ref, "/")[2]
	for _, want := range []string{`berth_flatpak_installs_total{arch="` + arch + `",kind="install"} 4`, `berth_flatpak_installs_total{arch="` + arch + `",kind="update"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(metrics, "org.berth.hello") && strings.Contains(metrics, "installs") {
		for _, l := range strings.Split(metrics, "\n") {
			if strings.Contains(l, "installs") && strings.Contains(l, "org.berth") {
				t.Errorf("a metric names the app: %s", l)
			}
		}
	}
}
