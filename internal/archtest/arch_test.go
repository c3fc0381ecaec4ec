// Package archtest checks that the packages import only what DESIGN.md's
// "may import" column allows, so the data flow stays one-way: HTTP →
// handlers → meta/blob, and the stores never know about HTTP.
package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/berth-dev/berth"

// allowed lists, for each package, the project packages it may import
// (directly). Sub-packages of a store (blob/fs, meta/sqlite) count as their
// store. Packages not listed may import nothing from the project.
var allowed = map[string][]string{
	"oci":           {},
	"blob":          {},
	"blob/fs":       {"blob"},
	"blob/s3":       {"blob"},
	"blob/blobtest": {"blob"},
	"meta":          {},
	"meta/sqlite":   {"meta"},
	"meta/postgres": {"meta"},
	// What the SQL backends share besides SQL (times, maps, migrations).
	"meta/internal/sqlutil": {},
	// The SQL backends' common code (database/sql, dialect-independent).
	"meta/internal/sqlstore": {"meta"},
	"meta/metatest":          {"meta"},
	"registry":               {"oci", "blob", "meta"},
	"config":                 {},
	"auth":                   {},
	"gc":                     {"blob", "meta", "oci"},
	"fsck":                   {"blob", "meta", "oci", "gc"},
	"web":                    {"meta", "flatpak", "oci"},
	"flatpak":                {"oci", "meta"},
	"notify":                 {"meta"},
	"server":                 {"*"},
	"cmd/berth":              {"*"},
	"e2e":                    {"*"},
	"packaging":              {}, // tests only: they run built binaries

	// Flatpak deltas (issue 13): the tar-diff format stands alone; the
	// worker reads layers (blob), records jobs (meta), parses manifests
	// (oci) and takes the protocol's names from flatpak.
	"tardiff": {},
	"delta":   {"blob", "meta", "oci", "flatpak", "tardiff"},

	// The image builder (issue 12) stands apart: it imports nothing of Berth.
	"cmd/berth-image": {},

	// The load tool (issue 11) is a client of the HTTP API only (its tests
	// start a real server in process).
	"bench":           {},
	"cmd/berth-bench": {"bench"},
}

// thirdParty lists the modules outside the standard library each package
// may use; anything else needs a decision (and a line here).
var thirdParty = map[string][]string{
	"oci":                    {"github.com/opencontainers/image-spec", "github.com/opencontainers/go-digest"},
	"blob":                   {"github.com/opencontainers/go-digest"},
	"blob/fs":                {"github.com/opencontainers/go-digest"},
	"meta":                   {"github.com/opencontainers/go-digest"},
	"meta/sqlite":            {"github.com/opencontainers/go-digest", "modernc.org/sqlite"},
	"meta/internal/sqlstore": {"github.com/opencontainers/go-digest"},
	// Issue 10: PostgreSQL through pgx's database/sql driver; S3 through
	// minio-go (docs/design-notes.md says why).
	"meta/postgres": {"github.com/opencontainers/go-digest", "github.com/jackc/pgx/v5"},
	"blob/s3":       {"github.com/opencontainers/go-digest", "github.com/minio/minio-go/v7"},
	"registry":      {"github.com/opencontainers/go-digest", "github.com/opencontainers/image-spec", "github.com/opencontainers/distribution-spec/specs-go"},
	"config":        {"gopkg.in/yaml.v3"},
	"auth":          {"github.com/golang-jwt/jwt/v5", "golang.org/x/crypto"},
	"flatpak":       {"github.com/opencontainers/go-digest"},
	"web":           {"github.com/opencontainers/go-digest"},
	"tardiff":       {"github.com/klauspost/compress"},
	"delta":         {"github.com/opencontainers/go-digest", "github.com/opencontainers/image-spec", "github.com/klauspost/compress"},

	"cmd/berth-image": {"github.com/google/go-containerregistry"},
	"bench":           {},
	"cmd/berth-bench": {},
}

type pkg struct {
	ImportPath string
	Imports    []string
	Standard   bool
}

func TestImports(t *testing.T) {
	cmd := exec.Command("go", "list", "-json", module+"/...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(out)
	seen := 0
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if strings.HasPrefix(rel, "internal/") {
			continue
		}
		seen++
		allow, known := allowed[rel]
		if !known {
			t.Errorf("package %s is not in the architecture table (DESIGN.md and this test)", rel)
			continue
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module+"/") {
				dep := strings.TrimPrefix(imp, module+"/")
				if strings.HasPrefix(dep, "internal/") || contains(allow, "*") || contains(allow, dep) || contains(allow, strings.Split(dep, "/")[0]) && !strings.HasSuffix(dep, "test") {
					continue
				}
				t.Errorf("%s imports %s, which DESIGN.md does not allow", rel, dep)
				continue
			}
			if mods, ok := thirdParty[rel]; ok && strings.Contains(strings.Split(imp, "/")[0], ".") {
				if !hasPrefixAny(imp, mods) {
					t.Errorf("%s imports %s, a dependency not chosen for it", rel, imp)
				}
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if seen < 8 {
		t.Fatalf("only %d packages listed", seen)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func hasPrefixAny(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if s == p || strings.HasPrefix(s, p+"/") {
			return true
		}
	}
	return false
}
