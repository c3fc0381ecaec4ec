package flatpak_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/flatpak"
)

func TestParseAppstreamFixtures(t *testing.T) {
	for _, tc := range []struct {
		file string
		want flatpak.App
	}{
		{"hello.appdata.xml", flatpak.App{
			ID: "org.berth.Hello", Name: "Berth Hello", Summary: "Says hello from a Berth registry",
			ProjectLicense: "MIT",
			Description:    []string{"A tiny test application used by the Berth test-suite (version 1.0)."},
			Keywords:       []string{}, Categories: []string{"Utility"}, Screenshots: []flatpak.Screenshot{},
			Releases: []flatpak.Release{{Version: "1.0", Date: time.Unix(1767225600, 0).UTC()}},
		}},
		{"rich.appdata.xml", flatpak.App{
			ID: "org.example.Rich", Name: "Rich Example", Summary: "An example with everything",
			Developer: "Example & Co", License: "CC0-1.0", ProjectLicense: "GPL-3.0-or-later AND MIT",
			Homepage: "https://example.org/rich",
			Description: []string{
				"First paragraph with code.", "One item", "Two items", "Ordered", "Last <one>.",
			},
			Keywords:   []string{"rich", "example"},
			Categories: []string{"Utility", "Development"},
			Screenshots: []flatpak.Screenshot{
				{Caption: "Main window", URL: "https://example.org/s1.png"},
				{URL: "https://example.org/s2-large.png"},
			},
			Releases: []flatpak.Release{
				{Version: "2.0", Date: time.Unix(1717200000, 0).UTC()},
				{Version: "1.5", Date: time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)},
				{Version: "1.0", Date: time.Date(2023, 5, 1, 0, 0, 0, 0, time.UTC)},
				{Version: "nightly"},
			},
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := flatpak.ParseAppstream(readTestdata(t, tc.file))
			if err != nil {
				t.Fatalf("ParseAppstream: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseAppstream =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestParseAppstreamCases(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		check      func(t *testing.T, a flatpak.App)
		bad        bool
	}{
		{name: "empty", data: "", bad: true},
		{name: "not XML", data: "hello", bad: true},
		{name: "no component", data: "<components></components>", bad: true},
		{name: "unclosed", data: "<components><component><id>x</id>", bad: true},
		{name: "latin-1", data: `<?xml version="1.0" encoding="ISO-8859-1"?><component><id>x</id></component>`, bad: true},
		{name: "control character", data: "<component><name>a\x01b</name></component>", bad: true},
		{name: "external entity is not expanded", data: `<!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]><component><name>&x;</name></component>`, bad: true},
		{name: "metainfo root", data: `<component type="desktop"><id> a.b </id><name>N</name><developer_name>Dev</developer_name></component>`,
			check: func(t *testing.T, a flatpak.App) {
				if a.ID != "a.b" || a.Name != "N" || a.Developer != "Dev" || a.Description == nil || a.Releases == nil {
					t.Errorf("got %+v", a)
				}
			}},
		{name: "only translations", data: `<component><name xml:lang="de">Name</name><name xml:lang="en_GB">Colour</name></component>`,
			check: func(t *testing.T, a flatpak.App) {
				if a.Name != "Colour" {
					t.Errorf("Name = %q, want the English one", a.Name)
				}
			}},
		{name: "description without markup", data: `<component><description>Just   text.</description></component>`,
			check: func(t *testing.T, a flatpak.App) {
				if !reflect.DeepEqual(a.Description, []string{"Just text."}) {
					t.Errorf("Description = %q", a.Description)
				}
			}},
		{name: "translated description skipped", data: `<component><description xml:lang="de"><p>Hallo</p></description><description><p>Hello</p></description></component>`,
			check: func(t *testing.T, a flatpak.App) {
				if !reflect.DeepEqual(a.Description, []string{"Hello"}) {
					t.Errorf("Description = %q", a.Description)
				}
			}},
		{name: "script stays text", data: `<component><name>&lt;script&gt;alert(1)&lt;/script&gt;</name></component>`,
			check: func(t *testing.T, a flatpak.App) {
				if a.Name != "<script>alert(1)</script>" {
					t.Errorf("Name = %q (escaping is the page's job; the text is kept)", a.Name)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := flatpak.ParseAppstream([]byte(tc.data))
			if tc.bad {
				if err == nil {
					t.Fatalf("ParseAppstream = %+v, want an error", a)
				}
				if !errors.Is(err, flatpak.ErrInvalidAppstream) {
					t.Errorf("error %v does not wrap ErrInvalidAppstream", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAppstream: %v", err)
			}
			tc.check(t, a)
		})
	}
}

func FuzzParseAppstream(f *testing.F) {
	f.Add(readTestdata(f, "hello.appdata.xml"))
	f.Add(readTestdata(f, "rich.appdata.xml"))
	f.Add([]byte(`<component><description><p>a<em>b</em></p><ul><li xml:lang="x">c</li></ul>d</description></component>`))
	f.Add([]byte(`<components><component><releases><release version="1" date="bad" timestamp="x"/></releases></component></components>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := flatpak.ParseAppstream(data)
		if err != nil {
			if !errors.Is(err, flatpak.ErrInvalidAppstream) {
				t.Fatalf("error %v does not wrap ErrInvalidAppstream", err)
			}
			return
		}
		if a.Description == nil || a.Keywords == nil || a.Categories == nil || a.Screenshots == nil || a.Releases == nil {
			t.Fatalf("nil slice in %+v", a)
		}
		for i := 1; i < len(a.Releases); i++ {
			p, c := a.Releases[i-1].Date, a.Releases[i].Date
			if !c.IsZero() && (p.IsZero() || c.After(p)) {
				t.Fatalf("releases not newest first: %+v", a.Releases)
			}
		}
	})
}

// TestParseAppstreamLimits: data over MaxAppstreamBytes is not parsed, and
// lists hold at most MaxAppstreamEntries entries (duplicates dropped).
func TestParseAppstreamLimits(t *testing.T) {
	big := "<component><id>a</id><name>" + strings.Repeat("x", flatpak.MaxAppstreamBytes) + "</name></component>"
	if _, err := flatpak.ParseAppstream([]byte(big)); !errors.Is(err, flatpak.ErrInvalidAppstream) {
		t.Errorf("appstream over %d bytes: err = %v", flatpak.MaxAppstreamBytes, err)
	}
	var b strings.Builder
	b.WriteString("<component><id>a</id><keywords>")
	for i := range flatpak.MaxAppstreamEntries + 500 {
		fmt.Fprintf(&b, "<keyword>k%d</keyword><keyword>k%d</keyword>", i, i)
	}
	b.WriteString("</keywords><categories>")
	for i := range flatpak.MaxAppstreamEntries + 500 {
		fmt.Fprintf(&b, "<category>c%d</category>", i)
	}
	b.WriteString("</categories><releases>")
	for i := range flatpak.MaxAppstreamEntries + 1 {
		fmt.Fprintf(&b, `<release version="%d"/>`, i)
	}
	b.WriteString("</releases></component>")
	app, err := flatpak.ParseAppstream([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(app.Keywords) != flatpak.MaxAppstreamEntries || app.Keywords[1] != "k1" {
		t.Errorf("%d keywords (second %q), want %d without duplicates", len(app.Keywords), app.Keywords[1], flatpak.MaxAppstreamEntries)
	}
	if len(app.Categories) != flatpak.MaxAppstreamEntries || len(app.Releases) != flatpak.MaxAppstreamEntries {
		t.Errorf("%d categories, %d releases; want %d each", len(app.Categories), len(app.Releases), flatpak.MaxAppstreamEntries)
	}
}
