package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Kubernetes injects these into every pod of a namespace that has a
// Service named berth; none is a configuration key.
var kubernetesEnv = []string{
	"BERTH_PORT=tcp://10.0.0.1:5000",
	"BERTH_SERVICE_HOST=10.0.0.1",
	"BERTH_SERVICE_PORT=5000",
	"BERTH_PORT_5000_TCP=tcp://10.0.0.1:5000",
	"BERTH_PORT_5000_TCP_PROTO=tcp",
	"BERTH_PORT_5000_TCP_PORT=5000",
	"BERTH_PORT_5000_TCP_ADDR=10.0.0.1",
}

func TestUnknownEnvWarnsAndDoesNotFail(t *testing.T) {
	env := append(slices.Clone(kubernetesEnv), "BERTH_E2E=1", "BERTH_HTTP_ADR=:1", "BERTH_LOG_LEVEL=debug", "HOME=/root")
	cfg, w, err := Load("", env)
	if err != nil {
		t.Fatalf("unknown BERTH_* variables stopped the load: %v", err)
	}
	if cfg.Log.Level != "debug" || cfg.HTTP.Addr != ":5000" {
		t.Errorf("known variable not applied, or an unknown one was: level %q, addr %q", cfg.Log.Level, cfg.HTTP.Addr)
	}
	want := []string{"BERTH_E2E", "BERTH_HTTP_ADR", "BERTH_PORT", "BERTH_PORT_5000_TCP", "BERTH_PORT_5000_TCP_ADDR",
		"BERTH_PORT_5000_TCP_PORT", "BERTH_PORT_5000_TCP_PROTO", "BERTH_SERVICE_HOST", "BERTH_SERVICE_PORT"}
	if !slices.Equal(w.UnknownEnv, want) {
		t.Errorf("UnknownEnv = %q, want %q", w.UnknownEnv, want)
	}
	msgs := strings.Join(w.Messages(), "\n")
	if !strings.Contains(msgs, "BERTH_HTTP_ADR: not a configuration key, ignored (did you mean BERTH_HTTP_ADDR?)") {
		t.Errorf("no suggestion for a typo:\n%s", msgs)
	}
	if strings.Contains(msgs, "10.0.0.1") {
		t.Errorf("warnings carry values (they may be secrets):\n%s", msgs)
	}
	if strings.Count(msgs, "did you mean") != 1 {
		t.Errorf("suggestions for names that are not near a key:\n%s", msgs)
	}
}

func TestKnownEnvWithBadValueFails(t *testing.T) {
	_, w, err := Load("", append(slices.Clone(kubernetesEnv), "BERTH_LIMITS_RATE_LIMIT_BURST=lots"))
	var ke *KeyError
	if !errors.As(err, &ke) || ke.Env != "BERTH_LIMITS_RATE_LIMIT_BURST" || ke.Key != "limits.rate_limit.burst" {
		t.Fatalf("err = %v, want a KeyError for BERTH_LIMITS_RATE_LIMIT_BURST", err)
	}
	if len(w.UnknownEnv) != len(kubernetesEnv) {
		t.Errorf("warnings lost with the error: %q", w.UnknownEnv)
	}
	// A value that parses but does not validate names the variable too,
	// not a line of the file.
	file := writeFile(t, "c.yaml", "log:\n  level: info\n")
	_, _, err = Load(file, []string{"BERTH_LOG_LEVEL=loud"})
	if err == nil || err.Error() != `environment BERTH_LOG_LEVEL: log.level: "loud" is not one of debug, info, warn, error` {
		t.Errorf("err = %v", err)
	}
}

// TestErrorLines checks that every error of a file with many points at
// the line and column of its key, in file order.
func TestErrorLines(t *testing.T) {
	file := writeFile(t, "berth.yaml", `http:
  addr: ":5000"
  tls:
    cert_file: /etc/berth/cert.pem
log:
  level: loud
auth:
  groups:
    dev: [alice, "bad:name"]
  access:
    - repositories: ["apps/**"]
      users: {alice: [pull]}
    - repositories:
        - "ok/*"
        - "Bad/Name"
      anonymous: [pull, fly]
limits:
  rate_limit:
    requests_per_second: 5
    burst: 0
notifications:
  endpoints:
    - url: "ftp://ci.example.com/hook"
      events: [manifest.push]
`)
	_, _, err := Load(file, nil)
	if err == nil {
		t.Fatal("no error")
	}
	got := strings.Split(err.Error(), "\n")
	want := []string{
		file + ":4:5: http.tls.cert_file: needs http.tls.key_file (they go together)",
		file + `:6:3: log.level: "loud" is not one of debug, info, warn, error`,
		file + `:9:18: auth.groups.dev[1]: "bad:name" is not a valid user name`,
		file + `:15:11: auth.access[1].repositories[1]: pattern "Bad/Name": 'B' is not allowed (lowercase letters, digits, . _ - * and /)`,
		file + `:16:25: auth.access[1].anonymous[1]: "fly" is not one of pull, push, overwrite, delete`,
		file + ":20:5: limits.rate_limit.burst: must be at least 1 when the limit is on (requests_per_second > 0)",
		file + ":23:7: notifications.endpoints[0].url: not an absolute http(s) URL without credentials",
		// A missing key points at the nearest thing the file has.
		file + ":23:7: notifications.endpoints[0].name: required",
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var ke *KeyError
	if !errors.As(err, &ke) || ke.File != file || ke.Line != 4 || ke.Column != 5 {
		t.Errorf("first error as KeyError: %+v", ke)
	}
}

func TestYAMLErrorLines(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"syntax", "http:\n  addr: :5000\n   bad: [\n", ":3: "},
		{"two type errors", "limits:\n  page_max: many\ngc:\n  grace: [1]\n", ":2:3: limits.page_max: cannot unmarshal !!str `many` into int\n" + "FILE:4:3: gc.grace: cannot unmarshal !!seq into time.Duration"},
		{"unknown nested key", "auth:\n  token:\n    enabled: true\n    secret: x\n", `:4:5: auth.token.secret: unknown key "secret"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, "c.yaml", tc.yaml)
			_, _, err := Load(file, nil)
			want := file + strings.ReplaceAll(tc.want, "FILE", file)
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("err = %v\nwant prefix %s", err, want)
			}
		})
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "hook-secret")
	if err := os.WriteFile(secret, []byte("s3cr3t-value\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := "notifications:\n  endpoints:\n    - name: ci\n      url: https://ci.example.com/hook\n      secret_file: " + secret + "\n"
	cfg, _, err := Load(writeFile(t, "c.yaml", yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	// One trailing newline is the file's end, the second is the secret's.
	if got := cfg.Notifications.Endpoints[0].Secret; got != "s3cr3t-value\n" {
		t.Errorf("secret = %q", got)
	}

	t.Run("unreadable", func(t *testing.T) {
		missing := filepath.Join(dir, "nope")
		file := writeFile(t, "c.yaml", strings.Replace(yaml, secret, missing, 1))
		_, _, err := Load(file, nil)
		if err == nil || !strings.HasPrefix(err.Error(), file+":5:7: notifications.endpoints[0].secret_file: open "+missing) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("both", func(t *testing.T) {
		_, _, err := Load(writeFile(t, "c.yaml", yaml+"      secret: inline-value\n"), nil)
		if err == nil || !strings.Contains(err.Error(), "notifications.endpoints[0].secret_file: secret and secret_file are exclusive") ||
			strings.Contains(err.Error(), "inline-value") || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		empty := filepath.Join(dir, "empty")
		if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := Load(writeFile(t, "c.yaml", strings.Replace(yaml, secret, empty, 1)), nil)
		if err == nil || !strings.Contains(err.Error(), "secret_file: "+empty+": the file is empty") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("generic", func(t *testing.T) {
		// Any K/K_file pair is resolved, wherever it sits.
		type inner struct {
			DSN     string `yaml:"dsn"`
			DSNFile string `yaml:"dsn_file"`
			// A path with no sibling is not a secret and is left alone.
			CertFile string `yaml:"cert_file"`
		}
		var v struct {
			List []inner `yaml:"list"`
		}
		v.List = []inner{{DSNFile: secret, CertFile: "/nonexistent"}}
		var ps problems
		resolveIn(reflect.ValueOf(&v).Elem(), nil, &ps)
		if len(ps) != 0 || v.List[0].DSN != "s3cr3t-value\n" || v.List[0].CertFile != "/nonexistent" {
			t.Errorf("resolved %+v, problems %v", v, ps.err())
		}
	})
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// FuzzEnv: any BERTH_* variable either names a key (and fails only on its
// own bad value, naming itself) or is ignored with a warning, changing
// nothing.
func FuzzEnv(f *testing.F) {
	f.Add("HTTP_ADDR", ":1")
	f.Add("LIMITS_RATE_LIMIT_BURST", "x")
	f.Add("PORT", "tcp://10.0.0.1:5000")
	f.Add("AUTH_ADMINS", "a,,b")
	f.Add("GC_GRACE", "-1h")
	f.Fuzz(func(t *testing.T, name, value string) {
		if strings.ContainsAny(name, "=\x00") {
			return
		}
		v := EnvPrefix + name
		cfg, w, err := Load("", []string{v + "=" + value})
		if slices.Contains(w.UnknownEnv, v) {
			if err != nil || !reflect.DeepEqual(cfg, Default()) {
				t.Fatalf("unknown %s: err %v, or the configuration changed", v, err)
			}
			return
		}
		var ke *KeyError
		if err != nil && (!errors.As(err, &ke) || !strings.Contains(err.Error(), "environment "+v+": ")) {
			t.Fatalf("%s=%q: error does not name the variable: %v", v, value, err)
		}
	})
}
