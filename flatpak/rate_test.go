package flatpak_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/berth-dev/berth/flatpak"
)

func perms(edit func(p *flatpak.Permissions)) flatpak.Permissions {
	p := emptyPermissions()
	edit(&p)
	return p
}

func TestRate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		p       flatpak.Permissions
		level   string
		reasons []string
	}{
		{"nothing", emptyPermissions(), flatpak.Safe, []string{"No permissions that reach outside the sandbox"}},
		{"wayland and gpu", perms(func(p *flatpak.Permissions) {
			p.Sockets = []string{"wayland", "fallback-x11"}
			p.Devices = []string{"dri"}
		}), flatpak.Safe, []string{"No permissions that reach outside the sandbox"}},
		{"portals only", perms(func(p *flatpak.Permissions) {
			p.SessionBusTalk = []string{"org.freedesktop.portal.Desktop", "org.freedesktop.DBus"}
		}), flatpak.Safe, []string{"No permissions that reach outside the sandbox"}},
		{"network", perms(func(p *flatpak.Permissions) { p.Shared = []string{"network"} }),
			flatpak.ProbablySafe, []string{"Can access the internet"}},
		{"audio and mpris", perms(func(p *flatpak.Permissions) {
			p.Sockets = []string{"pulseaudio"}
			p.SessionBusOwn = []string{"org.mpris.MediaPlayer2.app"}
		}), flatpak.ProbablySafe, []string{"Can play audio and use microphones without asking", "Shows media player controls (org.mpris.MediaPlayer2.app)"}},
		{"x11", perms(func(p *flatpak.Permissions) { p.Sockets = []string{"x11"} }),
			flatpak.PotentiallyUnsafe, []string{"Uses the legacy X11 windowing system, which lets it see other windows and keystrokes"}},
		{"fallback-x11 without wayland", perms(func(p *flatpak.Permissions) { p.Sockets = []string{"fallback-x11"} }),
			flatpak.PotentiallyUnsafe, []string{"Uses the legacy X11 windowing system, which lets it see other windows and keystrokes"}},
		{"home", perms(func(p *flatpak.Permissions) {
			p.Shared = []string{"network"}
			p.Filesystems = []string{"home"}
		}), flatpak.PotentiallyUnsafe, []string{"Full access to your home folder"}},
		{"downloads read-only", perms(func(p *flatpak.Permissions) { p.Filesystems = []string{"xdg-download:ro"} }),
			flatpak.PotentiallyUnsafe, []string{"Can read your Downloads folder"}},
		{"kdeglobals ignored", perms(func(p *flatpak.Permissions) { p.Filesystems = []string{"xdg-config/kdeglobals:ro"} }),
			flatpak.Safe, []string{"No permissions that reach outside the sandbox"}},
		{"dconf", perms(func(p *flatpak.Permissions) { p.SessionBusTalk = []string{"ca.desrt.dconf"} }),
			flatpak.PotentiallyUnsafe, []string{"Can read and change your settings (dconf)"}},
		{"host read-only", perms(func(p *flatpak.Permissions) { p.Filesystems = []string{"host:ro"} }),
			flatpak.PotentiallyUnsafe, []string{"Can read all files on the system"}},
		{"host", perms(func(p *flatpak.Permissions) {
			p.Filesystems = []string{"home", "host"}
		}), flatpak.Unsafe, []string{"Full access to all files on the system"}},
		{"session bus", perms(func(p *flatpak.Permissions) { p.Sockets = []string{"wayland", "session-bus"} }),
			flatpak.Unsafe, []string{"Full access to the session bus, which lets it escape the sandbox"}},
		{"flatpak portal escape", perms(func(p *flatpak.Permissions) { p.SessionBusTalk = []string{"org.freedesktop.Flatpak"} }),
			flatpak.Unsafe, []string{"Can acquire arbitrary permissions (talks to org.freedesktop.Flatpak)"}},
		{"overrides", perms(func(p *flatpak.Permissions) { p.Filesystems = []string{"xdg-data/flatpak/overrides:create"} }),
			flatpak.Unsafe, []string{"Can change the permissions of apps, itself included"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := flatpak.Rate(tc.p)
			if got.Level != tc.level || !reflect.DeepEqual(got.Reasons, tc.reasons) {
				t.Errorf("Rate = %+v, want %s %q", got, tc.level, tc.reasons)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	md, err := flatpak.ParseMetadata(readTestdata(t, "rich.metadata"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"Can access the internet",
		"Shares inter-process communication with the host",
		"Shows its windows with Wayland",
		"Can play audio and use microphones without asking",
		"Uses X11 only where Wayland is not available",
		"Uses graphics acceleration",
		"Can access all devices, such as webcams and game controllers",
		"Can inspect and debug other programs",
		"Can use Bluetooth",
		"Full access to your home folder",
		"Can read your Downloads folder",
		"Full access to Games in your home folder",
		"Full access to the system folder /opt/data",
		"Can record the screen and audio (PipeWire)",
		"Full access to files in odd;name",
		"Talks to org.freedesktop.Notifications on the session bus",
		"Can read and change your settings (dconf)",
		"Shows media player controls (org.mpris.MediaPlayer2.rich)",
		"Talks to org.freedesktop.UPower on the system bus",
		"Owns the name org.example.Daemon on the system bus",
	}
	if got := flatpak.Describe(md.Permissions); !slices.Equal(got, want) {
		t.Errorf("Describe =\n%q\nwant\n%q", got, want)
	}
	if r := flatpak.Rate(md.Permissions); r.Level != flatpak.PotentiallyUnsafe {
		t.Errorf("Rate(rich) = %+v", r)
	}
	if got := flatpak.Describe(emptyPermissions()); !slices.Equal(got, []string{"No permissions: the app is fully sandboxed"}) {
		t.Errorf("Describe(none) = %q", got)
	}
}
