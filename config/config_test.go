package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
	cfg, w, err := Load("", nil)
	if err != nil || len(w.UnknownEnv) != 0 || cfg.HTTP.Addr != ":5000" || cfg.Storage.Dir != "./berth-data" {
		t.Fatalf("Load with nothing: %+v, %v", cfg, err)
	}
}

func TestLoadFileAndEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	err := os.WriteFile(path, []byte("http:\n  addr: 127.0.0.1:6000\n  shutdown_timeout: 5s\nstorage:\n  dir: /srv/berth\nvalidation:\n  sparse_manifests: true\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := Load(path, []string{"BERTH_HTTP_ADDR=:7000", "BERTH_LIMITS_PAGE_MAX=50", "PATH=/bin"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != ":7000" || cfg.HTTP.ShutdownTimeout != 5*time.Second || cfg.Storage.Dir != "/srv/berth" ||
		cfg.Limits.PageMax != 50 || !cfg.Validation.SparseManifests || cfg.Log.Level != "info" {
		t.Fatalf("loaded %+v", cfg)
	}
}

func TestTrustForwardedHeaders(t *testing.T) {
	if Default().HTTP.TrustForwardedHeaders {
		t.Error("http.trust_forwarded_headers is on by default")
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("http:\n  trust_forwarded_headers: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := Load(path, nil)
	if err != nil || !cfg.HTTP.TrustForwardedHeaders {
		t.Errorf("from YAML: %v, %v", cfg.HTTP.TrustForwardedHeaders, err)
	}
	cfg, _, err = Load("", []string{"BERTH_HTTP_TRUST_FORWARDED_HEADERS=true"})
	if err != nil || !cfg.HTTP.TrustForwardedHeaders {
		t.Errorf("from the environment: %v, %v", cfg.HTTP.TrustForwardedHeaders, err)
	}
	if _, _, err := Load("", []string{"BERTH_HTTP_TRUST_FORWARDED_HEADERS=maybe"}); err == nil || !strings.Contains(err.Error(), "http.trust_forwarded_headers") {
		t.Errorf("a non-boolean value: err = %v", err)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		env        []string
		want       []string
	}{
		{name: "duplicate webhook name", yaml: "notifications:\n  endpoints:\n    - {name: ci, url: \"https://ci.example/hook\"}\n    - {name: ci, url: \"https://other.example/hook\"}\n",
			want: []string{"notifications.endpoints[1].name: duplicate endpoint name \"ci\""}},
		{name: "unknown key", yaml: "http:\n  adr: x\n", want: []string{":2:3: http.adr: unknown key \"adr\""}},
		{name: "wrong type", yaml: "limits:\n  page_max: many\n", want: []string{":2:3: limits.page_max: ", "many"}},
		{name: "every problem at once", yaml: "log:\n  level: loud\n  format: xml\nlimits:\n  max_manifest_bytes: 10\n  page_max: 0\n",
			want: []string{"log.level", "log.format", "limits.max_manifest_bytes", "limits.page_max"}},
		{name: "bad env value", env: []string{"BERTH_HTTP_SHUTDOWN_TIMEOUT=soon"}, want: []string{"BERTH_HTTP_SHUTDOWN_TIMEOUT", "http.shutdown_timeout"}},
		{name: "gc and uploads", yaml: "gc:\n  interval: -1s\n  grace: -1h\n  untagged_after: -1h\nuploads:\n  expire_after: 0s\n",
			want: []string{"gc.interval: must not be negative", "gc.grace", "gc.untagged_after", "uploads.expire_after: must be positive"}},
		{name: "gc env", env: []string{"BERTH_GC_GRACE=never"}, want: []string{"BERTH_GC_GRACE", "gc.grace"}},
		{name: "gc percent", yaml: "limits:\n  gc_percent: 5\n", want: []string{"limits.gc_percent: 5 is below 10"}},
		{name: "leases and idle timeout", yaml: "gc:\n  claim_lease: 0s\nuploads:\n  idle_timeout: -1s\n",
			want: []string{"gc.claim_lease: must be positive", "uploads.idle_timeout: must be positive"}},
		{name: "deltas", yaml: "flatpak:\n  deltas:\n    versions: 0\n    max_ratio: 1.5\n    concurrency: 0\n    max_layer_bytes: 0\n    window: -1h\n    retire_after: -1s\n",
			want: []string{"flatpak.deltas.versions", "flatpak.deltas.max_ratio", "flatpak.deltas.concurrency", "flatpak.deltas.max_layer_bytes", "flatpak.deltas.window", "flatpak.deltas.retire_after"}},
		{name: "env list of sections", env: []string{"BERTH_AUTH_ACCESS=x"}, want: []string{"BERTH_AUTH_ACCESS", "auth.access", "configuration file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.yaml != "" {
				path = filepath.Join(t.TempDir(), "c.yaml")
				if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, _, err := Load(path, tc.env)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("http:\n  addr: :5000\n"))
	f.Add([]byte("limits: {page_max: 3}"))
	f.Add([]byte("- a\n- b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := Default()
		if Decode(data, &cfg) != nil {
			return
		}
		_ = cfg.Validate() // must not panic on anything that decodes
		// Nor may locating the errors of any file.
		_, _, _ = load("fuzz.yaml", data, nil)
	})
}
