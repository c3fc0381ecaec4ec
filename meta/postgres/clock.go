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

// dbClock is this process's clock corrected by the offset measured to
// the database's.
type dbClock struct {
	db       *sql.DB
	query    string       // reads the database's time in microseconds (clockQuery)
	offset   atomic.Int64 // nanoseconds to add to time.Now
	measured atomic.Int64 // time.Now().UnixNano() of the last measurement
	mu       sync.Mutex   // one measurement at a time
	log      func(err error)
}

// measure reads the database's clock once and sets the offset.
func (c *dbClock) measure(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	before := time.Now()
	var us int64
	err := c.db.QueryRowContext(ctx, c.query).Scan(&us)
	if err != nil {
		return fmt.Errorf("postgres: read the database's clock: %w", err)
	}
	after := time.Now()
	mid := before.Add(after.Sub(before) / 2)
	c.offset.Store(time.UnixMicro(us).Sub(mid).Nanoseconds())
	c.measured.Store(after.UnixNano())
	return nil
}

// now is the database's time: this process's clock plus the offset. An
// offset older than clockResample is measured again in the background
// (a failure keeps the old one, and is logged).
func (c *dbClock) now() time.Time {
	t := time.Now()
	if t.UnixNano()-c.measured.Load() > int64(clockResample) && c.mu.TryLock() {
		c.measured.Store(t.UnixNano()) // no second resample meanwhile
		c.mu.Unlock()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.measure(ctx); err != nil && c.log != nil {
				c.log(err)
			}
		}()
	}
	return t.Add(time.Duration(c.offset.Load()))
}

// ClockOffset is how far the database's clock is ahead of this process's,
// as last measured.
func (s *Store) ClockOffset() time.Duration { return time.Duration(s.clock.offset.Load()) }
