package flatpak

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Labels and annotations of a Flatpak OCI image that this package reads
// (flatpak-oci-protocol.md §6).
const (
	LabelRef      = "org.flatpak.ref"
	LabelMetadata = "org.flatpak.metadata"
	LabelAppdata  = "org.freedesktop.appstream.appdata"
	LabelIcon64   = "org.freedesktop.appstream.icon-64"
	LabelIcon128  = "org.freedesktop.appstream.icon-128"
	// LabelRuntimeRepo is the .flatpakrepo URL of the app's runtime, when
	// the builder set one.
	LabelRuntimeRepo   = "org.flatpak.runtime-repo"
	LabelInstalledSize = "org.flatpak.installed-size"
	LabelDownloadSize  = "org.flatpak.download-size"
)

// Metadata is what org.flatpak.metadata (a GKeyFile, see
// flatpak-metadata(5)) says.
type Metadata struct {
	Kind string // "app" or "runtime"
	// Name is the application or runtime id; Runtime and SDK are
	// "id/arch/branch" refs without their kind; Command is the program an
	// app runs (empty for runtimes).
	Name, Runtime, SDK, Command string
	Permissions                 Permissions
}

// Permissions are the sandbox holes an app asks for: [Context],
// [Session Bus Policy], [System Bus Policy] and [Environment] of its
// metadata. Lists keep the file's order without duplicates; an entry the
// file negates ("!x") is absent. Slices are never nil.
type Permissions struct {
	// Shared: "network", "ipc". Sockets: "x11", "wayland", "pulseaudio",
	// "session-bus", … Devices: "dri", "all", "kvm", … Features: "devel",
	// "multiarch", "bluetooth", … Filesystems: "home", "host:ro",
	// "xdg-download", "~/path", "/path", …, with their :ro/:rw/:create
	// suffix.
	Shared, Sockets, Devices, Features, Filesystems []string
	// Bus names (or name prefixes ending in ".*") the app may talk to or
	// own. A "see" policy is listed under neither; "none" is absent.
	SessionBusTalk, SessionBusOwn, SystemBusTalk, SystemBusOwn []string
	// Environment variables the app's sandbox sets; never nil.
	Environment map[string]string
}

// Limits on what ParseMetadata reads (the label is the pusher's to size):
// a flatpak metadata file is a few KiB.
const (
	// MaxMetadataBytes caps the metadata ParseMetadata parses.
	MaxMetadataBytes = 64 << 10
	// MaxListEntries caps the entries of one list (filesystems=…;…) and
	// the keys of one group.
	MaxListEntries = 1000
)

// ErrInvalidMetadata is wrapped by every ParseMetadata error.
var ErrInvalidMetadata = errors.New("invalid flatpak metadata")

// ParseMetadata reads an org.flatpak.metadata keyfile with GKeyFile's
// rules: groups in [brackets], key=value lines, # comments, backslash
// escapes (\s \n \t \r \\, and \; in lists), lists separated by ';'. Like
// GKeyFile it refuses a line that is none of these and a key before the
// first group; it also refuses NUL and invalid UTF-8 anywhere (V25).
// Locale variants (key[de]=…) are ignored. A file with neither an
// [Application] nor a [Runtime] group is an error, as are a file larger
// than MaxMetadataBytes (not parsed at all) and a list or group with more
// than MaxListEntries entries. Errors wrap ErrInvalidMetadata.
func ParseMetadata(data []byte) (Metadata, error) {
	if len(data) > MaxMetadataBytes {
		return Metadata{}, fmt.Errorf("%w: %d bytes, more than the %d read", ErrInvalidMetadata, len(data), MaxMetadataBytes)
	}
	kf, err := parseKeyFile(data)
	if err != nil {
		return Metadata{}, fmt.Errorf("%w: %v", ErrInvalidMetadata, err)
	}
	var md Metadata
	var group string
	switch {
	case kf.has("Application"):
		md.Kind, group = "app", "Application"
	case kf.has("Runtime"):
		md.Kind, group = "runtime", "Runtime"
	default:
		return Metadata{}, fmt.Errorf("%w: no [Application] or [Runtime] group", ErrInvalidMetadata)
	}
	fields := []struct {
		key string
		dst *string
	}{{"name", &md.Name}, {"runtime", &md.Runtime}, {"sdk", &md.SDK}, {"command", &md.Command}}
	for _, f := range fields {
		if *f.dst, err = kf.str(group, f.key); err != nil {
			return Metadata{}, fmt.Errorf("%w: [%s] %s: %v", ErrInvalidMetadata, group, f.key, err)
		}
	}

	p := &md.Permissions
	lists := []struct {
		key string
		dst *[]string
	}{
		{"shared", &p.Shared}, {"sockets", &p.Sockets}, {"devices", &p.Devices},
		{"features", &p.Features}, {"filesystems", &p.Filesystems},
	}
	for _, l := range lists {
		vals, err := kf.list("Context", l.key)
		if err != nil {
			return Metadata{}, fmt.Errorf("%w: [Context] %s: %v", ErrInvalidMetadata, l.key, err)
		}
		*l.dst = applyNegations(vals)
	}
	p.SessionBusTalk, p.SessionBusOwn = []string{}, []string{}
	p.SystemBusTalk, p.SystemBusOwn = []string{}, []string{}
	buses := []struct {
		group     string
		talk, own *[]string
	}{
		{"Session Bus Policy", &p.SessionBusTalk, &p.SessionBusOwn},
		{"System Bus Policy", &p.SystemBusTalk, &p.SystemBusOwn},
	}
	for _, b := range buses {
		for _, name := range kf.keys(b.group) {
			policy, err := kf.str(b.group, name)
			if err != nil {
				return Metadata{}, fmt.Errorf("%w: [%s] %s: %v", ErrInvalidMetadata, b.group, name, err)
			}
			switch policy {
			case "talk":
				*b.talk = append(*b.talk, name)
			case "own":
				*b.own = append(*b.own, name)
			}
		}
	}
	p.Environment = map[string]string{}
	for _, name := range kf.keys("Environment") {
		v, err := kf.str("Environment", name)
		if err != nil {
			return Metadata{}, fmt.Errorf("%w: [Environment] %s: %v", ErrInvalidMetadata, name, err)
		}
		p.Environment[name] = v
	}
	return md, nil
}

// applyNegations drops "!x" entries and the x they negate before them, and
// duplicates; an x added again after its negation comes back at the end.
// It is linear in the number of entries.
func applyNegations(vals []string) []string {
	// live holds, for each entry present, the position of the addition
	// that counts; additions at other positions were negated or repeated.
	live := make(map[string]int, len(vals))
	for i, v := range vals {
		if neg, ok := strings.CutPrefix(v, "!"); ok {
			delete(live, neg)
			continue
		}
		if _, dup := live[v]; v != "" && !dup {
			live[v] = i
		}
	}
	out := make([]string, 0, len(live))
	for i, v := range vals {
		if at, ok := live[v]; ok && at == i {
			out = append(out, v)
		}
	}
	return out
}

// keyFile is a parsed GKeyFile: groups in file order, each with its keys
// in file order (a repeated group is merged, a repeated key keeps its last
// value, as GKeyFile does).
type keyFile struct {
	groups []*kfGroup
}

type kfGroup struct {
	name   string
	keys   []string
	values map[string]string // raw, still escaped
}

func (kf *keyFile) group(name string) *kfGroup {
	for _, g := range kf.groups {
		if g.name == name {
			return g
		}
	}
	return nil
}

func (kf *keyFile) has(name string) bool { return kf.group(name) != nil }

// keys returns the group's keys (without locale variants) in file order.
func (kf *keyFile) keys(group string) []string {
	g := kf.group(group)
	if g == nil {
		return nil
	}
	return g.keys
}

// str returns the unescaped value of key, "" if absent.
func (kf *keyFile) str(group, key string) (string, error) {
	g := kf.group(group)
	if g == nil {
		return "", nil
	}
	raw, ok := g.values[key]
	if !ok {
		return "", nil
	}
	return unescapeValue(raw)
}

// list returns the ';'-separated values of key, unescaped; never nil.
func (kf *keyFile) list(group, key string) ([]string, error) {
	g := kf.group(group)
	if g == nil {
		return []string{}, nil
	}
	raw, ok := g.values[key]
	if !ok {
		return []string{}, nil
	}
	out := []string{}
	var cur strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '\\' && i+1 < len(raw) && raw[i+1] == ';':
			cur.WriteByte(';')
			i++
		case c == '\\' && i+1 < len(raw):
			cur.WriteByte(c)
			cur.WriteByte(raw[i+1])
			i++
		case c == ';':
			if len(out) == MaxListEntries {
				return nil, fmt.Errorf("more than %d entries", MaxListEntries)
			}
			v, err := unescapeValue(cur.String())
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 { // no trailing separator: the last item still counts
		if len(out) == MaxListEntries {
			return nil, fmt.Errorf("more than %d entries", MaxListEntries)
		}
		v, err := unescapeValue(cur.String())
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// unescapeValue applies GKeyFile's escapes.
func unescapeValue(raw string) (string, error) {
	if !strings.Contains(raw, `\`) {
		return raw, nil
	}
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(raw) {
			return "", errors.New("escape character at end of line")
		}
		i++
		switch raw[i] {
		case 's':
			b.WriteByte(' ')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '\\':
			b.WriteByte('\\')
		case ';':
			b.WriteByte(';')
		default:
			return "", fmt.Errorf("invalid escape sequence \\%c", raw[i])
		}
	}
	return b.String(), nil
}

// parseKeyFile parses data with GKeyFile's line rules.
func parseKeyFile(data []byte) (*keyFile, error) {
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, errors.New("contains a NUL byte")
	}
	if !utf8.Valid(data) {
		return nil, errors.New("not valid UTF-8")
	}
	kf := &keyFile{}
	var cur *kfGroup
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		trimmed := strings.TrimLeft(line, " \t\v\f\r")
		switch {
		case trimmed == "" || trimmed[0] == '#':
			continue
		case trimmed[0] == '[':
			end := strings.IndexByte(trimmed, ']')
			if end < 0 {
				return nil, fmt.Errorf("line %d: group header without ']'", n+1)
			}
			name := trimmed[1:end]
			if name == "" || strings.ContainsAny(name, "[]") || hasControl(name) {
				return nil, fmt.Errorf("line %d: invalid group name %q", n+1, name)
			}
			if rest := strings.TrimSpace(trimmed[end+1:]); rest != "" {
				return nil, fmt.Errorf("line %d: text after group header", n+1)
			}
			cur = kf.group(name)
			if cur == nil {
				cur = &kfGroup{name: name, values: map[string]string{}}
				kf.groups = append(kf.groups, cur)
			}
		default:
			key, value, ok := strings.Cut(trimmed, "=")
			key = strings.TrimRight(key, " \t")
			if !ok || key == "" {
				return nil, fmt.Errorf("line %d: not a key-value pair, group, or comment", n+1)
			}
			if cur == nil {
				return nil, fmt.Errorf("line %d: key before the first group", n+1)
			}
			if hasControl(key) {
				return nil, fmt.Errorf("line %d: invalid key %q", n+1, key)
			}
			value = strings.TrimLeft(value, " \t")
			if strings.Contains(key, "[") { // key[locale]: a translation
				if !strings.HasSuffix(key, "]") {
					return nil, fmt.Errorf("line %d: invalid key %q", n+1, key)
				}
				continue
			}
			if _, dup := cur.values[key]; !dup {
				if len(cur.keys) == MaxListEntries {
					return nil, fmt.Errorf("line %d: more than %d keys in group [%s]", n+1, MaxListEntries, cur.name)
				}
				cur.keys = append(cur.keys, key)
			}
			cur.values[key] = value
		}
	}
	return kf, nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}
