package flatpak_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/flatpak"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func emptyPermissions() flatpak.Permissions {
	return flatpak.Permissions{
		Shared: []string{}, Sockets: []string{}, Devices: []string{}, Features: []string{}, Filesystems: []string{},
		SessionBusTalk: []string{}, SessionBusOwn: []string{}, SystemBusTalk: []string{}, SystemBusOwn: []string{},
		Environment: map[string]string{},
	}
}

func TestParseMetadataFixtures(t *testing.T) {
	hello := emptyPermissions()
	hello.Shared = []string{"network"}
	rich := flatpak.Permissions{
		Shared:         []string{"network", "ipc"},
		Sockets:        []string{"x11", "wayland", "pulseaudio", "fallback-x11"},
		Devices:        []string{"dri", "all"},
		Features:       []string{"devel", "bluetooth"},
		Filesystems:    []string{"home", "xdg-download:ro", "~/Games:create", "/opt/data", "xdg-run/pipewire-0", "xdg-config/kdeglobals:ro", "odd;name"},
		SessionBusTalk: []string{"org.freedesktop.Notifications", "org.freedesktop.portal.Desktop", "ca.desrt.dconf"},
		SessionBusOwn:  []string{"org.mpris.MediaPlayer2.rich"},
		SystemBusTalk:  []string{"org.freedesktop.UPower"},
		SystemBusOwn:   []string{"org.example.Daemon"},
		Environment:    map[string]string{"GTK_THEME": "Adwaita:dark", "EMPTY": ""},
	}
	for _, tc := range []struct {
		file string
		want flatpak.Metadata
	}{
		{"hello.metadata", flatpak.Metadata{Kind: "app", Name: "org.berth.Hello", Runtime: "org.berth.Platform/x86_64/1",
			SDK: "org.berth.Platform/x86_64/1", Command: "hello", Permissions: hello}},
		{"bare.metadata", flatpak.Metadata{Kind: "app", Name: "org.berth.Bare", Runtime: "org.berth.Platform/x86_64/1",
			SDK: "org.berth.Platform/x86_64/1", Command: "hello", Permissions: hello}},
		{"platform.metadata", flatpak.Metadata{Kind: "runtime", Name: "org.berth.Platform", Runtime: "org.berth.Platform/x86_64/1",
			SDK: "org.berth.Platform/x86_64/1", Permissions: emptyPermissions()}},
		{"rich.metadata", flatpak.Metadata{Kind: "app", Name: "org.example.Rich", Runtime: "org.gnome.Platform/x86_64/46",
			SDK: "org.gnome.Sdk/x86_64/46", Command: "rich app", Permissions: rich}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := flatpak.ParseMetadata(readTestdata(t, tc.file))
			if err != nil {
				t.Fatalf("ParseMetadata: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseMetadata =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestParseMetadataCases(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		check      func(t *testing.T, md flatpak.Metadata)
		bad        bool
	}{
		{name: "empty", data: "", bad: true},
		{name: "no app or runtime group", data: "[Context]\nshared=network;\n", bad: true},
		{name: "key before group", data: "name=x\n[Application]\n", bad: true},
		{name: "garbage line", data: "[Application]\nname=x\njust words\n", bad: true},
		{name: "unclosed group", data: "[Application\nname=x\n", bad: true},
		{name: "text after group", data: "[Application] x\nname=x\n", bad: true},
		{name: "NUL", data: "[Application]\nname=x\x00y\n", bad: true},
		{name: "invalid UTF-8", data: "[Application]\nname=\xff\n", bad: true},
		{name: "bad escape", data: "[Application]\nname=a\\qb\n", bad: true},
		{name: "escape at end", data: "[Application]\nname=ab\\\n", bad: true},
		{name: "bad escape in list", data: "[Application]\nname=x\n[Context]\nshared=a\\q;\n", bad: true},
		{name: "empty key", data: "[Application]\n=x\n", bad: true},
		{name: "CRLF and indentation", data: "  [Application]\r\n\tname = org.x.Y\r\n# comment\r\n\r\n[Context]\r\nshared=network;\r\n",
			check: func(t *testing.T, md flatpak.Metadata) {
				if md.Name != "org.x.Y" || !reflect.DeepEqual(md.Permissions.Shared, []string{"network"}) {
					t.Errorf("got %+v", md)
				}
			}},
		{name: "escapes", data: "[Application]\nname=\\sa\\tb\\nc\\rd\\\\e\\;\n",
			check: func(t *testing.T, md flatpak.Metadata) {
				if md.Name != " a\tb\nc\rd\\e;" {
					t.Errorf("Name = %q", md.Name)
				}
			}},
		{name: "application wins over runtime", data: "[Runtime]\nname=r\n[Application]\nname=a\n",
			check: func(t *testing.T, md flatpak.Metadata) {
				if md.Kind != "app" || md.Name != "a" {
					t.Errorf("got %s %s", md.Kind, md.Name)
				}
			}},
		{name: "repeated group and key", data: "[Application]\nname=a\n[Context]\nshared=ipc;\n[Application]\nname=b\n[Context]\nshared=network;\n",
			check: func(t *testing.T, md flatpak.Metadata) {
				if md.Name != "b" || !reflect.DeepEqual(md.Permissions.Shared, []string{"network"}) {
					t.Errorf("got %+v", md)
				}
			}},
		{name: "negation and duplicates", data: "[Application]\nname=a\n[Context]\nfilesystems=home;host;home;!host;;xdg-music\n",
			check: func(t *testing.T, md flatpak.Metadata) {
				if !reflect.DeepEqual(md.Permissions.Filesystems, []string{"home", "xdg-music"}) {
					t.Errorf("Filesystems = %q", md.Permissions.Filesystems)
				}
			}},
		{name: "bus policies", data: "[Application]\nname=a\n[Session Bus Policy]\nx.Talk=talk\nx.Own=own\nx.See=see\nx.None=none\nx.Odd=whatever\n[System Bus Policy]\ny.*=talk\n",
			check: func(t *testing.T, md flatpak.Metadata) {
				p := md.Permissions
				if !reflect.DeepEqual(p.SessionBusTalk, []string{"x.Talk"}) || !reflect.DeepEqual(p.SessionBusOwn, []string{"x.Own"}) ||
					!reflect.DeepEqual(p.SystemBusTalk, []string{"y.*"}) || len(p.SystemBusOwn) != 0 {
					t.Errorf("got %+v", p)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md, err := flatpak.ParseMetadata([]byte(tc.data))
			if tc.bad {
				if err == nil {
					t.Fatalf("ParseMetadata(%q) = %+v, want an error", tc.data, md)
				}
				if !errors.Is(err, flatpak.ErrInvalidMetadata) {
					t.Errorf("error %v does not wrap ErrInvalidMetadata", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMetadata(%q): %v", tc.data, err)
			}
			tc.check(t, md)
		})
	}
}

func FuzzParseMetadata(f *testing.F) {
	for _, name := range []string{"hello.metadata", "bare.metadata", "platform.metadata", "rich.metadata"} {
		f.Add(readTestdata(f, name))
	}
	f.Add([]byte("[Application]\nname=a\\;b\\\n"))
	f.Add([]byte("[Context]\nshared=!x;x;\n[Runtime]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		md, err := flatpak.ParseMetadata(data)
		if err != nil {
			if !errors.Is(err, flatpak.ErrInvalidMetadata) {
				t.Fatalf("error %v does not wrap ErrInvalidMetadata", err)
			}
			return
		}
		if md.Kind != "app" && md.Kind != "runtime" {
			t.Fatalf("Kind = %q", md.Kind)
		}
		p := md.Permissions
		for _, l := range [][]string{p.Shared, p.Sockets, p.Devices, p.Features, p.Filesystems,
			p.SessionBusTalk, p.SessionBusOwn, p.SystemBusTalk, p.SystemBusOwn} {
			if l == nil {
				t.Fatal("nil permission list")
			}
		}
		if p.Environment == nil {
			t.Fatal("nil Environment")
		}
		// Parsing is deterministic, and rating never fails.
		again, _ := flatpak.ParseMetadata(data)
		if !reflect.DeepEqual(md, again) {
			t.Fatal("ParseMetadata is not deterministic")
		}
		r := flatpak.Rate(p)
		if r.Level == "" || len(r.Reasons) == 0 || len(flatpak.Describe(p)) == 0 {
			t.Fatalf("Rate = %+v", r)
		}
	})
}

// TestParseMetadataLimits: a label larger than MaxMetadataBytes is not
// parsed, and lists and groups are capped at MaxListEntries, so a hostile
// label costs bounded work.
func TestParseMetadataLimits(t *testing.T) {
	head := "[Application]\nname=org.x.Big\n[Context]\n"
	if _, err := flatpak.ParseMetadata([]byte(head + "filesystems=" + strings.Repeat("x", flatpak.MaxMetadataBytes) + "\n")); !errors.Is(err, flatpak.ErrInvalidMetadata) {
		t.Errorf("metadata over %d bytes: err = %v", flatpak.MaxMetadataBytes, err)
	}
	list := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "/p%d;", i)
		}
		return b.String()
	}
	if _, err := flatpak.ParseMetadata([]byte(head + "filesystems=" + list(flatpak.MaxListEntries) + "\n")); err != nil {
		t.Errorf("%d entries: %v", flatpak.MaxListEntries, err)
	}
	if _, err := flatpak.ParseMetadata([]byte(head + "filesystems=" + list(flatpak.MaxListEntries+1) + "\n")); !errors.Is(err, flatpak.ErrInvalidMetadata) {
		t.Errorf("%d entries: err = %v, want ErrInvalidMetadata", flatpak.MaxListEntries+1, err)
	}
	var bus strings.Builder
	bus.WriteString("[Application]\nname=org.x.Big\n[Session Bus Policy]\n")
	for i := range flatpak.MaxListEntries + 1 {
		fmt.Fprintf(&bus, "org.x.N%d=talk\n", i)
	}
	if _, err := flatpak.ParseMetadata([]byte(bus.String())); !errors.Is(err, flatpak.ErrInvalidMetadata) {
		t.Errorf("%d bus names: err = %v, want ErrInvalidMetadata", flatpak.MaxListEntries+1, err)
	}
}

// TestParseMetadataNegations: "!x" removes the x before it; x after it
// comes back; duplicates go; order is kept.
func TestParseMetadataNegations(t *testing.T) {
	md, err := flatpak.ParseMetadata([]byte("[Application]\nname=a\n[Context]\nfilesystems=home;host;!home;xdg-download;host;home;!nothing;\nsockets=x11;wayland;!x11;!wayland;\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := md.Permissions.Filesystems; !slices.Equal(got, []string{"host", "xdg-download", "home"}) {
		t.Errorf("filesystems = %q", got)
	}
	if got := md.Permissions.Sockets; len(got) != 0 || got == nil {
		t.Errorf("sockets = %#v, want empty", got)
	}
}
