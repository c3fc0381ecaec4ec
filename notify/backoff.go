package notify

import "time"

// backoff is the wait after the attempt-th failure (from 0) in a row:
// min doubled attempt times, capped at max, with "equal jitter": a random
// point (rnd in [0, 1)) in the upper half of it, so endpoints that failed
// together do not retry together, and a wait never falls below half the
// schedule.
func backoff(attempt int, min, max time.Duration, rnd float64) time.Duration {
	d := max
	if attempt < 62 && min<<attempt > 0 && min<<attempt < max {
		d = min << attempt
	}
	return d/2 + time.Duration(rnd*float64(d/2))
}
