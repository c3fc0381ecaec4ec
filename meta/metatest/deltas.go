package metatest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// DeltaStore is the part of a backend that package delta uses (delta.Store
// is the consumer's copy), on top of meta.Store.
//
//   - UnplannedDeltaTargets: tagged image manifests whose config label
//     `label` is set and that PlanDeltas has not planned, oldest push
//     first, at most n; Ref is the label's value.
//   - EarlierVersions: image manifests of repo whose label has value,
//     pushed no later than target and after since (zero: no bound),
//     target excluded, newest first, at most n.
//   - PlanDeltas: once per target (false afterwards, and when target is
//     not a manifest of repo), records a pending pair from each source.
//   - ClaimDelta: leases the oldest pending pair whose lease ended to
//     token until at+lease; nil when none. RenewDelta and FinishDelta
//     succeed only for the lease holder (meta.ErrDeltaLost otherwise);
//     FinishDelta with State pending gives the pair back.
//   - DropGoneDeltas: deletes pairs whose target or source manifest is
//     gone (and plans of gone targets) and returns their repositories.
//   - ResetDeltas: deletes repo's pairs, and with replan its plans.
//   - SetLiveDeltaManifests / DeltaManifests / RetiredDeltaManifests /
//     ForgetDeltaManifest: the record of published delta manifests.
type DeltaStore interface {
	meta.Store
	UnplannedDeltaTargets(ctx context.Context, label string, n int) ([]meta.DeltaTarget, error)
	EarlierVersions(ctx context.Context, repo string, target digest.Digest, label, value string, since time.Time, n int) ([]digest.Digest, error)
	PlanDeltas(ctx context.Context, repo string, target digest.Digest, sources []digest.Digest) (bool, error)
	ClaimDelta(ctx context.Context, token string, at time.Time, lease time.Duration) (*meta.DeltaPair, error)
	RenewDelta(ctx context.Context, k meta.DeltaKey, token string, until time.Time) error
	FinishDelta(ctx context.Context, k meta.DeltaKey, token string, r meta.DeltaResult) error
	RequeueDelta(ctx context.Context, k meta.DeltaKey, detail string) error
	ReleaseDeltaLeases(ctx context.Context) error
	DeltaPairs(ctx context.Context, repo string) ([]meta.DeltaPair, error)
	DeltaRepositories(ctx context.Context) ([]string, error)
	DropGoneDeltas(ctx context.Context) ([]string, error)
	ResetDeltas(ctx context.Context, repo string, replan bool) error
	DeltaManifests(ctx context.Context, repo string) ([]meta.DeltaManifest, error)
	SetLiveDeltaManifests(ctx context.Context, repo string, live map[digest.Digest]digest.Digest, at time.Time) error
	RetiredDeltaManifests(ctx context.Context, before time.Time, n int) ([]meta.DeltaManifest, error)
	ForgetDeltaManifest(ctx context.Context, repo string, d digest.Digest) error
}

// RunDeltas runs the DeltaStore contract, one subtest per behaviour, each
// on a new, empty store.
func RunDeltas(t *testing.T, newStore func(t *testing.T) DeltaStore) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s DeltaStore)
	}{
		{"Plan", testDeltaPlan},
		{"Claim", testDeltaClaim},
		{"ClaimConcurrent", testDeltaClaimConcurrent},
		{"DropGone", testDeltaDropGone},
		{"Reset", testDeltaReset},
		{"Manifests", testDeltaManifests},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

const deltaLabel = "org.flatpak.ref"

// refImage stores an image of ref in repo (distinct by name) and tags
// it with tags; it returns its digest.
func refImage(t *testing.T, s meta.Store, repo, name, ref string, tags ...string) digest.Digest {
	t.Helper()
	cfg := link(t, s, repo, "config "+name)
	m := image(repo, name, cfg[0])
	if ref != "" {
		m.Labels = map[string]string{deltaLabel: ref, "other": "x"}
	}
	put(t, s, m, tags...)
	return m.Digest
}

func testDeltaPlan(t *testing.T, s DeltaStore) {
	ctx := t.Context()
	const ref = "app/org.example.App/x86_64/stable"
	v1 := refImage(t, s, "app", "v1", ref, "stable")
	time.Sleep(2 * time.Millisecond) // distinct push times
	v2 := refImage(t, s, "app", "v2", ref, "stable")
	refImage(t, s, "app", "other", "app/org.example.Other/x86_64/stable", "other")
	refImage(t, s, "app", "plain", "", "plain") // no label
	refImage(t, s, "app", "untagged", ref)      // not tagged
	refImage(t, s, "lib", "v1", ref, "stable")  // another repository

	targets, err := s.UnplannedDeltaTargets(ctx, deltaLabel, 10)
	noErr(t, err, "UnplannedDeltaTargets")
	var names []string
	for _, tg := range targets {
		names = append(names, tg.Repo+"@"+tg.Digest.String())
		if tg.Ref == "" || tg.Pushed.IsZero() {
			t.Errorf("target %v: Ref or Pushed not set", tg)
		}
	}
	if len(targets) != 3 || targets[0].Digest != v2 && targets[1].Digest != v2 {
		t.Fatalf("UnplannedDeltaTargets = %v, want v2, other (app) and v1 (lib): tagged, labelled images only", names)
	}
	if targets, _ := s.UnplannedDeltaTargets(ctx, deltaLabel, 1); len(targets) != 1 {
		t.Errorf("UnplannedDeltaTargets with n=1 returned %d", len(targets))
	}

	// Earlier versions of v2: v1 and the untagged image of the same ref
	// (both pushed before v2? the untagged one was pushed after: excluded).
	got, err := s.EarlierVersions(ctx, "app", v2, deltaLabel, ref, time.Time{}, 10)
	noErr(t, err, "EarlierVersions")
	if !slices.Equal(got, []digest.Digest{v1}) {
		t.Errorf("EarlierVersions(v2) = %v, want [v1]", got)
	}
	got, err = s.EarlierVersions(ctx, "app", v2, deltaLabel, ref, time.Now().Add(time.Hour), 10)
	noErr(t, err, "EarlierVersions since the future")
	if len(got) != 0 {
		t.Errorf("EarlierVersions since a later time = %v, want none", got)
	}
	if got, _ := s.EarlierVersions(ctx, "app", v1, deltaLabel, ref, time.Time{}, 10); len(got) != 0 {
		t.Errorf("EarlierVersions(v1) = %v, want none", got)
	}

	planned, err := s.PlanDeltas(ctx, "app", v2, []digest.Digest{v1})
	noErr(t, err, "PlanDeltas")
	if !planned {
		t.Error("PlanDeltas: not planned the first time")
	}
	planned, err = s.PlanDeltas(ctx, "app", v2, []digest.Digest{v1})
	noErr(t, err, "PlanDeltas again")
	if planned {
		t.Error("PlanDeltas planned a target twice")
	}
	if planned, _ := s.PlanDeltas(ctx, "app", digest.FromString("nope"), nil); planned {
		t.Error("PlanDeltas planned a manifest that does not exist")
	}
	targets, _ = s.UnplannedDeltaTargets(ctx, deltaLabel, 10)
	for _, tg := range targets {
		if tg.Digest == v2 {
			t.Error("a planned target is still unplanned")
		}
	}
	pairs, err := s.DeltaPairs(ctx, "app")
	noErr(t, err, "DeltaPairs")
	if len(pairs) != 1 || pairs[0].Target != v2 || pairs[0].Source != v1 || pairs[0].State != meta.DeltaPending {
		t.Errorf("DeltaPairs = %+v, want one pending v1 -> v2", pairs)
	} else if v1m := get(t, s, "app", v1); !pairs[0].SourcePushed.Equal(v1m.Pushed) {
		t.Errorf("DeltaPairs SourcePushed = %v, want v1's push time %v", pairs[0].SourcePushed, v1m.Pushed)
	}
	repos, err := s.DeltaRepositories(ctx)
	noErr(t, err, "DeltaRepositories")
	if !slices.Equal(repos, []string{"app"}) {
		t.Errorf("DeltaRepositories = %v, want [app]", repos)
	}
	// A bad label key is refused, not spliced into a query.
	if _, err := s.UnplannedDeltaTargets(ctx, `a"b`, 1); err == nil {
		t.Error(`UnplannedDeltaTargets with a quote in the label: no error`)
	}
}

// plannedPair stores v1 and v2 of one ref and plans v1 -> v2.
func plannedPair(t *testing.T, s DeltaStore, repo string) meta.DeltaKey {
	t.Helper()
	const ref = "app/org.example.App/x86_64/stable"
	v1 := refImage(t, s, repo, "v1", ref, "stable")
	v2 := refImage(t, s, repo, "v2", ref, "stable")
	if _, err := s.PlanDeltas(t.Context(), repo, v2, []digest.Digest{v1}); err != nil {
		t.Fatalf("PlanDeltas: %v", err)
	}
	return meta.DeltaKey{Repo: repo, Target: v2, Source: v1}
}

func testDeltaClaim(t *testing.T, s DeltaStore) {
	ctx := t.Context()
	k := plannedPair(t, s, "app")
	now := time.Now()
	p, err := s.ClaimDelta(ctx, "a", now, time.Minute)
	noErr(t, err, "ClaimDelta")
	if p == nil || p.DeltaKey != k || p.Attempts != 1 {
		t.Fatalf("ClaimDelta = %+v, want %v, attempt 1", p, k)
	}
	if p2, _ := s.ClaimDelta(ctx, "b", now, time.Minute); p2 != nil {
		t.Fatalf("a leased pair was claimed again: %+v", p2)
	}
	wantErr(t, s.RenewDelta(ctx, k, "b", now.Add(time.Hour)), meta.ErrDeltaLost, "RenewDelta by another token")
	noErr(t, s.RenewDelta(ctx, k, "a", now.Add(2*time.Minute)), "RenewDelta")
	// The lease ends: another worker takes the pair over, and the first
	// can no longer finish it.
	p, err = s.ClaimDelta(ctx, "b", now.Add(3*time.Minute), time.Minute)
	noErr(t, err, "ClaimDelta after the lease")
	if p == nil || p.Attempts != 2 {
		t.Fatalf("ClaimDelta after the lease = %+v, want the pair, attempt 2", p)
	}
	res := meta.DeltaResult{State: meta.DeltaReady, Blob: digest.FromString("delta"), Size: 5,
		From: digest.FromString("from"), To: digest.FromString("to"), LayerSize: 100}
	wantErr(t, s.FinishDelta(ctx, k, "a", res), meta.ErrDeltaLost, "FinishDelta by the old holder")
	// Giving it back makes it claimable at once.
	noErr(t, s.FinishDelta(ctx, k, "b", meta.DeltaResult{State: meta.DeltaPending, Detail: "later"}), "FinishDelta pending")
	p, err = s.ClaimDelta(ctx, "c", now.Add(3*time.Minute), time.Minute)
	noErr(t, err, "ClaimDelta after a give-back")
	if p == nil {
		t.Fatal("a given-back pair is not claimable")
	}
	noErr(t, s.FinishDelta(ctx, k, "c", res), "FinishDelta")
	pairs, _ := s.DeltaPairs(ctx, "app")
	if len(pairs) != 1 {
		t.Fatalf("DeltaPairs = %+v", pairs)
	}
	got := pairs[0]
	if got.State != meta.DeltaReady || got.Blob != res.Blob || got.Size != 5 || got.From != res.From || got.To != res.To || got.LayerSize != 100 {
		t.Errorf("pair after FinishDelta = %+v, want %+v", got, res)
	}
	if p, _ := s.ClaimDelta(ctx, "d", now.Add(time.Hour), time.Minute); p != nil {
		t.Errorf("a finished pair was claimed: %+v", p)
	}
	wantErr(t, s.FinishDelta(ctx, k, "c", res), meta.ErrDeltaLost, "FinishDelta twice")

	// A ready pair whose blob went is made again.
	noErr(t, s.RequeueDelta(ctx, k, "blob lost"), "RequeueDelta")
	if ps, _ := s.DeltaPairs(ctx, "app"); len(ps) != 1 || ps[0].State != meta.DeltaPending || ps[0].Blob != "" || ps[0].Detail != "blob lost" {
		t.Errorf("after RequeueDelta: %+v", ps)
	}
	if p, _ := s.ClaimDelta(ctx, "g", now.Add(time.Hour), time.Minute); p == nil || p.DeltaKey != k {
		t.Errorf("a requeued pair is not claimable: %+v", p)
	} else {
		noErr(t, s.FinishDelta(ctx, k, "g", meta.DeltaResult{State: meta.DeltaFailed}), "FinishDelta failed")
		noErr(t, s.RequeueDelta(ctx, k, "x"), "RequeueDelta of a failed pair")
		if ps, _ := s.DeltaPairs(ctx, "app"); ps[0].State != meta.DeltaFailed {
			t.Errorf("RequeueDelta changed a failed pair: %+v", ps[0])
		}
	}

	// ReleaseDeltaLeases frees leased pending pairs at once.
	k2 := plannedPair(t, s, "other")
	if p, _ := s.ClaimDelta(ctx, "e", now, time.Hour); p == nil || p.DeltaKey != k2 {
		t.Fatalf("ClaimDelta of the second pair = %+v", p)
	}
	noErr(t, s.ReleaseDeltaLeases(ctx), "ReleaseDeltaLeases")
	if p, _ := s.ClaimDelta(ctx, "f", now, time.Hour); p == nil {
		t.Error("a released pair is not claimable")
	}
	if _, err := s.ClaimDelta(ctx, "", now, time.Hour); err == nil {
		t.Error("ClaimDelta with an empty token: no error")
	}
}

func testDeltaClaimConcurrent(t *testing.T, s DeltaStore) {
	ctx := t.Context()
	for _, repo := range []string{"a", "b", "c", "d"} {
		plannedPair(t, s, repo)
	}
	var (
		mu   sync.Mutex
		got  = map[meta.DeltaKey]int{}
		wg   sync.WaitGroup
		errs = make(chan error, 8)
	)
	for w := range 8 {
		wg.Go(func() {
			p, err := s.ClaimDelta(ctx, string(rune('A'+w)), time.Now(), time.Hour)
			if err != nil {
				errs <- err
				return
			}
			if p != nil {
				mu.Lock()
				got[p.DeltaKey]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("ClaimDelta: %v", err)
	}
	if len(got) != 4 {
		t.Errorf("8 workers claimed %d distinct pairs of 4", len(got))
	}
	for k, n := range got {
		if n != 1 {
			t.Errorf("pair %v claimed %d times", k, n)
		}
	}
}

func testDeltaDropGone(t *testing.T, s DeltaStore) {
	ctx := t.Context()
	k := plannedPair(t, s, "app")
	k2 := plannedPair(t, s, "lib")
	repos, err := s.DropGoneDeltas(ctx)
	noErr(t, err, "DropGoneDeltas")
	if len(repos) != 0 {
		t.Errorf("DropGoneDeltas with nothing gone = %v", repos)
	}
	// The source goes: the pair goes, the plan of the target stays.
	noErr(t, s.DeleteManifest(ctx, "app", k.Source), "DeleteManifest source")
	repos, err = s.DropGoneDeltas(ctx)
	noErr(t, err, "DropGoneDeltas")
	if !slices.Equal(repos, []string{"app"}) {
		t.Errorf("DropGoneDeltas = %v, want [app]", repos)
	}
	if pairs, _ := s.DeltaPairs(ctx, "app"); len(pairs) != 0 {
		t.Errorf("pairs after the source went: %+v", pairs)
	}
	if planned, _ := s.PlanDeltas(ctx, "app", k.Target, nil); planned {
		t.Error("the target's plan went with its source")
	}
	// The target goes: pair and plan go.
	noErr(t, s.DeleteManifest(ctx, "lib", k2.Target), "DeleteManifest target")
	repos, _ = s.DropGoneDeltas(ctx)
	if !slices.Equal(repos, []string{"lib"}) {
		t.Errorf("DropGoneDeltas = %v, want [lib]", repos)
	}
	if pairs, _ := s.DeltaPairs(ctx, "lib"); len(pairs) != 0 {
		t.Errorf("pairs after the target went: %+v", pairs)
	}
}

func testDeltaReset(t *testing.T, s DeltaStore) {
	ctx := t.Context()
	k := plannedPair(t, s, "app")
	noErr(t, s.ResetDeltas(ctx, "app", false), "ResetDeltas")
	if pairs, _ := s.DeltaPairs(ctx, "app"); len(pairs) != 0 {
		t.Errorf("pairs after a reset: %+v", pairs)
	}
	if planned, _ := s.PlanDeltas(ctx, "app", k.Target, []digest.Digest{k.Source}); planned {
		t.Error("ResetDeltas without replan forgot the plan")
	}
	noErr(t, s.ResetDeltas(ctx, "app", true), "ResetDeltas replan")
	targets, _ := s.UnplannedDeltaTargets(ctx, deltaLabel, 10)
	if len(targets) != 1 || targets[0].Digest != k.Target {
		t.Errorf("after a replan, unplanned targets = %+v, want the tagged v2", targets)
	}
}

func testDeltaManifests(t *testing.T, s DeltaStore) {
	ctx := t.Context()
	t1, t2 := digest.FromString("t1"), digest.FromString("t2")
	m1, m2, m3 := digest.FromString("m1"), digest.FromString("m2"), digest.FromString("m3")
	at := time.Now()
	noErr(t, s.SetLiveDeltaManifests(ctx, "app", map[digest.Digest]digest.Digest{t1: m1, t2: m2}, at), "SetLive")
	dms, err := s.DeltaManifests(ctx, "app")
	noErr(t, err, "DeltaManifests")
	if len(dms) != 2 || !dms[0].Retired.IsZero() || !dms[1].Retired.IsZero() {
		t.Fatalf("DeltaManifests = %+v, want two live", dms)
	}
	// t1 gets a new delta manifest, t2 none: m1 and m2 retire.
	noErr(t, s.SetLiveDeltaManifests(ctx, "app", map[digest.Digest]digest.Digest{t1: m3}, at.Add(time.Second)), "SetLive again")
	dms, _ = s.DeltaManifests(ctx, "app")
	retired := map[digest.Digest]bool{}
	for _, dm := range dms {
		retired[dm.Digest] = !dm.Retired.IsZero()
	}
	if len(dms) != 3 || !retired[m1] || !retired[m2] || retired[m3] {
		t.Fatalf("after a change, DeltaManifests = %+v, want m1 and m2 retired, m3 live", dms)
	}
	old, err := s.RetiredDeltaManifests(ctx, at.Add(2*time.Second), 10)
	noErr(t, err, "RetiredDeltaManifests")
	if len(old) != 2 {
		t.Errorf("RetiredDeltaManifests = %+v, want m1 and m2", old)
	}
	if old, _ := s.RetiredDeltaManifests(ctx, at, 10); len(old) != 0 {
		t.Errorf("RetiredDeltaManifests before the retirement = %+v", old)
	}
	// A retired manifest made live again is live.
	noErr(t, s.SetLiveDeltaManifests(ctx, "app", map[digest.Digest]digest.Digest{t1: m3, t2: m2}, at.Add(3*time.Second)), "SetLive revive")
	noErr(t, s.ForgetDeltaManifest(ctx, "app", m1), "ForgetDeltaManifest")
	noErr(t, s.ForgetDeltaManifest(ctx, "app", m3), "ForgetDeltaManifest of a live one")
	dms, _ = s.DeltaManifests(ctx, "app")
	live := 0
	for _, dm := range dms {
		if dm.Digest == m1 {
			t.Error("a forgotten manifest is still recorded")
		}
		if dm.Retired.IsZero() {
			live++
		}
	}
	if live != 2 {
		t.Errorf("live delta manifests = %d, want m2 (revived) and m3 (Forget leaves live ones)", live)
	}
	if err := s.ForgetDeltaManifest(ctx, "app", digest.FromString("never")); err != nil && !errors.Is(err, meta.ErrManifestNotFound) {
		t.Errorf("ForgetDeltaManifest of an unknown manifest: %v", err)
	}
}

// testDeltaClaimTwoHandles: workers on two handles claim the pairs of
// four targets; each pair is claimed exactly once.
func testDeltaClaimTwoHandles(t *testing.T, a, b DeltaStore) {
	ctx := t.Context()
	for _, repo := range []string{"a", "b", "c", "d"} {
		plannedPair(t, a, repo)
	}
	var (
		mu  sync.Mutex
		got = map[meta.DeltaKey]int{}
		wg  sync.WaitGroup
	)
	for w := range 8 {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for {
				p, err := s.ClaimDelta(ctx, string(rune('A'+w)), time.Now(), time.Hour)
				if err != nil {
					t.Errorf("ClaimDelta: %v", err)
					return
				}
				if p == nil {
					return
				}
				mu.Lock()
				got[p.DeltaKey]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(got) != 4 {
		t.Errorf("workers on two handles claimed %d distinct pairs of 4", len(got))
	}
	for k, n := range got {
		if n != 1 {
			t.Errorf("pair %v claimed %d times", k, n)
		}
	}
}
