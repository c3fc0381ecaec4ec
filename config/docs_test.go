package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// docKeys lists the full path of every key of t: sections and leaves,
// list items as "[]" (notifications.endpoints[].url).
func docKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		key := yamlKey(t.Field(i))
		if key == "" {
			continue
		}
		p := key
		if prefix != "" {
			p = prefix + "." + key
		}
		keys = append(keys, p)
		ft := t.Field(i).Type
		switch {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Duration(0)):
			keys = append(keys, docKeys(ft, p)...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			keys = append(keys, docKeys(ft.Elem(), p+"[]")...)
		}
	}
	return keys
}

// TestDocumentationIsComplete fails when a key has no entry in
// docs/configuration.md: each key's full path, in backquotes.
func TestDocumentationIsComplete(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	keys := docKeys(reflect.TypeOf(Config{}), "")
	if len(keys) < 80 {
		t.Fatalf("only %d keys found: the walk is broken", len(keys))
	}
	for _, k := range keys {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/configuration.md does not document `%s`", k)
		}
	}
	// The override rule and the secret files are explained.
	for _, s := range []string{"BERTH_<SECTION>_<KEY>", "_file", "BERTH_PORT"} {
		if !strings.Contains(string(doc), s) {
			t.Errorf("docs/configuration.md does not mention %s", s)
		}
	}
}

// TestDocumentedDefaults checks the defaults the documentation states for
// a sample of keys against Default(), so the table cannot drift silently
// where it matters most.
func TestDocumentedDefaults(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	for key, want := range map[string]string{
		"http.addr":                             d.HTTP.Addr,
		"http.shutdown_timeout":                 d.HTTP.ShutdownTimeout.String(),
		"storage.dir":                           d.Storage.Dir,
		"limits.page_max":                       "1000",
		"limits.rate_limit.requests_per_second": "0",
		"limits.rate_limit.burst":               "100",
		"limits.gc_percent":                     "50",
		"uploads.expire_after":                  d.Uploads.ExpireAfter.String(),
		"metrics.access":                        d.Metrics.Access,
		"notifications.backlog":                 "100000",
		"auth.token.expiry":                     d.Auth.Token.Expiry.String(),
	} {
		row := ""
		for _, line := range strings.Split(string(doc), "\n") {
			if strings.HasPrefix(line, "| `"+key+"`") {
				row = line
			}
		}
		if row == "" {
			t.Errorf("no table row for %s", key)
			continue
		}
		cells := strings.Split(row, "|")
		if len(cells) < 4 || strings.TrimSpace(strings.Trim(strings.TrimSpace(cells[2]), "`")) != want {
			t.Errorf("%s: documented default %q, Default() is %q", key, cells[2], want)
		}
	}
}
