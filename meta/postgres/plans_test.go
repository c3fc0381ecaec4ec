package postgres

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testenv/pgtest"
)

// TestHotPathPlans loads a store of 100,000 blobs, 110,000 links in 1,000
// repositories, 30,000 manifests with 90,000 references and 30,000 tags,
// and checks that PostgreSQL plans every hot-path query with an index:
// no sequential scan of a table that grows with the registry. With
// BERTH_PLANS_OUT set, it writes the plans there (docs/scaling.md quotes
// them, with the sizes raised).
func TestHotPathPlans(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 360,000 rows")
	}
	ctx := context.Background()
	s, err := Open(ctx, pgtest.DSN(t), Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const blobs, manifests = 100_000, 30_000
	for _, q := range []string{
		`INSERT INTO repositories (name, created) SELECT 'team/repo' || i, 0 FROM generate_series(1, 1000) i`,
		fmt.Sprintf(`INSERT INTO blobs (digest, size, created)
SELECT 'sha256:' || encode(sha256(i::text::bytea), 'hex'), 1000 + i, i FROM generate_series(1, %d) i`, blobs),
		fmt.Sprintf(`INSERT INTO blob_links (repo_id, digest, created)
SELECT r, 'sha256:' || encode(sha256(i::text::bytea), 'hex'), i FROM generate_series(1, %d) i, LATERAL (SELECT (i %% 1000) + 1 AS r) x
UNION ALL
SELECT ((i * 7) %% 1000) + 1, 'sha256:' || encode(sha256(i::text::bytea), 'hex'), i FROM generate_series(1, %d, 10) i
ON CONFLICT DO NOTHING`, blobs, blobs),
		fmt.Sprintf(`INSERT INTO manifests (repo_id, digest, media_type, content, size, artifact_type, subject, config,
    annotations, labels, os, architecture, variant, created, total_size, pushed)
SELECT (i %% 1000) + 1, 'sha256:' || encode(sha256(('m' || i)::bytea), 'hex'), 'application/vnd.oci.image.manifest.v1+json',
    '{}'::bytea, 2, '', '', 'sha256:' || encode(sha256((i * 3)::text::bytea), 'hex'),
    NULL, CASE WHEN i %% 100 = 0 THEN '{"org.flatpak.ref": "app/x/x86_64/stable"}'::jsonb END,
    'linux', 'amd64', '', NULL, 3000, i
FROM generate_series(1, %d) i`, manifests),
		fmt.Sprintf(`INSERT INTO manifest_refs (repo_id, manifest_digest, ord, ref_digest, kind, media_type, size, platform)
SELECT (i %% 1000) + 1, 'sha256:' || encode(sha256(('m' || i)::bytea), 'hex'), o,
    'sha256:' || encode(sha256((i * 3 + o)::text::bytea), 'hex'), 1, 'application/vnd.oci.image.layer.v1.tar+gzip', 1000, ''
FROM generate_series(1, %d) i, generate_series(0, 2) o`, manifests),
		fmt.Sprintf(`INSERT INTO tags (repo_id, name, digest, updated)
SELECT (i %% 1000) + 1, 'v' || i, 'sha256:' || encode(sha256(('m' || i)::bytea), 'hex'), i FROM generate_series(1, %d) i`, manifests),
		`ANALYZE`,
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q[:40], err)
		}
	}
	var digest, mdigest string
	if err := s.db.QueryRowContext(ctx, `SELECT 'sha256:' || encode(sha256('4242'::bytea), 'hex'), 'sha256:' || encode(sha256('m4242'::bytea), 'hex')`).Scan(&digest, &mdigest); err != nil {
		t.Fatal(err)
	}
	queries := []struct {
		name string
		q    string
		args []any
	}{
		{"blob HEAD/GET: the link (queries.BlobLink)", queries.BlobLink, []any{"team/repo243", digest}},
		{"manifest GET by tag (queries.ResolveTag)", queries.ResolveTag, []any{"team/repo243", "v4242"}},
		{"manifest GET (queries.GetManifest)", queries.GetManifest, []any{"team/repo243", mdigest}},
		{"manifest GET: references (queries.GetRefs)", queries.GetRefs, []any{243, mdigest}},
		{"manifest PUT: is each blob linked (queries.Linked)", queries.Linked, []any{243, digest}},
		{"manifest PUT: tag move (queries.TagDigest)", queries.TagDigest, []any{243, "v4242"}},
		{"tags list, a page (queries.Tags)", queries.Tags, []any{243, "", 100}},
		{"catalog, a page (queries.Repositories)", queries.Repositories, []any{"team/repo5", 100}},
		{"gc: unreferenced links of a repository, a page (queries.UnreferencedLinks)", queries.UnreferencedLinks, []any{243, "", int64(1) << 62, 500}},
		{"gc: unlinked blobs, a page (queries.UnlinkedBlobs)", queries.UnlinkedBlobs, []any{"", int64(1) << 62, 500}},
		{"Flatpak index generation (queries.FlatpakGeneration)", queries.FlatpakGeneration, nil},
	}
	big := regexp.MustCompile(`Seq Scan on (blobs|blob_links|manifests|manifest_refs|tags|repositories)\b`)
	var out strings.Builder
	for _, q := range queries {
		rows, err := s.db.QueryContext(ctx, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "+q.q, q.args...)
		if err != nil {
			t.Fatalf("%s: %v", q.name, err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		rows.Close()
		text := strings.Join(plan, "\n")
		fmt.Fprintf(&out, "-- %s\n%s\n\n", q.name, text)
		if m := big.FindString(text); m != "" {
			t.Errorf("%s: %s\n%s", q.name, m, text)
		}
	}
	if dir := os.Getenv("BERTH_PLANS_OUT"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "plans.txt"), []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
