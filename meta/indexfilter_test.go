package meta

import (
	"reflect"
	"testing"
)

func TestParseIndexFilter(t *testing.T) {
	f, err := ParseIndexFilter(map[string][]string{
		"repository": {"a", "b"}, "tag": {"latest"}, "os": {"linux"}, "architecture": {"amd64"},
		"label:org.flatpak.ref:exists": {"1"}, "annotation:x": {"1", "2"}, "label:a": {"v"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := IndexFilter{
		Repositories: []string{"a", "b"}, Tags: []string{"latest"}, OS: []string{"linux"}, Architectures: []string{"amd64"},
		Maps: []MapCondition{
			{Key: "a", Values: []string{"v"}},
			{Key: "org.flatpak.ref", Exists: true},
			{Annotation: true, Key: "x", Values: []string{"1", "2"}},
		},
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("ParseIndexFilter = %+v\nwant %+v", f, want)
	}
	if f, _ := ParseIndexFilter(map[string][]string{"tag": {}}); !f.None {
		t.Error("a key with no values: None not set")
	}
	if f, err := ParseIndexFilter(nil); err != nil || !reflect.DeepEqual(f, IndexFilter{}) {
		t.Errorf("no query = %+v, %v", f, err)
	}
	for _, bad := range []string{"color", "label:", "annotation::exists", "tag:x", "labels:x", ":x"} {
		if _, err := ParseIndexFilter(map[string][]string{bad: {"x"}}); err == nil {
			t.Errorf("key %q: no error", bad)
		}
	}
}

func FuzzParseIndexFilter(f *testing.F) {
	f.Add("label:org.flatpak.ref:exists", "1")
	f.Add("annotation:a:b:exists", "x")
	f.Fuzz(func(t *testing.T, key, value string) {
		got, err := ParseIndexFilter(map[string][]string{key: {value}})
		if err != nil {
			return
		}
		for _, c := range got.Maps {
			if c.Key == "" || c.Exists && c.Values != nil {
				t.Errorf("%q=%q gave %+v", key, value, c)
			}
		}
	})
}
