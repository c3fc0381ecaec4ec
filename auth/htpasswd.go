package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

const (
	// maxHtpasswdBytes bounds the file read at each change.
	maxHtpasswdBytes = 16 << 20
	// maxBcryptCost refuses hashes whose check would take seconds
	// (cost 16 ≈ 4 s): one such line would make every login a DoS.
	maxBcryptCost = 16
	// maxPasswordBytes: bcrypt reads only the first 72 bytes, so a longer
	// password would be accepted with anything after byte 72.
	maxPasswordBytes = 72
	// The cache of verified (user, password) pairs.
	cacheTTL     = 5 * time.Minute
	cacheEntries = 4096
)

// fileID is what identifies a version of the htpasswd file; any change
// of it triggers a re-read.
type fileID struct {
	mtime      int64
	size       int64
	dev, inode uint64
}

func idOf(fi fs.FileInfo) fileID {
	d, i := inode(fi)
	return fileID{mtime: fi.ModTime().UnixNano(), size: fi.Size(), dev: d, inode: i}
}

// htState is one loaded version of the file.
type htState struct {
	id      fileID
	missing bool              // the file could not be read: nobody is let in
	users   map[string][]byte // user → bcrypt hash
	// costs holds each user's bcrypt cost, in the order of their names,
	// and costKey is a hash of the file: an unknown user is checked at
	// costs[HMAC(costKey, name) mod len], the cost of a user the name
	// picks, so that with mixed costs an unknown name answers as fast
	// as some real user does (see dummyCost).
	costs   []int
	costKey [32]byte
}

// dummyCost is the bcrypt cost at which an unknown user's password is
// checked. A known user's wrong password takes the time of that user's
// own cost; if every unknown name took the highest cost, a user at a
// lower one would answer faster than any unknown name, and a stopwatch
// would tell which names exist. Each name is mapped to the cost of one
// user, drawn by a keyed hash of the name: stable for the name (a
// repeated measurement agrees), spread over the file's costs as the
// users are, and not predictable without the file (the key is a hash of
// its contents).
func (st *htState) dummyCost(user string) int {
	if len(st.costs) == 0 {
		return bcrypt.DefaultCost
	}
	m := hmac.New(sha256.New, st.costKey[:])
	m.Write([]byte(user))
	i := binary.BigEndian.Uint64(m.Sum(nil)[:8]) % uint64(len(st.costs))
	return st.costs[i]
}

// costRange returns the lowest and highest of costs (0, 0 for none).
func costRange(costs []int) (lo, hi int) {
	if len(costs) == 0 {
		return 0, 0
	}
	return slices.Min(costs), slices.Max(costs)
}

// userCosts returns each user's bcrypt cost, ordered by user name.
func userCosts(users map[string][]byte) []int {
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	slices.Sort(names)
	costs := make([]int, 0, len(names))
	for _, u := range names {
		c, _ := bcrypt.Cost(users[u]) // parseHtpasswd loaded only hashes whose cost it read
		costs = append(costs, c)
	}
	return costs
}

// htpasswd is the htpasswd file, re-read whenever a stat shows it changed,
// with a cache of verified passwords and a bound on concurrent bcrypt work.
type htpasswd struct {
	path   string
	log    *slog.Logger
	reload sync.Mutex
	state  atomic.Pointer[htState]

	// sem bounds concurrent bcrypt comparisons to half the cores, so a
	// flood of wrong passwords cannot take every core.
	sem chan struct{}

	cacheKey []byte // random per process: keys the cache's hashes
	cacheMu  sync.Mutex
	cache    map[[32]byte]time.Time // keyed hash → expiry

	// compares counts bcrypt comparisons (tests check the cache and that
	// an unknown user costs one too).
	compares atomic.Int64

	dummyMu sync.Mutex
	dummy   map[int][]byte // cost → hash of a random password, for unknown users
}

func openHtpasswd(path string, log *slog.Logger) (*htpasswd, error) {
	h := &htpasswd{
		path:     path,
		log:      log,
		sem:      make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
		cacheKey: make([]byte, 32),
		cache:    map[[32]byte]time.Time{},
		dummy:    map[int][]byte{},
	}
	rand.Read(h.cacheKey)
	st, err := h.load()
	if err != nil {
		return nil, fmt.Errorf("auth: htpasswd: %w", err)
	}
	h.state.Store(st)
	return h, nil
}

// load reads and parses the file.
func (h *htpasswd) load() (*htState, error) {
	f, err := os.Open(h.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxHtpasswdBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxHtpasswdBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", h.path, maxHtpasswdBytes)
	}
	users, warnings := parseHtpasswd(data)
	for _, w := range warnings {
		h.log.Warn("htpasswd: line skipped", "file", h.path, "reason", w)
	}
	st := &htState{id: idOf(fi), users: users, costs: userCosts(users), costKey: sha256.Sum256(data)}
	if lo, hi := costRange(st.costs); lo < hi {
		h.log.Warn("htpasswd: users' bcrypt costs differ; a password at a lower cost is cheaper to guess, so hash them all at one cost (htpasswd -B -C N)",
			"file", h.path, "lowest", lo, "highest", hi)
	}
	return st, nil
}

// current returns the file's users, re-reading it when a stat shows a
// change (mtime, size or inode). A file that vanished or cannot be read
// lets nobody in until it is back (fail closed).
func (h *htpasswd) current() *htState {
	cur := h.state.Load()
	fi, err := os.Stat(h.path)
	if err == nil && !cur.missing && idOf(fi) == cur.id {
		return cur
	}
	h.reload.Lock()
	defer h.reload.Unlock()
	cur = h.state.Load()
	if fi, err = os.Stat(h.path); err == nil && !cur.missing && idOf(fi) == cur.id {
		return cur
	}
	st, err := h.load()
	if err != nil {
		if !cur.missing {
			h.log.Error("htpasswd: cannot read the file; refusing every user until it is back", "file", h.path, "err", err)
		}
		st = &htState{missing: true, users: map[string][]byte{}}
	} else {
		h.log.Info("htpasswd: reloaded", "file", h.path, "users", len(st.users))
	}
	// A new version invalidates every cached verification (the entries
	// are in the cache keys too; this also frees the memory at once).
	h.cacheMu.Lock()
	clear(h.cache)
	h.cacheMu.Unlock()
	h.state.Store(st)
	return st
}

// exists reports whether user is in the current file, and its hash.
func (h *htpasswd) lookup(user string) ([]byte, bool) {
	hash, ok := h.current().users[user]
	return hash, ok
}

// parseHtpasswd reads "user:hash" lines. Blank lines and '#' comments are
// ignored. Only bcrypt hashes ($2a$, $2b$, $2y$) are accepted: any other
// line is skipped with a warning (MD5-crypt, SHA1 and plain text are
// fast to brute-force), and so is a second line for the same user (the
// first wins, as in Apache).
func parseHtpasswd(data []byte) (map[string][]byte, []string) {
	users := map[string][]byte{}
	var warnings []string
	for n, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 || bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			continue
		}
		user, hash, ok := strings.Cut(string(line), ":")
		switch {
		case !ok:
			warnings = append(warnings, fmt.Sprintf("line %d: no ':'", n+1))
			continue
		case !validUserName(user):
			warnings = append(warnings, fmt.Sprintf("line %d: invalid user name", n+1))
			continue
		case !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$"):
			warnings = append(warnings, fmt.Sprintf("line %d (user %q): not a bcrypt hash (only $2a$, $2b$, $2y$ are accepted; use htpasswd -B)", n+1, user))
			continue
		}
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil || len(hash) != 60 {
			warnings = append(warnings, fmt.Sprintf("line %d (user %q): malformed bcrypt hash", n+1, user))
			continue
		}
		if cost > maxBcryptCost {
			warnings = append(warnings, fmt.Sprintf("line %d (user %q): bcrypt cost %d above %d", n+1, user, cost, maxBcryptCost))
			continue
		}
		if _, dup := users[user]; dup {
			warnings = append(warnings, fmt.Sprintf("line %d: user %q again (the first line wins)", n+1, user))
			continue
		}
		users[user] = []byte(hash)
	}
	return users, warnings
}

// cacheID is the keyed hash under which a verified (user, password,
// htpasswd entry) is remembered: the password itself is never kept, and
// a changed entry (new password) can never hit an old verification.
func (h *htpasswd) cacheID(user, pass string, hash []byte) [32]byte {
	m := hmac.New(sha256.New, h.cacheKey)
	for _, part := range [][]byte{[]byte(user), []byte(pass), hash} {
		var l [8]byte
		n := len(part)
		for i := range l {
			l[i] = byte(n >> (8 * i))
		}
		m.Write(l[:]) // length-prefixed: no ambiguity between the parts
		m.Write(part)
	}
	var id [32]byte
	m.Sum(id[:0])
	return id
}

func (h *htpasswd) cached(id [32]byte, now time.Time) bool {
	h.cacheMu.Lock()
	defer h.cacheMu.Unlock()
	exp, ok := h.cache[id]
	if ok && now.After(exp) {
		delete(h.cache, id)
		return false
	}
	return ok
}

func (h *htpasswd) remember(id [32]byte, now time.Time) {
	h.cacheMu.Lock()
	defer h.cacheMu.Unlock()
	if len(h.cache) >= cacheEntries {
		for k, exp := range h.cache {
			if now.After(exp) {
				delete(h.cache, k)
			}
		}
		// Still full: drop arbitrary entries (map order); they only cost
		// one more bcrypt each.
		for k := range h.cache {
			if len(h.cache) < cacheEntries {
				break
			}
			delete(h.cache, k)
		}
	}
	h.cache[id] = now.Add(cacheTTL)
}

// dummyHash is a hash of a random password at cost (dummyCost): an
// unknown user costs the same bcrypt comparison as a known user's wrong
// password.
func (h *htpasswd) dummyHash(cost int) []byte {
	h.dummyMu.Lock()
	defer h.dummyMu.Unlock()
	if d, ok := h.dummy[cost]; ok {
		return d
	}
	d, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
	if err != nil { // cannot happen for a cost within bcrypt's range
		d, _ = bcrypt.GenerateFromPassword([]byte(rand.Text()), bcrypt.DefaultCost)
	}
	h.dummy[cost] = d
	return d
}

var errWrongPassword = errors.New("wrong user name or password")

// verify checks user's password against the current file.
func (h *htpasswd) verify(ctx context.Context, user, pass string, now time.Time) error {
	if len(pass) > maxPasswordBytes {
		return fmt.Errorf("password longer than %d bytes (bcrypt would ignore the rest)", maxPasswordBytes)
	}
	st := h.current()
	if st.missing {
		return errors.New("the htpasswd file cannot be read")
	}
	hash, known := st.users[user]
	var id [32]byte
	if known {
		id = h.cacheID(user, pass, hash)
		if h.cached(id, now) {
			return nil
		}
	} else {
		hash = h.dummyHash(st.dummyCost(user))
	}
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting to check the password: %w", ctx.Err())
	}
	h.compares.Add(1)
	err := bcrypt.CompareHashAndPassword(hash, []byte(pass))
	<-h.sem
	if err != nil || !known {
		return errWrongPassword
	}
	h.remember(id, now)
	return nil
}

// checkPassword verifies Basic credentials against the htpasswd file.
func (s *Service) checkPassword(ctx context.Context, user, pass string) error {
	if s.htp == nil {
		return unauthenticated("basic auth: no htpasswd file is configured")
	}
	if err := s.htp.verify(ctx, user, pass, s.now()); err != nil {
		return unauthenticated("basic auth for %q: %v", user, err)
	}
	return nil
}
