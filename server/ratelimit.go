package server

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/berth-dev/berth/config"
)

// maxRateBuckets bounds the clients the rate limiter remembers at once
// (about 100 bytes each): past it, idle clients are forgotten first, then
// random ones (which start again with a full bucket), so memory stays flat
// however many addresses a flood comes from.
const maxRateBuckets = 1 << 16

// rateSweepEvery is how often buckets that have refilled are dropped.
const rateSweepEvery = time.Minute

// withRateLimit answers 429 TOOMANYREQUESTS, with Retry-After, to a client
// past limits.rate_limit. It runs after authentication (the client is
// clientID's: its user name when it has one, else its address, an IPv6
// one by its /64) and before the handlers; the probes are
// never limited (a busy client must not make its node look dead).
func withRateLimit(next http.Handler, rl config.RateLimit) http.Handler {
	if rl.RequestsPerSecond <= 0 {
		return next
	}
	l := newRateLimiter(rl.RequestsPerSecond, rl.Burst, maxRateBuckets, time.Now)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/livez", "/readyz":
			next.ServeHTTP(w, r)
			return
		}
		if ok, wait := l.allow(clientID(r)); !ok {
			tooMany(w, wait)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// retryAfterSeconds is wait in whole seconds, rounded up, at least 1.
func retryAfterSeconds(wait time.Duration) int64 {
	s := int64(math.Ceil(wait.Seconds()))
	return max(s, 1)
}

// rateLimiter is a token bucket per client.
type rateLimiter struct {
	rate  float64 // tokens per second
	burst float64
	max   int
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was computed
}

func newRateLimiter(rate float64, burst, maxBuckets int, now func() time.Time) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), max: maxBuckets, now: now,
		buckets: map[string]*bucket{}, lastSweep: now()}
}

// allow takes a token from key's bucket. Without one, it returns how long
// until the next token.
func (l *rateLimiter) allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= rateSweepEvery {
		l.sweep(now)
	}
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.makeRoom(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens = l.level(b, now)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// exhausted reports, without taking a token, whether key's bucket is
// empty, and how long until its next token.
func (l *rateLimiter) exhausted(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		return false, 0
	}
	if t := l.level(b, now); t < 1 {
		return true, time.Duration((1 - t) / l.rate * float64(time.Second))
	}
	return false, 0
}

// failedLogins limits failed authentications per client address with the
// rate limit's settings (nil when the limit is off). withAuth answers bad
// credentials before the per-client limiter runs, so without it password
// guessing would be unlimited: an address whose failures used up its
// bucket gets 429 before its credentials are even checked.
func failedLogins(rl config.RateLimit) *rateLimiter {
	if rl.RequestsPerSecond <= 0 {
		return nil
	}
	return newRateLimiter(rl.RequestsPerSecond, rl.Burst, maxRateBuckets, time.Now)
}

// tooMany answers 429 TOOMANYREQUESTS with Retry-After.
func tooMany(w http.ResponseWriter, wait time.Duration) {
	secs := retryAfterSeconds(wait)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeJSONError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS",
		"too many requests: retry after "+strconv.FormatInt(secs, 10)+" s")
}

// level is b's tokens at now: refilled at rate, capped at burst. (A clock
// that went back refills nothing.)
func (l *rateLimiter) level(b *bucket, now time.Time) float64 {
	elapsed := max(now.Sub(b.at).Seconds(), 0)
	return min(l.burst, b.tokens+elapsed*l.rate)
}

// sweep drops the buckets that have refilled: a full bucket is the same
// as none, so forgetting it changes nothing for its client.
func (l *rateLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.buckets {
		if l.level(b, now) >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// makeRoom frees at least an eighth of the buckets: the full ones, then
// (when every client is busy, a flood from many addresses) random ones,
// so a full map costs one pass per max/8 new clients.
func (l *rateLimiter) makeRoom(now time.Time) {
	l.sweep(now)
	target := l.max - max(l.max/8, 1)
	for k := range l.buckets {
		if len(l.buckets) <= target {
			break
		}
		delete(l.buckets, k)
	}
}

// size is the number of buckets held (for tests).
func (l *rateLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
