package flatpak

import (
	"fmt"
	"slices"
	"strings"
)

// Safety levels of a Rating, from best to worst.
const (
	Safe              = "safe"
	ProbablySafe      = "probably-safe"
	PotentiallyUnsafe = "potentially-unsafe"
	Unsafe            = "unsafe"
)

// Rating is a safety summary of an app's permissions.
type Rating struct {
	Level string // Safe, ProbablySafe, PotentiallyUnsafe or Unsafe
	// Reasons are the permissions (in plain words, as Describe gives
	// them) that decided the level; for a safe app, why it is safe.
	Reasons []string
}

const (
	lvlSafe = iota
	lvlProbablySafe
	lvlPotentiallyUnsafe
	lvlUnsafe
)

var levelNames = [...]string{Safe, ProbablySafe, PotentiallyUnsafe, Unsafe}

// Rate rates permissions the way GNOME Software's safety dialog does
// (gs-safety-context-dialog.c, perms_from_metadata in gs-flatpak.c):
// network, audio, input devices and Bluetooth make an app probably safe;
// device access, X11, the home folder or other folders, settings, and
// talking to or owning bus names make it potentially unsafe. GNOME Software
// 45 and later rate nothing from the permissions alone as unsafe; Berth
// keeps GNOME Software 41's red tier for the permissions that escape the
// sandbox outright — full session or system bus access, the GPG agent,
// talking to org.freedesktop.Flatpak or the permission store, writing
// Flatpak overrides, and read/write access to all files — because a
// catalogue should say so loudly. Licence and provenance are not rated.
func Rate(p Permissions) Rating {
	fs := findings(p)
	top := lvlSafe
	for _, f := range fs {
		top = max(top, f.level)
	}
	r := Rating{Level: levelNames[top], Reasons: []string{}}
	if top == lvlSafe {
		r.Reasons = append(r.Reasons, "No permissions that reach outside the sandbox")
		return r
	}
	for _, f := range fs {
		if f.level == top {
			r.Reasons = append(r.Reasons, f.text)
		}
	}
	return r
}

// Describe gives each permission in plain words, in the order shared,
// sockets, devices, features, filesystems, session bus, system bus
// (each in the metadata's order): "Full access to your home folder",
// "Can access the internet", … Bus names that every app may use (portals,
// org.freedesktop.DBus) are left out. An app with no permissions gets one
// line saying it is fully sandboxed. The words come from the metadata
// (folder and bus names): escape them before display.
func Describe(p Permissions) []string {
	fs := findings(p)
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.text)
	}
	if len(out) == 0 {
		out = append(out, "No permissions: the app is fully sandboxed")
	}
	return out
}

type finding struct {
	level int
	text  string
}

func findings(p Permissions) []finding {
	var out []finding
	add := func(level int, format string, args ...any) {
		out = append(out, finding{level, fmt.Sprintf(format, args...)})
	}
	for _, s := range p.Shared {
		switch s {
		case "network":
			add(lvlProbablySafe, "Can access the internet")
		case "ipc":
			add(lvlProbablySafe, "Shares inter-process communication with the host")
		default:
			add(lvlProbablySafe, "Shares %s with the host", s)
		}
	}
	hasWayland := slices.Contains(p.Sockets, "wayland")
	for _, s := range p.Sockets {
		switch s {
		case "x11":
			if !slices.Contains(p.Sockets, "fallback-x11") {
				add(lvlPotentiallyUnsafe, "Uses the legacy X11 windowing system, which lets it see other windows and keystrokes")
			}
		case "fallback-x11":
			if hasWayland {
				add(lvlSafe, "Uses X11 only where Wayland is not available")
			} else {
				add(lvlPotentiallyUnsafe, "Uses the legacy X11 windowing system, which lets it see other windows and keystrokes")
			}
		case "wayland":
			add(lvlSafe, "Shows its windows with Wayland")
		case "inherit-wayland-socket":
			add(lvlSafe, "Uses the Wayland connection it was started with")
		case "pulseaudio":
			add(lvlProbablySafe, "Can play audio and use microphones without asking")
		case "session-bus":
			add(lvlUnsafe, "Full access to the session bus, which lets it escape the sandbox")
		case "system-bus":
			add(lvlUnsafe, "Full access to the system bus, which lets it escape the sandbox")
		case "gpg-agent":
			add(lvlUnsafe, "Can use your GPG keys (gpg-agent)")
		case "ssh-auth":
			add(lvlPotentiallyUnsafe, "Can use your SSH keys (ssh-agent)")
		case "pcsc":
			add(lvlPotentiallyUnsafe, "Can use smart cards")
		case "cups":
			add(lvlProbablySafe, "Can print")
		default:
			add(lvlPotentiallyUnsafe, "Uses the %s socket", s)
		}
	}
	for _, d := range p.Devices {
		switch d {
		case "dri":
			add(lvlSafe, "Uses graphics acceleration")
		case "all":
			add(lvlPotentiallyUnsafe, "Can access all devices, such as webcams and game controllers")
		case "input":
			add(lvlProbablySafe, "Can access input devices")
		case "usb":
			add(lvlPotentiallyUnsafe, "Can access USB devices")
		case "kvm":
			add(lvlPotentiallyUnsafe, "Can run virtual machines (KVM)")
		case "shm":
			add(lvlPotentiallyUnsafe, "Can access the shared memory of other programs (/dev/shm)")
		default:
			add(lvlPotentiallyUnsafe, "Can access %s devices", d)
		}
	}
	for _, f := range p.Features {
		switch f {
		case "devel":
			add(lvlPotentiallyUnsafe, "Can inspect and debug other programs")
		case "multiarch":
			add(lvlSafe, "Can run 32-bit programs")
		case "bluetooth":
			add(lvlProbablySafe, "Can use Bluetooth")
		case "canbus":
			add(lvlProbablySafe, "Can use CAN bus sockets")
		case "per-app-dev-shm":
			add(lvlSafe, "Has its own shared memory (/dev/shm)")
		default:
			add(lvlProbablySafe, "Uses the %s feature", f)
		}
	}
	for _, f := range p.Filesystems {
		if fd, ok := describeFilesystem(f); ok {
			out = append(out, fd)
		}
	}
	for _, name := range p.SessionBusTalk {
		if defaultBusName(name) {
			continue
		}
		switch {
		case name == "ca.desrt.dconf":
			add(lvlPotentiallyUnsafe, "Can read and change your settings (dconf)")
		case name == "org.freedesktop.Flatpak" || name == "org.freedesktop.impl.portal.PermissionStore":
			add(lvlUnsafe, "Can acquire arbitrary permissions (talks to %s)", name)
		case strings.HasPrefix(name, "org.gtk.vfs."):
			add(lvlUnsafe, "Full access to all your files (talks to %s)", name)
		default:
			add(lvlPotentiallyUnsafe, "Talks to %s on the session bus", name)
		}
	}
	for _, name := range p.SessionBusOwn {
		if defaultBusName(name) {
			continue
		}
		if strings.HasPrefix(name, "org.mpris.MediaPlayer2.") {
			add(lvlProbablySafe, "Shows media player controls (%s)", name)
			continue
		}
		add(lvlPotentiallyUnsafe, "Owns the name %s on the session bus", name)
	}
	for _, name := range p.SystemBusTalk {
		if defaultBusName(name) {
			continue
		}
		add(lvlPotentiallyUnsafe, "Talks to %s on the system bus", name)
	}
	for _, name := range p.SystemBusOwn {
		if defaultBusName(name) {
			continue
		}
		add(lvlPotentiallyUnsafe, "Owns the name %s on the system bus", name)
	}
	return out
}

// defaultBusName: names every sandboxed app may talk to anyway
// (flatpak-metadata(5)); GNOME Software does not list them.
func defaultBusName(name string) bool {
	return name == "org.freedesktop.DBus" || strings.HasPrefix(name, "org.freedesktop.portal.")
}

// xdgDirs names the XDG folders a filesystem entry may start with.
var xdgDirs = map[string]string{
	"xdg-desktop":      "Desktop folder",
	"xdg-documents":    "Documents folder",
	"xdg-download":     "Downloads folder",
	"xdg-music":        "Music folder",
	"xdg-pictures":     "Pictures folder",
	"xdg-public-share": "Public Share folder",
	"xdg-videos":       "Videos folder",
	"xdg-templates":    "Templates folder",
	"xdg-cache":        "cache folder",
	"xdg-config":       "configuration folder",
	"xdg-data":         "data folder",
	"xdg-run":          "runtime folder",
}

// describeFilesystem words one [Context] filesystems entry; ok is false
// for entries GNOME Software ignores.
func describeFilesystem(entry string) (finding, bool) {
	path, mode := entry, "rw"
	if i := strings.LastIndexByte(entry, ':'); i >= 0 {
		switch entry[i+1:] {
		case "ro", "rw", "create":
			path, mode = entry[:i], entry[i+1:]
		}
	}
	ro := mode == "ro"
	access := func(what string) string {
		if ro {
			return "Can read " + what
		}
		return "Full access to " + what
	}
	switch path {
	case "host":
		if ro {
			return finding{lvlPotentiallyUnsafe, "Can read all files on the system"}, true
		}
		return finding{lvlUnsafe, "Full access to all files on the system"}, true
	case "host-os":
		return finding{lvlPotentiallyUnsafe, access("the host's system folders")}, true
	case "host-etc":
		return finding{lvlPotentiallyUnsafe, access("the host's configuration in /etc")}, true
	case "home", "~":
		return finding{lvlPotentiallyUnsafe, access("your home folder")}, true
	case "xdg-config/kdeglobals":
		if ro {
			return finding{}, false // every KDE app reads it
		}
	case "xdg-data/flatpak/overrides":
		return finding{lvlUnsafe, "Can change the permissions of apps, itself included"}, true
	case "xdg-run/pipewire-0":
		return finding{lvlPotentiallyUnsafe, "Can record the screen and audio (PipeWire)"}, true
	case "xdg-run/gvfsd":
		return finding{lvlUnsafe, "Full access to all your files (through GVfs)"}, true
	}
	first, rest, _ := strings.Cut(path, "/")
	if name, ok := xdgDirs[first]; ok {
		if rest == "" {
			return finding{lvlPotentiallyUnsafe, access("your " + name)}, true
		}
		return finding{lvlPotentiallyUnsafe, access(rest + " in your " + name)}, true
	}
	switch {
	case strings.HasPrefix(path, "~/"):
		return finding{lvlPotentiallyUnsafe, access(path[2:] + " in your home folder")}, true
	case strings.HasPrefix(path, "home/"):
		return finding{lvlPotentiallyUnsafe, access(path[5:] + " in your home folder")}, true
	case strings.HasPrefix(path, "/"):
		return finding{lvlPotentiallyUnsafe, access("the system folder " + path)}, true
	}
	return finding{lvlPotentiallyUnsafe, access("files in " + path)}, true
}
