package oci

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestParseImageConfigStrict: the config is read as flatpak reads it
// (exact key case) and a repeated key anywhere makes it invalid, so the
// labels recorded are the ones the client installs (audit finding).
func TestParseImageConfigStrict(t *testing.T) {
	refused := []struct{ name, body string }{
		{"repeated label", `{"config":{"Labels":{"org.flatpak.ref":"app/a.b.C/x86_64/stable","org.flatpak.ref":"app/evil.b.C/x86_64/stable"}}}`},
		{"repeated Labels", `{"config":{"Labels":{"a":"1"},"Labels":{"a":"2"}}}`},
		{"repeated config", `{"config":{"Labels":{"a":"1"}},"config":{}}`},
		{"repeated os", `{"os":"linux","os":"windows"}`},
		{"repeated by escape", `{"os":"linux","\u006fs":"windows"}`},
		{"repeated deep in an unknown field", `{"os":"linux","history":[{"a":1},{"b":{"c":1,"c":2}}]}`},
		{"repeated in rootfs", `{"rootfs":{"type":"layers","type":"x"}}`},
		{"label null", `{"config":{"Labels":{"a":null}}}`},
		{"Labels an array", `{"config":{"Labels":["a"]}}`},
		{"config a string", `{"config":"x"}`},
		{"truncated", `{"os":"linux"`},
		{"trailing garbage", `{"os":"linux"} x`},
		{"too deep", `{"x":` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `}`},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseImageConfig([]byte(tc.body))
			if !errors.Is(err, ErrManifestInvalid) {
				t.Fatalf("ParseImageConfig(%s) = %+v, %v; want an error wrapping ErrManifestInvalid", tc.body, got, err)
			}
		})
	}
	accepted := []struct {
		name, body string
		want       ImageConfig
	}{
		// Go's encoding/json took these case-insensitively; flatpak (and
		// now Berth) reads only the exact keys.
		{"labels in lower case are not Labels", `{"config":{"labels":{"org.flatpak.ref":"app/x.y.Z/x86_64/stable"}}}`, ImageConfig{}},
		{"LABELS", `{"config":{"LABELS":{"a":"1"},"Labels":{"a":"2"}}}`, ImageConfig{Labels: map[string]string{"a": "2"}}},
		{"Config is not config", `{"Config":{"Labels":{"a":"1"}}}`, ImageConfig{}},
		{"OS is not os", `{"OS":"windows","os":"linux","Architecture":"arm","architecture":"amd64"}`, ImageConfig{OS: "linux", Architecture: "amd64"}},
		{"label keys differing in case are two labels", `{"config":{"Labels":{"a":"1","A":"2"}}}`, ImageConfig{Labels: map[string]string{"a": "1", "A": "2"}}},
		{"same key in different objects", `{"config":{"Labels":{"os":"x"}},"os":"linux","history":[{"a":1},{"a":2}]}`,
			ImageConfig{OS: "linux", Labels: map[string]string{"os": "x"}}},
		{"huge number skipped", `{"x":1e99999,"os":"linux"}`, ImageConfig{OS: "linux"}},
		{"escaped key", `{"\u006fs":"linux"}`, ImageConfig{OS: "linux"}},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseImageConfig([]byte(tc.body))
			if err != nil {
				t.Fatalf("ParseImageConfig(%s): %v", tc.body, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseImageConfig(%s) = %+v, want %+v", tc.body, got, tc.want)
			}
		})
	}
}

// FuzzParseImageConfigStrict: the strict decoder never panics, fails only with
// ErrManifestInvalid, and what it accepts is a document without repeated
// keys whose exact-key fields (read by the generic decoder, which is
// unambiguous without repeats) are what it returns.
func FuzzParseImageConfigStrict(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"os":"linux","architecture":"amd64","config":{"Labels":{"a":"b"}}}`,
		`{"config":{"Labels":{"a":"1","a":"2"}}}`, `{"OS":"x","os":"y"}`, `{"created":"2024-01-01T00:00:00Z"}`,
		`{"history":[{"created_by":"x"}],"rootfs":{"type":"layers","diff_ids":[]}}`, `{"config":null}`, `[]`, `{"a":[[[{}]]]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := ParseImageConfig(body)
		if err != nil {
			if !errors.Is(err, ErrManifestInvalid) {
				t.Fatalf("error %q does not wrap ErrManifestInvalid", err)
			}
			return
		}
		var doc map[string]any
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatalf("accepted a body encoding/json refuses: %v", err)
		}
		str := func(m map[string]any, k string) string {
			s, _ := m[k].(string)
			return s
		}
		if c.OS != str(doc, "os") || c.Architecture != str(doc, "architecture") || c.Variant != str(doc, "variant") {
			t.Fatalf("platform %q/%q/%q, the document says %q/%q/%q", c.OS, c.Architecture, c.Variant,
				str(doc, "os"), str(doc, "architecture"), str(doc, "variant"))
		}
		var want map[string]string
		if cfg, ok := doc["config"].(map[string]any); ok {
			if ls, ok := cfg["Labels"].(map[string]any); ok && len(ls) > 0 {
				want = map[string]string{}
				for k, v := range ls {
					s, ok := v.(string)
					if !ok {
						t.Fatalf("label %q is %T, accepted", k, v)
					}
					want[k] = s
				}
			}
		}
		if !reflect.DeepEqual(c.Labels, want) {
			t.Fatalf("labels %v, the document's exact key holds %v", c.Labels, want)
		}
	})
}
