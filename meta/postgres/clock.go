package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Whose clock: the database's. Replicas on different machines stamp rows
// (links, pushes, uploads) and compute gc's cutoffs from them; with each
// process's own clock, a replica whose clock runs behind would stamp a
// fresh link as older than it is, and another replica's gc could collect
// it inside its grace. So the store's clock is PostgreSQL's
// (clock_timestamp()), read as an offset from this process's clock: one
// round trip at Open and again once a minute, in the background, never on
// a request's path. The offset is known to within half a round trip.

// clockQuery reads the database's clock, in microseconds since the epoch.
const clockQuery = `SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint`

// clockResample is how long an offset is trusted before it is measured
// again.
const clockResample = time.Minute

// dbClock is the database's clock: its time at the last measurement,
// advanced by this process's monotonic clock since, so stepping the wall
// clock (NTP, a resumed VM) changes nothing.
type dbClock struct {
	db    *sql.DB
	query string // reads the database's time in microseconds (clockQuery)
	last  atomic.Pointer[clockSample]
	mu    sync.Mutex // one measurement at a time
	log   func(err error)
	// tried is when a background measurement last began (monotonic, as
	// time since processStart): one at most every clockRetry.
	tried atomic.Int64
}

// processStart anchors dbClock.tried to the monotonic clock.
var processStart = time.Now()

// clockRetry spaces background measurements when they fail.
const clockRetry = 10 * time.Second

// clockSample is one measurement: the database's time, and this
// process's clock (with its monotonic reading) at the same instant.
type clockSample struct{ db, local time.Time }

// measure reads the database's clock once.
func (c *dbClock) measure(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.measureLocked(ctx)
}

func (c *dbClock) measureLocked(ctx context.Context) error {
	before := time.Now()
	var us int64
	if err := c.db.QueryRowContext(ctx, c.query).Scan(&us); err != nil {
		return fmt.Errorf("postgres: read the database's clock: %w", err)
	}
	mid := before.Add(time.Since(before) / 2) // keeps the monotonic reading
	c.last.Store(&clockSample{db: time.UnixMicro(us), local: mid})
	return nil
}

// now is the database's time. A measurement older than clockResample is
// taken again in the background (a failure keeps the old one, and is
// logged).
func (c *dbClock) now() time.Time {
	s := c.last.Load()
	elapsed := time.Since(s.local)
	if elapsed > clockResample && time.Since(processStart)-time.Duration(c.tried.Load()) > clockRetry && c.mu.TryLock() {
		c.tried.Store(int64(time.Since(processStart)))
		go func() {
			defer c.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.measureLocked(ctx); err != nil && c.log != nil {
				c.log(err)
			}
		}()
	}
	return s.db.Add(elapsed)
}

// ClockOffset is how far the database's clock is ahead of this process's
// wall clock, as last measured.
func (s *Store) ClockOffset() time.Duration {
	c := s.clock.last.Load()
	return c.db.Sub(c.local.Round(0))
}
