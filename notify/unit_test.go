package notify

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/meta"
)

func TestSign(t *testing.T) {
	secret := []byte("It's a Secret to Everybody")
	body := []byte(`{"id":"x","seq":1}`)
	// Computed independently (Python's hmac module).
	want := "sha256=c78f16fdad5cc62148ea5f6e9e5d10f6caa7f20394bdd1990f155eb6be59b929"
	if got := Sign(secret, "1700000000", body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	if !Verify(secret, "1700000000", body, want) {
		t.Error("Verify refuses a good signature")
	}
	for name, bad := range map[string]func() bool{
		"other body":      func() bool { return Verify(secret, "1700000000", []byte(`{"id":"y","seq":1}`), want) },
		"other timestamp": func() bool { return Verify(secret, "1700000001", body, want) },
		"other secret":    func() bool { return Verify([]byte("guess"), "1700000000", body, want) },
		"no prefix":       func() bool { return Verify(secret, "1700000000", body, strings.TrimPrefix(want, "sha256=")) },
		"not hex":         func() bool { return Verify(secret, "1700000000", body, "sha256=zz") },
		"empty":           func() bool { return Verify(secret, "1700000000", body, "") },
	} {
		if bad() {
			t.Errorf("Verify accepts a signature with %s", name)
		}
	}
}

func TestWants(t *testing.T) {
	w := &worker{ep: Endpoint{Events: []string{meta.EventTagUpdate, meta.EventGCRun}, Repositories: []string{"team/**", "solo"}}}
	for _, c := range []struct {
		typ, repo string
		want      bool
	}{
		{meta.EventTagUpdate, "team/app", true},
		{meta.EventTagUpdate, "team/x/y", true},
		{meta.EventTagUpdate, "solo", true},
		{meta.EventTagUpdate, "team", false},
		{meta.EventTagUpdate, "other/app", false},
		{meta.EventManifestPush, "team/app", false},
		{meta.EventGCRun, "", true}, // about no repository: the repository filter passes it
	} {
		if got := w.wants(meta.Event{Type: c.typ, Repo: c.repo}); got != c.want {
			t.Errorf("wants(%s in %q) = %v, want %v", c.typ, c.repo, got, c.want)
		}
	}
	all := &worker{}
	for _, typ := range meta.EventTypes {
		if !all.wants(meta.Event{Type: typ, Repo: "any/repo"}) {
			t.Errorf("an endpoint without filters does not want %s", typ)
		}
	}
	// The store's own events go to no endpoint.
	if all.wants(meta.Event{Type: meta.EventIconUpdate, Repo: "any/repo"}) {
		t.Error("an endpoint without filters wants icon.update")
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := time.Second, 5*time.Minute
	prev := time.Duration(0)
	for attempt := range 12 {
		sched := min(lo<<attempt, hi)
		a, b := backoff(attempt, lo, hi, 0), backoff(attempt, lo, hi, 0.999999)
		if a != sched/2 || b > sched || b < sched*99/100 {
			t.Errorf("attempt %d: waits %s..%s, want %s..%s", attempt, a, b, sched/2, sched)
		}
		if a < prev/2 {
			t.Errorf("attempt %d: shorter than the one before", attempt)
		}
		prev = a
	}
	// Capped, without overflow, however many attempts.
	for _, attempt := range []int{9, 20, 40, 62, 63, 64, 1000} {
		if d := backoff(attempt, lo, hi, 0.5); d < hi/2 || d > hi {
			t.Errorf("attempt %d: %s, want within [%s, %s]", attempt, d, hi/2, hi)
		}
	}
}

func TestPublic(t *testing.T) {
	for _, c := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1", false}, {"127.1.2.3", false}, {"10.1.2.3", false}, {"172.16.0.1", false},
		{"172.31.255.255", false}, {"192.168.1.1", false}, {"169.254.169.254", false},
		{"100.64.0.1", false}, {"0.0.0.0", false}, {"224.0.0.1", false}, {"255.255.255.255", false},
		{"::1", false}, {"::", false}, {"fe80::1", false}, {"fd00::1", false}, {"ff02::1", false},
		{"::ffff:127.0.0.1", false}, {"::ffff:10.0.0.1", false},
		{"64:ff9b::7f00:1", false}, {"2002:7f00:1::", false}, {"2002:0a00:0001::1", false},
		{"fe80::1%eth0", false},
		{"8.8.8.8", true}, {"1.1.1.1", true}, {"172.32.0.1", true}, {"2606:4700:4700::1111", true},
		{"::ffff:8.8.8.8", true}, {"64:ff9b::808:808", true}, {"2002:0808:0808::1", true},
	} {
		if got := public(netip.MustParseAddr(c.addr)); got != c.want {
			t.Errorf("public(%s) = %v, want %v", c.addr, got, c.want)
		}
	}
	if err := refusePrivate("tcp", "127.0.0.1:80", nil); err == nil {
		t.Error("refusePrivate(127.0.0.1:80) = nil")
	} else if !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("refusal does not name the address: %v", err)
	}
	if err := refusePrivate("tcp", "8.8.8.8:443", nil); err != nil {
		t.Errorf("refusePrivate(8.8.8.8:443) = %v", err)
	}
	if err := refusePrivate("tcp", fmt.Sprintf("[%s]:443", "::1"), nil); err == nil {
		t.Error("refusePrivate([::1]:443) = nil")
	}
}
