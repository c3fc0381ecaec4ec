package bench

import (
	"context"
	"fmt"
	"time"
)

// Seed stores n manifests (tagged, spread over 100 repositories, one
// config and layer shared by all) for the ready-time measurement.
func (r *Runner) Seed(ctx context.Context, n int) error {
	const repos = 100
	pre := r.uid("seed")
	im := newImage(pre, nil, 1<<10)
	for i := range min(repos, n) {
		if _, _, err := r.C.push(ctx, fmt.Sprintf("seed/r%03d", i), "base", im); err != nil {
			return fmt.Errorf("seeding: %w", err)
		}
	}
	start := time.Now()
	t, err := r.load(ctx, r.Sizes.Workers, n-min(repos, n), 24*time.Hour, func(ctx context.Context, _, i int) (int, int64, error) {
		m := manifest(im.cfg, fmt.Sprintf("%s-%d", pre, i), im.layer)
		return 1, 0, r.C.PutManifest(ctx, fmt.Sprintf("seed/r%03d", i%repos), fmt.Sprintf("s%d", i), m)
	})
	if err != nil && !(t.ops == 0 && n <= repos) {
		return fmt.Errorf("seeding: %w", err)
	}
	r.Log.Info("seeded", "manifests", n, "took", time.Since(start).Round(time.Millisecond))
	return nil
}
