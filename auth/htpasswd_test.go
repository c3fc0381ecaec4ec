package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestHtpasswdBcryptOnly(t *testing.T) {
	lines := []string{
		"# comment",
		"",
		"md5:$apr1$abcdefgh$0123456789012345678901",
		"sha:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
		"plain:password",
		"crypt:abJnggxhB/yWI",
		"a2:" + hashPW(t, "pw-a2"),
		"b2:" + strings.Replace(hashPW(t, "pw-b2"), "$2a$", "$2b$", 1),
		"y2:" + strings.Replace(hashPW(t, "pw-y2"), "$2a$", "$2y$", 1),
		"old2:" + strings.Replace(hashPW(t, "pw-old"), "$2a$", "$2$", 1),
		"short:$2a$04$tooshort",
		"costly:$2a$17$" + strings.Repeat("a", 53),
		"nocolon",
		"bad user:" + hashPW(t, "x"),
		"a2:" + hashPW(t, "second-line-loses"),
	}
	users, warnings := parseHtpasswd([]byte(strings.Join(lines, "\r\n")))
	for _, u := range []string{"a2", "b2", "y2"} {
		if _, ok := users[u]; !ok {
			t.Errorf("bcrypt user %s not loaded", u)
		}
	}
	if len(users) != 3 {
		t.Errorf("loaded %d users, want 3: %v", len(users), users)
	}
	if len(warnings) != 10 {
		t.Errorf("%d warnings, want 10: %q", len(warnings), warnings)
	}
	for _, w := range warnings {
		for _, l := range lines {
			if _, hash, ok := strings.Cut(l, ":"); ok && len(hash) > 4 && strings.Contains(w, hash) {
				t.Errorf("warning leaks a hash: %q", w)
			}
		}
	}

	// Through the service: the bcrypt users log in, the rest never.
	dir := t.TempDir()
	htp := writeFile(t, dir, "htpasswd", strings.Join(lines, "\n"))
	svc, err := New(Config{Htpasswd: htp}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for user, pw := range map[string]string{"a2": "pw-a2", "b2": "pw-b2", "y2": "pw-y2"} {
		if p, err := svc.Authenticate(request(basic(user, pw))); err != nil || p.Name != user || p.Method != MethodBasic {
			t.Errorf("%s: %+v, %v", user, p, err)
		}
	}
	for user, pw := range map[string]string{"plain": "password", "a2": "second-line-loses", "old2": "pw-old"} {
		if _, err := svc.Authenticate(request(basic(user, pw))); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s let in: %v", user, err)
		}
	}
}

func TestHtpasswdMissingAtNew(t *testing.T) {
	if _, err := New(Config{Htpasswd: filepath.Join(t.TempDir(), "nope")}, nil); err == nil {
		t.Fatal("New accepted a missing htpasswd file")
	}
}

// TestHtpasswdReload (V9): a removed user is refused at the very next
// request, a new user is let in, a changed password takes effect, all
// without a restart — also through the verified-password cache.
func TestHtpasswdReload(t *testing.T) {
	f := newFixture(t)
	auth := func(u, p string) error {
		_, err := f.svc.Authenticate(request(basic(u, p)))
		return err
	}
	if err := auth("alice", "alice-secret"); err != nil {
		t.Fatal(err)
	}
	if err := auth("alice", "alice-secret"); err != nil { // now cached
		t.Fatal(err)
	}
	// Remove alice (rename over the file, as htpasswd(1) does).
	delete(f.pass, "alice")
	writeFile(t, f.dir, "htpasswd", htpasswdText(t, f.pass))
	if err := auth("alice", "alice-secret"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("removed user accepted: %v", err)
	}
	if err := auth("bob", "bob-secret"); err != nil {
		t.Fatalf("remaining user refused: %v", err)
	}
	// Change bob's password in place (same inode, same size: only the
	// mtime tells).
	old := htpasswdText(t, f.pass)
	f.pass["bob"] = "bob-SECRET" // same length as before
	next := htpasswdText(t, f.pass)
	if len(old) != len(next) {
		t.Fatal("test wants a same-size file")
	}
	fi, _ := os.Stat(f.htp)
	if err := os.WriteFile(f.htp, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(f.htp, fi.ModTime().Add(time.Second), fi.ModTime().Add(time.Second))
	if err := auth("bob", "bob-secret"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("old password accepted after a change: %v", err)
	}
	if err := auth("bob", "bob-SECRET"); err != nil {
		t.Fatalf("new password refused: %v", err)
	}
	// Same mtime and size, but a new file (inode) renamed over it.
	fi, _ = os.Stat(f.htp)
	f.pass["bob"] = "bob-SECRE2"
	p := writeFile(t, f.dir, "htpasswd", htpasswdText(t, f.pass))
	os.Chtimes(p, fi.ModTime(), fi.ModTime())
	if err := auth("bob", "bob-SECRET"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("password of a replaced file with the same mtime and size accepted: %v", err)
	}
	// The file vanishes: nobody is let in (fail closed); it comes back:
	// users are let in again.
	os.Remove(f.htp)
	if err := auth("carol", "carol-secret"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("user accepted while the htpasswd file is missing: %v", err)
	}
	writeFile(t, f.dir, "htpasswd", htpasswdText(t, f.pass))
	if err := auth("carol", "carol-secret"); err != nil {
		t.Fatalf("user refused after the file came back: %v", err)
	}
}

// TestHtpasswdCache: a verified (user, password) costs one bcrypt, then
// none until the TTL; wrong passwords are never cached; an unknown user
// costs a bcrypt like a wrong password (no enumeration by work).
func TestHtpasswdCache(t *testing.T) {
	f := newFixture(t)
	h := f.svc.htp
	auth := func(u, p string) error {
		_, err := f.svc.Authenticate(request(basic(u, p)))
		return err
	}
	n := h.compares.Load()
	for range 5 {
		if err := auth("alice", "alice-secret"); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.compares.Load() - n; got != 1 {
		t.Fatalf("5 logins cost %d bcrypt comparisons, want 1", got)
	}
	// A different password for the same user is not a hit.
	for range 3 {
		if err := auth("alice", "alice-secreT"); err == nil {
			t.Fatal("wrong password accepted")
		}
	}
	if got := h.compares.Load() - n; got != 4 {
		t.Fatalf("wrong passwords cost %d comparisons in all, want 1+3", got)
	}
	// Unknown user: one comparison each, same error class.
	n = h.compares.Load()
	errUnknown := auth("mallory", "alice-secret")
	errWrong := auth("bob", "nope")
	if !errors.Is(errUnknown, ErrUnauthenticated) || !errors.Is(errWrong, ErrUnauthenticated) {
		t.Fatal("unknown user or wrong password accepted")
	}
	if got := h.compares.Load() - n; got != 2 {
		t.Fatalf("unknown user + wrong password cost %d comparisons, want 2", got)
	}
	// After the TTL the pair is verified again.
	n = h.compares.Load()
	f.now = f.now.Add(cacheTTL + time.Second)
	if err := auth("alice", "alice-secret"); err != nil {
		t.Fatal(err)
	}
	if got := h.compares.Load() - n; got != 1 {
		t.Fatalf("expired cache entry cost %d comparisons, want 1", got)
	}
	// The cache keys never hold the password.
	id := h.cacheID("alice", "alice-secret", []byte("x"))
	if strings.Contains(string(id[:]), "alice-secret") {
		t.Fatal("password in the cache key")
	}
	if h.cacheID("alice", "alice-secret", []byte("x")) == h.cacheID("alice", "alice-secret", []byte("y")) {
		t.Fatal("cache key ignores the htpasswd entry")
	}
	if h.cacheID("ab", "c", nil) == h.cacheID("a", "bc", nil) {
		t.Fatal("cache key is ambiguous between user and password")
	}
}

func TestHtpasswdCacheBounded(t *testing.T) {
	f := newFixture(t)
	h := f.svc.htp
	for i := range cacheEntries + 500 {
		h.remember(h.cacheID("u", string(rune(i)), nil), f.now)
	}
	if len(h.cache) > cacheEntries {
		t.Fatalf("cache holds %d entries, bound %d", len(h.cache), cacheEntries)
	}
}

// TestBcryptSemaphore: bcrypt work waits for a slot; with every slot
// taken a request waits (and gives up with its context) instead of
// starting another comparison.
func TestBcryptSemaphore(t *testing.T) {
	f := newFixture(t)
	h := f.svc.htp
	if cap(h.sem) < 1 || cap(h.sem) > max(1, runtimeProcs()/2) {
		t.Fatalf("semaphore of %d slots", cap(h.sem))
	}
	for range cap(h.sem) {
		h.sem <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := h.compares.Load()
	r := request(basic("bob", "bob-secret")).WithContext(ctx)
	if _, err := f.svc.Authenticate(r); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("authenticated without a bcrypt slot: %v", err)
	}
	if h.compares.Load() != n {
		t.Fatal("a comparison ran without a slot")
	}
	for range cap(h.sem) {
		<-h.sem
	}
	if _, err := f.svc.Authenticate(request(basic("bob", "bob-secret"))); err != nil {
		t.Fatal(err)
	}
}

func TestPasswordOver72Bytes(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("p", 72)
	htp := writeFile(t, dir, "htpasswd", "u:"+hashPW(t, long)+"\n")
	svc, err := New(Config{Htpasswd: htp}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(request(basic("u", long))); err != nil {
		t.Fatal(err)
	}
	// bcrypt ignores bytes after the 72nd: refuse instead of accepting
	// anything appended.
	if _, err := svc.Authenticate(request(basic("u", long+"anything"))); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("password over 72 bytes accepted: %v", err)
	}
}

// An unknown user is checked at the cost of a user its name picks, not
// at the file's highest: with mixed costs, a wrong password for a user
// at a lower cost would otherwise answer faster than any unknown name,
// and timing would tell which names exist.
func TestUnknownUserCostIsAUsers(t *testing.T) {
	hashAt := func(pw string, cost int) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	low, high := bcrypt.MinCost, bcrypt.MinCost+1
	dir := t.TempDir()
	mixed := writeFile(t, dir, "mixed", "alice:"+hashAt("a", low)+"\nbob:"+hashAt("b", high)+"\ncarol:"+hashAt("c", low)+"\n")
	var logged bytes.Buffer
	h, err := openHtpasswd(mixed, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if l := logged.String(); !strings.Contains(l, "costs differ") || !strings.Contains(l, fmt.Sprintf("lowest=%d highest=%d", low, high)) {
		t.Errorf("no warning about mixed costs: %q", l)
	}
	st := h.current()
	seen := map[int]string{}
	for i := range 200 {
		name := fmt.Sprintf("nobody%d", i)
		c := st.dummyCost(name)
		if c != low && c != high {
			t.Fatalf("%s: dummy cost %d, not a user's (%d or %d)", name, c, low, high)
		}
		if again := st.dummyCost(name); again != c {
			t.Fatalf("%s: dummy cost %d, then %d", name, c, again)
		}
		seen[c] = name
	}
	if len(seen) != 2 {
		t.Fatalf("200 unknown names all took cost %v: want both users' costs", seen)
	}

	// The same file in another process maps each name the same way (a
	// restart must not move an unknown name to another cost).
	h2, err := openHtpasswd(mixed, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for c, name := range seen {
		if got := h2.current().dummyCost(name); got != c {
			t.Errorf("%s: cost %d after re-opening, was %d", name, got, c)
		}
	}

	// verify checks an unknown name against a hash at its dummy cost.
	name := seen[low]
	if err := h.verify(context.Background(), name, "x", time.Now()); !errors.Is(err, errWrongPassword) {
		t.Fatalf("unknown user: %v", err)
	}
	h.dummyMu.Lock()
	_, atLow := h.dummy[low]
	_, atHigh := h.dummy[high]
	h.dummyMu.Unlock()
	if !atLow || atHigh {
		t.Errorf("unknown user %s (dummy cost %d) was checked against hashes at costs low %v, high %v", name, low, atLow, atHigh)
	}

	// One cost: every unknown name takes it, and nothing is logged.
	logged.Reset()
	same, err := openHtpasswd(writeFile(t, dir, "same", "alice:"+hashAt("a", high)+"\nbob:"+hashAt("b", high)+"\n"), slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if c := same.current().dummyCost(fmt.Sprintf("nobody%d", i)); c != high {
			t.Fatalf("one-cost file: dummy cost %d, want %d", c, high)
		}
	}
	if strings.Contains(logged.String(), "costs differ") {
		t.Errorf("warning for a file of one cost: %q", logged.String())
	}
	// No users: bcrypt's default cost.
	none, err := openHtpasswd(writeFile(t, dir, "none", "# nobody yet\n"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if c := none.current().dummyCost("x"); c != bcrypt.DefaultCost {
		t.Errorf("empty file: dummy cost %d, want %d", c, bcrypt.DefaultCost)
	}
}
