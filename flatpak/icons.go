package flatpak

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"log/slog"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// MaxIconURIBytes caps the icon label (the whole data: URI) that is
// decoded; a larger one is refused before any decoding.
const MaxIconURIBytes = 256 << 10

// iconLabels maps each AppStream icon label to the size (in pixels, both
// width and height) its PNG must have.
var iconLabels = []struct {
	key  string
	size int
}{{LabelIcon64, 64}, {LabelIcon128, 128}}

// IconSize returns the pixel size of an AppStream icon label key (64 or
// 128), or 0 if key is not one.
func IconSize(key string) int {
	for _, l := range iconLabels {
		if l.key == key {
			return l.size
		}
	}
	return 0
}

// Icon is a checked PNG icon decoded from a label.
type Icon struct {
	Size   int           // width and height in pixels
	Digest digest.Digest // sha256 of PNG
	PNG    []byte
}

// ErrInvalidIcon is wrapped by every DecodeIcon error.
var ErrInvalidIcon = errors.New("invalid icon")

// DecodeIcon decodes an icon label value, a data:image/png;base64,… URI,
// and checks, in this order and before decoding any pixel: the URI's
// length (at most MaxIconURIBytes), the media type (only PNG), the base64,
// and the PNG header (image.DecodeConfig: exactly size×size pixels). Only
// then is the whole PNG decoded, to refuse truncated or corrupt data. The
// bytes kept are the PNG as pushed. Errors wrap ErrInvalidIcon.
func DecodeIcon(value string, size int) (Icon, error) {
	if len(value) > MaxIconURIBytes {
		return Icon{}, fmt.Errorf("%w: %d bytes, more than the %d allowed", ErrInvalidIcon, len(value), MaxIconURIBytes)
	}
	scheme, rest, ok := strings.Cut(value, ":")
	if !ok || !strings.EqualFold(scheme, "data") {
		return Icon{}, fmt.Errorf("%w: not a data: URI", ErrInvalidIcon)
	}
	mediaType, data, ok := strings.Cut(rest, ",")
	if !ok {
		return Icon{}, fmt.Errorf("%w: data: URI without a comma", ErrInvalidIcon)
	}
	params := strings.Split(mediaType, ";")
	if !strings.EqualFold(strings.TrimSpace(params[0]), "image/png") {
		return Icon{}, fmt.Errorf("%w: media type %q is not image/png", ErrInvalidIcon, params[0])
	}
	if !strings.EqualFold(strings.TrimSpace(params[len(params)-1]), "base64") {
		return Icon{}, fmt.Errorf("%w: data: URI is not base64", ErrInvalidIcon)
	}
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(data); err != nil {
			return Icon{}, fmt.Errorf("%w: base64: %v", ErrInvalidIcon, err)
		}
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		return Icon{}, fmt.Errorf("%w: not a PNG: %v", ErrInvalidIcon, err)
	}
	if cfg.Width != size || cfg.Height != size {
		return Icon{}, fmt.Errorf("%w: %dx%d pixels, want %dx%d", ErrInvalidIcon, cfg.Width, cfg.Height, size, size)
	}
	if _, err := png.Decode(bytes.NewReader(raw)); err != nil {
		return Icon{}, fmt.Errorf("%w: PNG: %v", ErrInvalidIcon, err)
	}
	return Icon{Size: size, Digest: digest.FromBytes(raw), PNG: raw}, nil
}

// IconPath is the path (under the server's root) at which the icon with
// digest d is served.
func IconPath(d digest.Digest) string { return "/icons/" + d.Encoded() + ".png" }

// IconStore keeps the icons the IconRecorder decodes.
type IconStore interface {
	// PutIcon stores png under its digest d once and records that the
	// manifest key shows it at size; an error matching
	// meta.ErrManifestNotFound if the manifest is not stored.
	PutIcon(ctx context.Context, key meta.ManifestKey, size int, d digest.Digest, png []byte) error
}

// IconRecorder decodes the AppStream icons of each pushed manifest and
// stores them; it implements registry.ManifestObserver. It is safe for
// concurrent use.
type IconRecorder struct {
	store IconStore
	log   *slog.Logger
}

// NewIconRecorder returns an IconRecorder storing into store. A nil logger
// discards.
func NewIconRecorder(store IconStore, logger *slog.Logger) *IconRecorder {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &IconRecorder{store: store, log: logger}
}

// PrepareManifest decodes the icon-64 and icon-128 labels (config labels,
// else manifest annotations) of m that hold data: URIs into m.Icons, which
// the store records in the transaction that stores m (it implements
// registry.ManifestPreparer): one write per push. A malformed icon is
// skipped with a warning; the push goes on without it.
func (ir *IconRecorder) PrepareManifest(ctx context.Context, m *meta.Manifest) {
	m.Icons = ir.decode(ctx, m)
}

// ManifestStored does nothing: PrepareManifest gave the store the icons
// before the manifest was stored (IconRecorder is a
// registry.ManifestObserver only to be a preparer).
func (ir *IconRecorder) ManifestStored(context.Context, *meta.Manifest, []string) {}

// decode returns the valid data: icons of m's labels (or annotations).
func (ir *IconRecorder) decode(ctx context.Context, m *meta.Manifest) []meta.Icon {
	var out []meta.Icon
	for _, l := range iconLabels {
		value, ok := m.Labels[l.key]
		if !ok {
			value, ok = m.Annotations[l.key]
		}
		if !ok || !isDataURI(value) {
			continue // an http(s) URL is passed on by the index as it is
		}
		icon, err := DecodeIcon(value, l.size)
		if err != nil {
			ir.log.WarnContext(ctx, "icon label skipped", "repo", m.Repo, "digest", m.Digest, "label", l.key, "err", err)
			continue
		}
		out = append(out, meta.Icon{Size: l.size, Digest: icon.Digest, PNG: icon.PNG})
	}
	return out
}

// Record stores the icons of a manifest already stored (Backfill, and
// tests that store manifests directly), one PutIcon each. The caller's
// going away does not stop it.
func (ir *IconRecorder) Record(ctx context.Context, m *meta.Manifest) {
	ctx = context.WithoutCancel(ctx)
	key := meta.ManifestKey{Repo: m.Repo, Digest: m.Digest}
	for _, ic := range ir.decode(ctx, m) {
		if err := ir.store.PutIcon(ctx, key, ic.Size, ic.Digest, ic.PNG); err != nil {
			ir.log.WarnContext(ctx, "icon not stored", "repo", m.Repo, "digest", m.Digest, "size", ic.Size, "err", err)
		}
	}
}

// MissingIcons lists the manifests whose data: icons were never recorded
// (meta/metatest.IndexStore's ManifestsWithoutIcons).
type MissingIcons interface {
	ManifestsWithoutIcons(ctx context.Context, after meta.ManifestKey, n int) ([]meta.Manifest, error)
}

// backfillPage is how many manifests one Backfill query returns.
const backfillPage = 100

// Backfill records the icons of the manifests src lists: those pushed while
// no IconRecorder was watching (or whose recording failed). It looks at
// most at limit manifests, a page at a time, and returns how many it
// looked at. It is idempotent: a manifest whose icons are recorded is no
// longer listed, and one whose icons do not decode is passed over (with
// the warning ManifestStored gives), so running it at every start does no
// more than one pass over what is still missing.
func (ir *IconRecorder) Backfill(ctx context.Context, src MissingIcons, limit int) (int, error) {
	var (
		after meta.ManifestKey
		seen  int
	)
	for seen < limit {
		page, err := src.ManifestsWithoutIcons(ctx, after, min(backfillPage, limit-seen))
		if err != nil {
			return seen, fmt.Errorf("icon backfill: %w", err)
		}
		for i := range page {
			if err := ctx.Err(); err != nil {
				return seen, err
			}
			ir.Record(ctx, &page[i])
			seen++
		}
		if len(page) < backfillPage {
			break
		}
		last := page[len(page)-1]
		after = meta.ManifestKey{Repo: last.Repo, Digest: last.Digest}
	}
	return seen, nil
}
