package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigCheckPointsAtLines: `berth config check FILE` names the file,
// line and column of each error, lists unknown BERTH_* variables as
// warnings, and fails only for the errors.
func TestConfigCheckPointsAtLines(t *testing.T) {
	t.Setenv("BERTH_PORT", "tcp://10.0.0.1:5000")
	t.Setenv("BERTH_SERVICE_HOST", "10.0.0.1")
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("http:\n  addr: \"\"\nlog:\n  level: chatty\nauth:\n  access:\n    - repositories: [\"Team/x\"]\n"), 0o600)
	out, err := run(t, "config", "check", bad)
	if err == nil {
		t.Fatal("a bad configuration passed")
	}
	for _, want := range []string{
		bad + ":2:3: http.addr: required",
		bad + `:4:3: log.level: "chatty" is not one of debug, info, warn, error`,
		bad + `:7:22: auth.access[0].repositories[0]: pattern "Team/x"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
	for _, want := range []string{"warning: environment BERTH_PORT: not a configuration key, ignored", "warning: environment BERTH_SERVICE_HOST: not a configuration key, ignored"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not list %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "10.0.0.1") {
		t.Errorf("output carries a variable's value:\n%s", out)
	}

	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("http:\n  addr: 127.0.0.1:0\n"), 0o600)
	out, err = run(t, "config", "check", good)
	if err != nil || !strings.Contains(out, "configuration is valid") || !strings.Contains(out, "BERTH_PORT") {
		t.Errorf("good file with unknown variables: %q, %v", out, err)
	}
	if _, err := run(t, "config", "check", "--config", bad, good); err == nil {
		t.Error("two different files accepted")
	}
	// A known key with a bad value fails.
	t.Setenv("BERTH_GC_GRACE", "soon")
	if _, err := run(t, "config", "check", good); err == nil || !strings.Contains(err.Error(), "environment BERTH_GC_GRACE: gc.grace:") {
		t.Errorf("bad known variable: %v", err)
	}
}
