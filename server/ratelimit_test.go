package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth-dev/berth/config"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestRateLimiterBucket(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := newRateLimiter(0.25, 2, 100, clk.now)
	for i := range 2 {
		if ok, _ := l.allow("a"); !ok {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	ok, wait := l.allow("a")
	if ok || wait != 4*time.Second {
		t.Fatalf("past the burst: ok %v, wait %v (want 4s at 0.25/s)", ok, wait)
	}
	if ok, _ := l.allow("b"); !ok {
		t.Fatal("another client was limited")
	}
	clk.advance(3 * time.Second)
	if ok, wait := l.allow("a"); ok || wait != time.Second {
		t.Fatalf("3s later: ok %v, wait %v (want 1s)", ok, wait)
	}
	clk.advance(time.Second)
	if ok, _ := l.allow("a"); !ok {
		t.Fatal("a token refilled after 4s was refused")
	}
	if got := retryAfterSeconds(300 * time.Millisecond); got != 1 {
		t.Errorf("Retry-After for 0.3s = %d, want at least 1", got)
	}
	if got := retryAfterSeconds(4100 * time.Millisecond); got != 5 {
		t.Errorf("Retry-After for 4.1s = %d, want 5 (rounded up)", got)
	}
}

func TestRateLimiterEvictsAndStaysBounded(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := newRateLimiter(1, 2, 8, clk.now)
	// busy spends its bucket; seven others send one request each.
	l.allow("busy")
	l.allow("busy")
	for i := range 7 {
		l.allow(fmt.Sprint("idle", i))
	}
	if l.size() != 8 {
		t.Fatalf("size %d, want 8", l.size())
	}
	// A second later the idle buckets are full again (1+1 ≥ 2), busy's is
	// not (0+1): a new client evicts the idle ones only.
	clk.advance(time.Second)
	l.allow("new")
	if l.size() != 2 {
		t.Fatalf("after eviction: %d buckets, want 2 (busy, new)", l.size())
	}
	// busy's bucket survived: one token now, then none.
	if ok, _ := l.allow("busy"); !ok {
		t.Fatal("busy: the refilled token refused")
	}
	if ok, _ := l.allow("busy"); ok {
		t.Fatal("busy got a fresh bucket: its state was evicted while it was active")
	}
	// A flood of active clients, no time passing: the map never passes
	// its bound.
	for i := range 10_000 {
		l.allow(fmt.Sprint("flood", i))
		if n := l.size(); n > 8 {
			t.Fatalf("after %d flood clients: %d buckets, bound 8", i+1, n)
		}
	}
	// The periodic sweep forgets buckets that have refilled, with no new
	// client needed.
	clk.advance(rateSweepEvery)
	l.allow("late")
	if l.size() != 1 {
		t.Fatalf("after a sweep: %d buckets, want 1", l.size())
	}
}

// TestRateLimitClients: the limiter's client is clientID's, so an IPv6
// host cannot get a bucket per address of its /64.
func TestRateLimitClients(t *testing.T) {
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	h := withRateLimit(ok, config.RateLimit{RequestsPerSecond: 0.001, Burst: 1})
	get := func(remote string) int {
		r := httptest.NewRequest("GET", "/v2/", nil)
		r.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Code
	}
	for _, step := range []struct {
		remote string
		want   int
	}{
		{"[2001:db8::1]:1000", 200},
		{"[2001:db8::ffff]:2000", 429}, // the same /64
		{"[2001:db8:0:1::1]:1000", 200},
		{"10.0.0.1:1", 200},
		{"10.0.0.2:1", 200},
		{"10.0.0.1:2", 429},
	} {
		if got := get(step.remote); got != step.want {
			t.Errorf("%s: %d, want %d", step.remote, got, step.want)
		}
	}
}

func TestRateLimitSparesProbes(t *testing.T) {
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	h := withRateLimit(ok, config.RateLimit{RequestsPerSecond: 0.001, Burst: 1})
	get := func(p string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		return rec.Code
	}
	if get("/v2/") != 200 || get("/v2/") != 429 {
		t.Fatal("the limit does not apply")
	}
	for range 5 {
		if c1, c2 := get("/livez"), get("/readyz"); c1 != 200 || c2 != 200 {
			t.Fatalf("probes limited: %d %d", c1, c2)
		}
	}
	h = withRateLimit(ok, config.RateLimit{Burst: 1}) // requests_per_second 0: off
	for range 5 {
		if c := get("/v2/"); c != 200 {
			t.Fatalf("with the limit off: %d", c)
		}
	}
}

// TestRateLimitPerClient runs the whole handler with authentication: a
// user past the limit gets 429 TOOMANYREQUESTS with Retry-After, while
// another user, and anonymous requests from the same address, do not.
func TestRateLimitPerClient(t *testing.T) {
	dir := t.TempDir()
	htp := filepath.Join(dir, "htpasswd")
	var lines strings.Builder
	for _, u := range []string{"alice", "bob"} {
		h, err := bcrypt.GenerateFromPassword([]byte("pw-"+u), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&lines, "%s:%s\n", u, h)
	}
	if err := os.WriteFile(htp, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Auth.Htpasswd = htp
	cfg.Auth.Access = []config.AccessRule{{Repositories: []string{"**"}, Users: map[string][]string{"*": {"pull"}}}}
	// One request per 1000 s: the bucket does not refill during the test.
	cfg.Limits.RateLimit = config.RateLimit{RequestsPerSecond: 0.001, Burst: 3}
	srv := httptest.NewServer(newServer(t, cfg, nil).Handler())
	defer srv.Close()

	get := func(user string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+"/v2/", nil)
		if user != "" {
			req.SetBasicAuth(user, "pw-"+user)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for i := range 3 {
		res := get("alice")
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("alice's request %d: %d", i+1, res.StatusCode)
		}
	}
	res := get("alice")
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if res.StatusCode != 429 || json.Unmarshal(body, &e) != nil || len(e.Errors) != 1 || e.Errors[0].Code != "TOOMANYREQUESTS" {
		t.Fatalf("alice past the limit: %d %s", res.StatusCode, body)
	}
	// One token takes 1000 s at 0.001/s.
	if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 990 || ra > 1000 {
		t.Errorf("Retry-After %q, want about 1000", res.Header.Get("Retry-After"))
	}
	for i := range 3 {
		res := get("bob")
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("bob's request %d while alice is limited: %d", i+1, res.StatusCode)
		}
	}
	// Anonymous requests count against the address, not alice's name.
	res = get("")
	res.Body.Close()
	if res.StatusCode == 429 {
		t.Fatal("an anonymous request from alice's address was limited by her bucket")
	}
}

// TestFailedLoginsRateLimited (review finding): bad credentials are
// answered by the auth middleware, before the per-client limiter, so
// failures have their own bucket per address: once it is empty, requests
// with credentials from that address get 429 before any password is
// checked (a right guess included); requests without credentials are not
// affected by it.
func TestFailedLoginsRateLimited(t *testing.T) {
	dir := t.TempDir()
	htp := filepath.Join(dir, "htpasswd")
	h, err := bcrypt.GenerateFromPassword([]byte("pw-alice"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(htp, []byte("alice:"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.Auth.Htpasswd = htp
	cfg.Auth.Access = []config.AccessRule{{Repositories: []string{"**"}, Anonymous: []string{"pull"}, Users: map[string][]string{"*": {"pull"}}}}
	cfg.Limits.RateLimit = config.RateLimit{RequestsPerSecond: 0.001, Burst: 3}
	srv := httptest.NewServer(newServer(t, cfg, nil).Handler())
	defer srv.Close()
	status := func(user, pass, path string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusTooManyRequests && res.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		return res.StatusCode
	}
	for i := range 3 {
		if got := status("alice", fmt.Sprint("guess", i), "/v2/"); got != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d, want 401", i+1, got)
		}
	}
	if got := status("alice", "pw-alice", "/v2/"); got != http.StatusTooManyRequests {
		t.Errorf("the right password after the failure budget is spent: %d, want 429", got)
	}
	if got := status("", "", "/v2/_catalog"); got != http.StatusOK {
		t.Errorf("an anonymous request from the same address: %d, want 200", got)
	}
}
