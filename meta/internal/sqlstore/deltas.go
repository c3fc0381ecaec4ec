package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// Flatpak deltas (migration 0008): the store side of package delta (the
// contract is meta/metatest.RunDeltas). The label that selects targets and
// versions is a parameter (Dialect.Label), so no label name is written into
// these statements.

func validLabelKey(key string) error {
	for i := 0; i < len(key); i++ {
		if c := key[i]; c == '"' || c == '\\' || c < 0x20 {
			return fmt.Errorf("label key %q: quote, backslash or control character", key)
		}
	}
	if key == "" {
		return errors.New("empty label key")
	}
	return nil
}

// UnplannedDeltaTargets returns at most n tagged image manifests that
// carry label and have no delta plan, oldest push first.
func (s *Store) UnplannedDeltaTargets(ctx context.Context, label string, n int) ([]meta.DeltaTarget, error) {
	if err := validLabelKey(label); err != nil {
		return nil, fmt.Errorf("%s: delta targets: %w", s.name, err)
	}
	rows, err := s.r.Query(ctx, s.q.UnplannedTargets, s.q.Label(label), n)
	if err != nil {
		return nil, fmt.Errorf("%s: delta targets: %w", s.name, err)
	}
	defer rows.Close()
	var out []meta.DeltaTarget
	for rows.Next() {
		var (
			t      meta.DeltaTarget
			ref    sql.NullString
			pushed int64
		)
		if err := rows.Scan(&t.Repo, &t.Digest, &ref, &pushed); err != nil {
			return nil, fmt.Errorf("%s: delta targets: %w", s.name, err)
		}
		t.Ref, t.Pushed = ref.String, time.Unix(0, pushed)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: delta targets: %w", s.name, err)
	}
	return out, nil
}

// EarlierVersions returns at most n image manifests of repo whose label
// has value, pushed no later than target (and after since, when not
// zero), target excluded: newest first.
func (s *Store) EarlierVersions(ctx context.Context, repo string, target digest.Digest, label, value string, since time.Time, n int) ([]digest.Digest, error) {
	if err := validLabelKey(label); err != nil {
		return nil, fmt.Errorf("%s: earlier versions: %w", s.name, err)
	}
	after := int64(-1 << 63)
	if !since.IsZero() {
		after = since.UnixNano()
	}
	rows, err := s.r.Query(ctx, s.q.EarlierVersions, repo, s.q.Label(label), value, target.String(), after, n)
	if err != nil {
		return nil, fmt.Errorf("%s: earlier versions of %s@%s: %w", s.name, repo, target, err)
	}
	defer rows.Close()
	var out []digest.Digest
	for rows.Next() {
		var d digest.Digest
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("%s: earlier versions: %w", s.name, err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// PlanDeltas records target as planned and a pending pair from each
// source, in one transaction, if target is still a manifest of repo and
// was not planned before. It reports whether it planned.
func (s *Store) PlanDeltas(ctx context.Context, repo string, target digest.Digest, sources []digest.Digest) (bool, error) {
	planned := false
	err := s.write(ctx, func(tx *Tx) error {
		planned = false // a retried write starts again
		var one int
		err := tx.QueryRow(ctx, s.q.ManifestExistsByName, repo, target.String()).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		t := s.nowNanos()
		res, err := tx.Exec(ctx, s.q.InsertDeltaTarget, repo, target.String(), t)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		planned = true
		for _, src := range sources {
			if _, err := tx.Exec(ctx, s.q.InsertDeltaPair, repo, target.String(), src.String(), t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("%s: plan deltas of %s@%s: %w", s.name, repo, target, err)
	}
	return planned, nil
}

// ClaimDelta leases the oldest pending pair whose lease ended (none yet,
// or its holder died) to token until now+lease, and returns it; nil when
// there is none.
func (s *Store) ClaimDelta(ctx context.Context, token string, at time.Time, lease time.Duration) (*meta.DeltaPair, error) {
	if token == "" {
		return nil, fmt.Errorf("%s: claim delta: empty token", s.name)
	}
	var p *meta.DeltaPair
	err := s.write(ctx, func(tx *Tx) error {
		p = nil
		var (
			k        meta.DeltaKey
			attempts int
		)
		err := tx.QueryRow(ctx, s.q.ClaimableDelta, at.UnixNano()).Scan(&k.Repo, &k.Target, &k.Source, &attempts)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.q.LeaseDelta, k.Repo, k.Target.String(), k.Source.String(), token,
			at.Add(lease).UnixNano(), at.UnixNano()); err != nil {
			return err
		}
		p = &meta.DeltaPair{DeltaKey: k, State: meta.DeltaPending, Attempts: attempts + 1}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: claim delta: %w", s.name, err)
	}
	return p, nil
}

// RenewDelta extends token's lease on k until until; meta.ErrDeltaLost if
// token no longer holds it.
func (s *Store) RenewDelta(ctx context.Context, k meta.DeltaKey, token string, until time.Time) error {
	res, err := s.wexec(ctx, s.q.RenewDelta, k.Repo, k.Target.String(), k.Source.String(), token, until.UnixNano())
	if err != nil {
		return fmt.Errorf("%s: renew delta lease: %w", s.name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: renew delta lease of %s@%s: %w", s.name, k.Repo, k.Target, meta.ErrDeltaLost)
	}
	return nil
}

// FinishDelta records r for k if token still holds its lease, else
// meta.ErrDeltaLost. A result with State pending gives the pair back (it
// is claimed again later).
func (s *Store) FinishDelta(ctx context.Context, k meta.DeltaKey, token string, r meta.DeltaResult) error {
	res, err := s.wexec(ctx, s.q.FinishDelta, k.Repo, k.Target.String(), k.Source.String(), token,
		string(r.State), r.Blob.String(), r.Size, r.From.String(), r.To.String(), r.LayerSize, r.Detail, s.nowNanos())
	if err != nil {
		return fmt.Errorf("%s: finish delta: %w", s.name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: finish delta %s@%s from %s: %w", s.name, k.Repo, k.Target, k.Source, meta.ErrDeltaLost)
	}
	return nil
}

// RequeueDelta makes a ready pair pending again (its blob is gone: it is
// made again), with detail saying why. A pair in another state is left
// alone.
func (s *Store) RequeueDelta(ctx context.Context, k meta.DeltaKey, detail string) error {
	if _, err := s.wexec(ctx, s.q.RequeueDelta, k.Repo, k.Target.String(), k.Source.String(), detail, s.nowNanos()); err != nil {
		return fmt.Errorf("%s: requeue delta: %w", s.name, err)
	}
	return nil
}

// ReleaseDeltaLeases ends every lease: for a process that knows no other
// one works on the store (berth serve holding the storage lock).
func (s *Store) ReleaseDeltaLeases(ctx context.Context) error {
	if _, err := s.wexec(ctx, s.q.ReleaseDeltaLeases); err != nil {
		return fmt.Errorf("%s: release delta leases: %w", s.name, err)
	}
	return nil
}

// DeltaPairs returns every pair of repo, by target.
func (s *Store) DeltaPairs(ctx context.Context, repo string) ([]meta.DeltaPair, error) {
	rows, err := s.r.Query(ctx, s.q.DeltaPairs, repo)
	if err != nil {
		return nil, fmt.Errorf("%s: delta pairs of %s: %w", s.name, repo, err)
	}
	defer rows.Close()
	var out []meta.DeltaPair
	for rows.Next() {
		var (
			p                        meta.DeltaPair
			state                    string
			created, updated, pushed int64
		)
		if err := rows.Scan(&p.Repo, &p.Target, &p.Source, &state, &p.Blob, &p.Size, &p.From, &p.To,
			&p.LayerSize, &p.Detail, &p.Attempts, &created, &updated, &pushed); err != nil {
			return nil, fmt.Errorf("%s: delta pairs of %s: %w", s.name, repo, err)
		}
		p.State, p.Created, p.Updated = meta.DeltaState(state), time.Unix(0, created), time.Unix(0, updated)
		if pushed != 0 {
			p.SourcePushed = time.Unix(0, pushed)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// DeltaRepositories returns the repositories with delta pairs or delta
// manifests, in byte order.
func (s *Store) DeltaRepositories(ctx context.Context) ([]string, error) {
	rows, err := s.r.Query(ctx, s.q.DeltaRepos)
	if err != nil {
		return nil, fmt.Errorf("%s: delta repositories: %w", s.name, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("%s: delta repositories: %w", s.name, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// DropGoneDeltas deletes the pairs whose target or source manifest is
// gone, and the plans of targets that are gone, and returns the
// repositories that lost pairs (byte order, no repeats).
func (s *Store) DropGoneDeltas(ctx context.Context) ([]string, error) {
	var repos []string
	err := s.write(ctx, func(tx *Tx) error {
		repos = repos[:0]
		rows, err := tx.Query(ctx, s.q.DropGoneDeltaPairs)
		if err != nil {
			return err
		}
		for rows.Next() {
			var r string
			if err := rows.Scan(&r); err != nil {
				rows.Close()
				return err
			}
			repos = append(repos, r)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, s.q.DropGoneDeltaTargets)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: drop deltas of deleted images: %w", s.name, err)
	}
	slices.Sort(repos)
	return slices.Compact(repos), nil
}

// ResetDeltas deletes the pairs of repo; with replan it also forgets
// which targets were planned, so every tagged image is planned (and its
// deltas made) again.
func (s *Store) ResetDeltas(ctx context.Context, repo string, replan bool) error {
	err := s.write(ctx, func(tx *Tx) error {
		if _, err := tx.Exec(ctx, s.q.ResetDeltaPairs, repo); err != nil {
			return err
		}
		if replan {
			_, err := tx.Exec(ctx, s.q.ResetDeltaTargets, repo)
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: reset deltas of %s: %w", s.name, repo, err)
	}
	return nil
}

// DeltaManifests returns the delta manifests recorded for repo, live and
// retired.
func (s *Store) DeltaManifests(ctx context.Context, repo string) ([]meta.DeltaManifest, error) {
	rows, err := s.r.Query(ctx, s.q.DeltaManifests, repo)
	if err != nil {
		return nil, fmt.Errorf("%s: delta manifests of %s: %w", s.name, repo, err)
	}
	return s.scanDeltaManifests(rows)
}

func (s *Store) scanDeltaManifests(rows *sql.Rows) ([]meta.DeltaManifest, error) {
	defer rows.Close()
	var out []meta.DeltaManifest
	for rows.Next() {
		var (
			m       meta.DeltaManifest
			retired int64
		)
		if err := rows.Scan(&m.Repo, &m.Digest, &m.Target, &retired); err != nil {
			return nil, fmt.Errorf("%s: delta manifests: %w", s.name, err)
		}
		if retired != 0 {
			m.Retired = time.Unix(0, retired)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: delta manifests: %w", s.name, err)
	}
	return out, nil
}

// SetLiveDeltaManifests records live (target -> delta manifest digest) as
// repo's live delta manifests, in one transaction: each is recorded live,
// and every other live one is retired at at.
func (s *Store) SetLiveDeltaManifests(ctx context.Context, repo string, live map[digest.Digest]digest.Digest, at time.Time) error {
	err := s.write(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, s.q.DeltaManifests, repo)
		if err != nil {
			return err
		}
		cur, err := s.scanDeltaManifests(rows)
		if err != nil {
			return err
		}
		keep := make(map[digest.Digest]bool, len(live))
		for _, d := range live {
			keep[d] = true
		}
		for _, m := range cur {
			if m.Retired.IsZero() && !keep[m.Digest] {
				if _, err := tx.Exec(ctx, s.q.RetireDeltaManif, repo, m.Digest.String(), at.UnixNano()); err != nil {
					return err
				}
			}
		}
		for target, d := range live {
			if _, err := tx.Exec(ctx, s.q.InsertDeltaManif, repo, d.String(), target.String()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: live delta manifests of %s: %w", s.name, repo, err)
	}
	return nil
}

// RetiredDeltaManifests returns at most n delta manifests retired before
// before, oldest first.
func (s *Store) RetiredDeltaManifests(ctx context.Context, before time.Time, n int) ([]meta.DeltaManifest, error) {
	rows, err := s.r.Query(ctx, s.q.RetiredDeltas, before.UnixNano(), n)
	if err != nil {
		return nil, fmt.Errorf("%s: retired delta manifests: %w", s.name, err)
	}
	return s.scanDeltaManifests(rows)
}

// ForgetDeltaManifest removes the record of a retired delta manifest
// (after its manifest was deleted). A live one is left alone.
func (s *Store) ForgetDeltaManifest(ctx context.Context, repo string, d digest.Digest) error {
	if _, err := s.wexec(ctx, s.q.ForgetDeltaManif, repo, d.String()); err != nil {
		return fmt.Errorf("%s: forget delta manifest %s@%s: %w", s.name, repo, d, err)
	}
	return nil
}
