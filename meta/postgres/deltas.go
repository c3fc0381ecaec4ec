package postgres

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
// versions is a parameter (a JSON path built by labelPath), so no label
// name is written into these statements.

const (
	// Tagged image manifests with the label $1 (a JSON path) and no plan,
	// oldest push first, at most $2.
	qUnplannedTargets = `SELECT r.name, m.digest, m.labels ->> $1, m.pushed
FROM manifests m
JOIN repositories r ON r.id = m.repo_id
WHERE m.media_type IN ` + imageTypesSQL + `
  AND m.labels ? $1
  AND EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)
  AND NOT EXISTS (SELECT 1 FROM delta_targets d WHERE d.repo = r.name AND d.target = m.digest)
ORDER BY m.pushed, r.name, m.digest
LIMIT $2`
	// The image manifests of repository $1 whose label ($2, a JSON path)
	// is $3, pushed at or before the manifest $4 and after $5 (unix ns),
	// other than $4: newest first, at most $6.
	qEarlierVersions = `SELECT m.digest
FROM manifests m
JOIN repositories r ON r.id = m.repo_id
WHERE r.name = $1 AND m.media_type IN ` + imageTypesSQL + `
  AND m.labels ->> $2 = $3
  AND m.digest <> $4
  AND m.pushed <= (SELECT t.pushed FROM manifests t WHERE t.repo_id = m.repo_id AND t.digest = $4)
  AND m.pushed > $5
ORDER BY m.pushed DESC, m.digest DESC
LIMIT $6`
	qManifestExistsByName = `SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repo_id
WHERE r.name = $1 AND m.digest = $2`
	qInsertDeltaTarget = `INSERT INTO delta_targets (repo, target, planned) VALUES ($1, $2, $3)
ON CONFLICT (repo, target) DO NOTHING`
	qInsertDeltaPair = `INSERT INTO delta_pairs (repo, target, source, state, created, updated)
VALUES ($1, $2, $3, 'pending', $4, $4)
ON CONFLICT (repo, target, source) DO NOTHING`
	// The oldest pending pair whose lease ended before $1.
	qClaimableDelta = `SELECT repo, target, source, attempts FROM delta_pairs
WHERE state = 'pending' AND lease_until < $1
ORDER BY created, repo, target, source LIMIT 1`
	qLeaseDelta = `UPDATE delta_pairs SET lease_token = $4, lease_until = $5, attempts = attempts + 1, updated = $6
WHERE repo = $1 AND target = $2 AND source = $3 AND state = 'pending' AND lease_until < $6`
	qRenewDelta = `UPDATE delta_pairs SET lease_until = $5
WHERE repo = $1 AND target = $2 AND source = $3 AND state = 'pending' AND lease_token = $4`
	qFinishDelta = `UPDATE delta_pairs SET state = $5, blob = $6, size = $7, diff_from = $8, diff_to = $9,
    layer_size = $10, detail = $11, lease_token = '', lease_until = 0, updated = $12
WHERE repo = $1 AND target = $2 AND source = $3 AND state = 'pending' AND lease_token = $4`
	qRequeueDelta = `UPDATE delta_pairs SET state = 'pending', blob = '', size = 0, detail = $4,
    lease_token = '', lease_until = 0, updated = $5
WHERE repo = $1 AND target = $2 AND source = $3 AND state = 'ready'`
	qReleaseDeltaLeases = `UPDATE delta_pairs SET lease_token = '', lease_until = 0 WHERE state = 'pending' AND lease_token <> ''`
	qDeltaPairs         = `SELECT p.repo, p.target, p.source, p.state, p.blob, p.size, p.diff_from, p.diff_to, p.layer_size, p.detail,
    p.attempts, p.created, p.updated,
    COALESCE((SELECT m.pushed FROM manifests m JOIN repositories r ON r.id = m.repo_id
              WHERE r.name = p.repo AND m.digest = p.source), 0)
FROM delta_pairs p WHERE p.repo = $1
ORDER BY p.target, p.created, p.source`
	qDeltaRepos = `SELECT DISTINCT repo FROM (
    SELECT repo FROM delta_pairs UNION SELECT repo FROM delta_manifests
) d ORDER BY repo`
	// Pairs (and plans) whose target or source is no longer a manifest of
	// their repository.
	qDropGoneDeltaPairs = `DELETE FROM delta_pairs AS p
WHERE NOT EXISTS (SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repo_id
                  WHERE r.name = p.repo AND m.digest = p.target)
   OR NOT EXISTS (SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repo_id
                  WHERE r.name = p.repo AND m.digest = p.source)
RETURNING repo`
	qDropGoneDeltaTargets = `DELETE FROM delta_targets AS d
WHERE NOT EXISTS (SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repo_id
                  WHERE r.name = d.repo AND m.digest = d.target)`
	qResetDeltaPairs   = `DELETE FROM delta_pairs WHERE repo = $1`
	qResetDeltaTargets = `DELETE FROM delta_targets WHERE repo = $1`
	qDeltaManifests    = `SELECT repo, digest, target, retired FROM delta_manifests WHERE repo = $1 ORDER BY target, digest`
	qInsertDeltaManif  = `INSERT INTO delta_manifests (repo, digest, target, retired) VALUES ($1, $2, $3, 0)
ON CONFLICT (repo, digest) DO UPDATE SET target = excluded.target, retired = 0`
	qRetireDeltaManif = `UPDATE delta_manifests SET retired = $3 WHERE repo = $1 AND digest = $2 AND retired = 0`
	qRetiredDeltas    = `SELECT repo, digest, target, retired FROM delta_manifests
WHERE retired <> 0 AND retired < $1 ORDER BY retired, repo, digest LIMIT $2`
	qForgetDeltaManif = `DELETE FROM delta_manifests WHERE repo = $1 AND digest = $2 AND retired <> 0`
)

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
		return nil, fmt.Errorf("postgres: delta targets: %w", err)
	}
	rows, err := s.r.query(ctx, qUnplannedTargets, label, n)
	if err != nil {
		return nil, fmt.Errorf("postgres: delta targets: %w", err)
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
			return nil, fmt.Errorf("postgres: delta targets: %w", err)
		}
		t.Ref, t.Pushed = ref.String, time.Unix(0, pushed)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: delta targets: %w", err)
	}
	return out, nil
}

// EarlierVersions returns at most n image manifests of repo whose label
// has value, pushed no later than target (and after since, when not
// zero), target excluded: newest first.
func (s *Store) EarlierVersions(ctx context.Context, repo string, target digest.Digest, label, value string, since time.Time, n int) ([]digest.Digest, error) {
	if err := validLabelKey(label); err != nil {
		return nil, fmt.Errorf("postgres: earlier versions: %w", err)
	}
	after := int64(-1 << 63)
	if !since.IsZero() {
		after = since.UnixNano()
	}
	rows, err := s.r.query(ctx, qEarlierVersions, repo, label, value, target.String(), after, n)
	if err != nil {
		return nil, fmt.Errorf("postgres: earlier versions of %s@%s: %w", repo, target, err)
	}
	defer rows.Close()
	var out []digest.Digest
	for rows.Next() {
		var d digest.Digest
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("postgres: earlier versions: %w", err)
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
	err := s.write(ctx, func(tx txn) error {
		planned = false
		var one int
		err := tx.queryRow(ctx, qManifestExistsByName, repo, target.String()).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		t := now()
		res, err := tx.exec(ctx, qInsertDeltaTarget, repo, target.String(), t)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		planned = true
		for _, src := range sources {
			if _, err := tx.exec(ctx, qInsertDeltaPair, repo, target.String(), src.String(), t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("postgres: plan deltas of %s@%s: %w", repo, target, err)
	}
	return planned, nil
}

// ClaimDelta leases the oldest pending pair whose lease ended (none yet,
// or its holder died) to token until now+lease, and returns it; nil when
// there is none.
func (s *Store) ClaimDelta(ctx context.Context, token string, at time.Time, lease time.Duration) (*meta.DeltaPair, error) {
	if token == "" {
		return nil, errors.New("postgres: claim delta: empty token")
	}
	var p *meta.DeltaPair
	err := s.write(ctx, func(tx txn) error {
		p = nil
		var (
			k        meta.DeltaKey
			attempts int
		)
		err := tx.queryRow(ctx, qClaimableDelta, at.UnixNano()).Scan(&k.Repo, &k.Target, &k.Source, &attempts)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.exec(ctx, qLeaseDelta, k.Repo, k.Target.String(), k.Source.String(), token,
			at.Add(lease).UnixNano(), at.UnixNano()); err != nil {
			return err
		}
		p = &meta.DeltaPair{DeltaKey: k, State: meta.DeltaPending, Attempts: attempts + 1}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: claim delta: %w", err)
	}
	return p, nil
}

// RenewDelta extends token's lease on k until until; meta.ErrDeltaLost if
// token no longer holds it.
func (s *Store) RenewDelta(ctx context.Context, k meta.DeltaKey, token string, until time.Time) error {
	res, err := s.w.exec(ctx, qRenewDelta, k.Repo, k.Target.String(), k.Source.String(), token, until.UnixNano())
	if err != nil {
		return fmt.Errorf("postgres: renew delta lease: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("postgres: renew delta lease of %s@%s: %w", k.Repo, k.Target, meta.ErrDeltaLost)
	}
	return nil
}

// FinishDelta records r for k if token still holds its lease, else
// meta.ErrDeltaLost. A result with State pending gives the pair back (it
// is claimed again later).
func (s *Store) FinishDelta(ctx context.Context, k meta.DeltaKey, token string, r meta.DeltaResult) error {
	res, err := s.w.exec(ctx, qFinishDelta, k.Repo, k.Target.String(), k.Source.String(), token,
		string(r.State), r.Blob.String(), r.Size, r.From.String(), r.To.String(), r.LayerSize, r.Detail, now())
	if err != nil {
		return fmt.Errorf("postgres: finish delta: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("postgres: finish delta %s@%s from %s: %w", k.Repo, k.Target, k.Source, meta.ErrDeltaLost)
	}
	return nil
}

// RequeueDelta makes a ready pair pending again (its blob is gone: it is
// made again), with detail saying why. A pair in another state is left
// alone.
func (s *Store) RequeueDelta(ctx context.Context, k meta.DeltaKey, detail string) error {
	if _, err := s.w.exec(ctx, qRequeueDelta, k.Repo, k.Target.String(), k.Source.String(), detail, now()); err != nil {
		return fmt.Errorf("postgres: requeue delta: %w", err)
	}
	return nil
}

// ReleaseDeltaLeases ends every lease: for a process that knows no other
// one works on the store (berth serve holding the storage lock).
func (s *Store) ReleaseDeltaLeases(ctx context.Context) error {
	if _, err := s.w.exec(ctx, qReleaseDeltaLeases); err != nil {
		return fmt.Errorf("postgres: release delta leases: %w", err)
	}
	return nil
}

// DeltaPairs returns every pair of repo, by target.
func (s *Store) DeltaPairs(ctx context.Context, repo string) ([]meta.DeltaPair, error) {
	rows, err := s.r.query(ctx, qDeltaPairs, repo)
	if err != nil {
		return nil, fmt.Errorf("postgres: delta pairs of %s: %w", repo, err)
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
			return nil, fmt.Errorf("postgres: delta pairs of %s: %w", repo, err)
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
	rows, err := s.r.query(ctx, qDeltaRepos)
	if err != nil {
		return nil, fmt.Errorf("postgres: delta repositories: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("postgres: delta repositories: %w", err)
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
	err := s.write(ctx, func(tx txn) error {
		repos = repos[:0]
		rows, err := tx.query(ctx, qDropGoneDeltaPairs)
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
		_, err = tx.exec(ctx, qDropGoneDeltaTargets)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: drop deltas of deleted images: %w", err)
	}
	slices.Sort(repos)
	return slices.Compact(repos), nil
}

// ResetDeltas deletes the pairs of repo; with replan it also forgets
// which targets were planned, so every tagged image is planned (and its
// deltas made) again.
func (s *Store) ResetDeltas(ctx context.Context, repo string, replan bool) error {
	err := s.write(ctx, func(tx txn) error {
		if _, err := tx.exec(ctx, qResetDeltaPairs, repo); err != nil {
			return err
		}
		if replan {
			_, err := tx.exec(ctx, qResetDeltaTargets, repo)
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: reset deltas of %s: %w", repo, err)
	}
	return nil
}

// DeltaManifests returns the delta manifests recorded for repo, live and
// retired.
func (s *Store) DeltaManifests(ctx context.Context, repo string) ([]meta.DeltaManifest, error) {
	rows, err := s.r.query(ctx, qDeltaManifests, repo)
	if err != nil {
		return nil, fmt.Errorf("postgres: delta manifests of %s: %w", repo, err)
	}
	return scanDeltaManifests(rows)
}

func scanDeltaManifests(rows *sql.Rows) ([]meta.DeltaManifest, error) {
	defer rows.Close()
	var out []meta.DeltaManifest
	for rows.Next() {
		var (
			m       meta.DeltaManifest
			retired int64
		)
		if err := rows.Scan(&m.Repo, &m.Digest, &m.Target, &retired); err != nil {
			return nil, fmt.Errorf("postgres: delta manifests: %w", err)
		}
		if retired != 0 {
			m.Retired = time.Unix(0, retired)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: delta manifests: %w", err)
	}
	return out, nil
}

// SetLiveDeltaManifests records live (target -> delta manifest digest) as
// repo's live delta manifests, in one transaction: each is recorded live,
// and every other live one is retired at at.
func (s *Store) SetLiveDeltaManifests(ctx context.Context, repo string, live map[digest.Digest]digest.Digest, at time.Time) error {
	err := s.write(ctx, func(tx txn) error {
		rows, err := tx.query(ctx, qDeltaManifests, repo)
		if err != nil {
			return err
		}
		cur, err := scanDeltaManifests(rows)
		if err != nil {
			return err
		}
		keep := make(map[digest.Digest]bool, len(live))
		for _, d := range live {
			keep[d] = true
		}
		for _, m := range cur {
			if m.Retired.IsZero() && !keep[m.Digest] {
				if _, err := tx.exec(ctx, qRetireDeltaManif, repo, m.Digest.String(), at.UnixNano()); err != nil {
					return err
				}
			}
		}
		for target, d := range live {
			if _, err := tx.exec(ctx, qInsertDeltaManif, repo, d.String(), target.String()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: live delta manifests of %s: %w", repo, err)
	}
	return nil
}

// RetiredDeltaManifests returns at most n delta manifests retired before
// before, oldest first.
func (s *Store) RetiredDeltaManifests(ctx context.Context, before time.Time, n int) ([]meta.DeltaManifest, error) {
	rows, err := s.r.query(ctx, qRetiredDeltas, before.UnixNano(), n)
	if err != nil {
		return nil, fmt.Errorf("postgres: retired delta manifests: %w", err)
	}
	return scanDeltaManifests(rows)
}

// ForgetDeltaManifest removes the record of a retired delta manifest
// (after its manifest was deleted). A live one is left alone.
func (s *Store) ForgetDeltaManifest(ctx context.Context, repo string, d digest.Digest) error {
	if _, err := s.w.exec(ctx, qForgetDeltaManif, repo, d.String()); err != nil {
		return fmt.Errorf("postgres: forget delta manifest %s@%s: %w", repo, d, err)
	}
	return nil
}
