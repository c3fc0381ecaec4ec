package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's fixed layout. Operators and the Helm chart rely on these:
// change them only with docs/install.md and deploy/helm.
const (
	BinaryPath = "/usr/bin/berth"
	ConfigPath = "/etc/berth/config.yaml"
	DataDir    = "/var/lib/berth"
	// UID and GID 65532 are distroless's "nonroot": a number no distribution
	// assigns, so files on a host volume never belong to a real account.
	UID      = 65532
	GID      = 65532
	UserName = "berth"
	Port     = "5000/tcp"
	// CACertsPath is where Go's crypto/x509 looks first on Linux.
	CACertsPath = "/etc/ssl/certs/ca-certificates.crt"
)

// DefaultConfig is /etc/berth/config.yaml: the embedded default (SQLite and
// the filesystem) with its data in the volume. Mount a ConfigMap or file
// over it, or override single keys with BERTH_* variables.
const DefaultConfig = `# Berth in its OCI image. Every key is in docs/configuration.md;
# BERTH_<SECTION>_<KEY> variables override any of them (BERTH_LOG_LEVEL=debug).
http:
  addr: ":5000"
storage:
  dir: /var/lib/berth
log:
  format: json
`

// Annotation keys (image-spec annotations.md).
const (
	annSource      = "org.opencontainers.image.source"
	annVersion     = "org.opencontainers.image.version"
	annRevision    = "org.opencontainers.image.revision"
	annLicenses    = "org.opencontainers.image.licenses"
	annCreated     = "org.opencontainers.image.created"
	annTitle       = "org.opencontainers.image.title"
	annDescription = "org.opencontainers.image.description"
	annRefName     = "org.opencontainers.image.ref.name"
)

// Binary is berth compiled for one platform.
type Binary struct {
	Platform v1.Platform
	Data     []byte
}

// Spec is everything the image is made of. The same Spec gives the same
// bytes, hence the same digests.
type Spec struct {
	Binaries    []Binary
	Version     string
	Revision    string
	Source      string
	Licenses    string
	Title       string
	Description string
	// Created is the image's creation time and every file's mtime:
	// SOURCE_DATE_EPOCH or the commit's time, never the clock.
	Created time.Time
	// CACerts, when set, is installed at CACertsPath so Berth can reach
	// S3, PostgreSQL over TLS and webhook endpoints.
	CACerts []byte
}

func (s Spec) annotations() map[string]string {
	a := map[string]string{
		annSource:      s.Source,
		annVersion:     s.Version,
		annRevision:    s.Revision,
		annLicenses:    s.Licenses,
		annCreated:     s.Created.UTC().Format(time.RFC3339),
		annTitle:       s.Title,
		annDescription: s.Description,
	}
	for k, v := range a {
		if v == "" {
			delete(a, k)
		}
	}
	return a
}

func (s Spec) check() error {
	var errs []error
	if len(s.Binaries) == 0 {
		errs = append(errs, errors.New("no binaries"))
	}
	seen := map[string]bool{}
	for _, b := range s.Binaries {
		p := b.Platform.String()
		if b.Platform.OS != "linux" || b.Platform.Architecture == "" {
			errs = append(errs, fmt.Errorf("platform %q: want linux/ARCH", p))
		}
		if seen[p] {
			errs = append(errs, fmt.Errorf("platform %s given twice", p))
		}
		seen[p] = true
		if len(b.Data) == 0 {
			errs = append(errs, fmt.Errorf("platform %s: empty binary", p))
		}
	}
	if s.Version == "" {
		errs = append(errs, errors.New("version is empty"))
	}
	if s.Created.IsZero() {
		errs = append(errs, errors.New("creation time is unset (SOURCE_DATE_EPOCH or the commit time)"))
	}
	return errors.Join(errs...)
}

// baseEntries are the files every platform shares: the user, the default
// config, the data directory and /tmp. They form one layer, so both
// platforms' manifests name the same blob.
func baseEntries(caCerts []byte) []entry {
	es := []entry{
		// passwd and group let the runtime and tools resolve uid 65532 to
		// a name; the shell is one that does not exist on purpose.
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte(
			"root:x:0:0:root:/root:/sbin/nologin\n" +
				fmt.Sprintf("%s:x:%d:%d:Berth registry:%s:/sbin/nologin\n", UserName, UID, GID, DataDir))},
		{Path: "/etc/group", Mode: 0o644, Data: []byte(
			"root:x:0:\n" + fmt.Sprintf("%s:x:%d:\n", UserName, GID))},
		{Path: "/etc/berth", Mode: 0o755, Dir: true},
		{Path: ConfigPath, Mode: 0o644, Data: []byte(DefaultConfig)},
		// The volume's mount point, owned by berth: a fresh named volume
		// copies this ownership, so Berth can write without root.
		{Path: DataDir, Mode: 0o750, UID: UID, GID: GID, Dir: true},
		{Path: "/tmp", Mode: 0o1777, Dir: true},
	}
	if len(caCerts) > 0 {
		es = append(es, entry{Path: CACertsPath, Mode: 0o644, Data: caCerts})
	}
	return es
}

// Build assembles the multi-platform image index.
func Build(s Spec) (v1.ImageIndex, error) {
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("image spec: %w", err)
	}
	baseTar, err := layerTar(baseEntries(s.CACerts), s.Created)
	if err != nil {
		return nil, err
	}
	base, err := newLayer(baseTar)
	if err != nil {
		return nil, err
	}
	ann := s.annotations()
	var adds []mutate.IndexAddendum
	for _, b := range s.Binaries {
		img, err := buildImage(s, ann, base, b)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", b.Platform.String(), err)
		}
		p := b.Platform
		adds = append(adds, mutate.IndexAddendum{Add: plainImage{img}, Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	idx = mutate.AppendManifests(idx, adds...)
	return mutate.Annotations(idx, ann).(v1.ImageIndex), nil
}

func buildImage(s Spec, ann map[string]string, base v1.Layer, b Binary) (v1.Image, error) {
	binTar, err := layerTar([]entry{{Path: BinaryPath, Mode: 0o755, Data: b.Data}}, s.Created)
	if err != nil {
		return nil, err
	}
	bin, err := newLayer(binTar)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: s.Created.UTC()}
	cfg := &v1.ConfigFile{
		Architecture: b.Platform.Architecture,
		Variant:      b.Platform.Variant,
		OS:           b.Platform.OS,
		Created:      created,
		Author:       s.Source,
		Config: v1.Config{
			User:         fmt.Sprintf("%d:%d", UID, GID),
			Entrypoint:   []string{BinaryPath},
			Cmd:          []string{"serve", "--config", ConfigPath},
			ExposedPorts: map[string]struct{}{Port: {}},
			Volumes:      map[string]struct{}{DataDir: {}},
			WorkingDir:   DataDir,
			Env:          []string{"PATH=/usr/bin:/bin"},
			// The labels repeat the annotations for tools that read only
			// the config (docker inspect, podman inspect).
			Labels: ann,
			// SIGTERM is what berth serve drains on.
			StopSignal: "SIGTERM",
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, err
	}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{
			Created: created, CreatedBy: "berth-image: /etc/passwd, /etc/group, " + ConfigPath + ", " + DataDir + ", /tmp",
			Comment: "base"}},
		mutate.Addendum{Layer: bin, MediaType: types.OCILayer, History: v1.History{
			Created: created, CreatedBy: "berth-image: " + BinaryPath + " (CGO_ENABLED=0 go build -trimpath)",
			Comment: s.Version}},
	)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, ann).(v1.Image), nil
}

// plainImage is an image whose index descriptor carries no artifactType.
// go-containerregistry fills it with the config's media type unless the
// image says otherwise; image-spec reserves it for artifacts, and
// containers/image (skopeo, podman) drops it on copy, which would change
// the index's bytes and digest between the layout and the registry.
type plainImage struct{ v1.Image }

func (plainImage) ArtifactType() (string, error) { return "", nil }

// WriteLayout writes idx as an OCI image layout at dir, replacing what was
// there. The layout's index.json names the image index once, tagged
// refName, so `skopeo copy --all oci:DIR:REF` and `oci:DIR` both find it.
func WriteLayout(dir string, idx v1.ImageIndex, refName string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o755); err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	var ann map[string]string
	if refName != "" {
		ann = map[string]string{annRefName: refName}
	}
	outer := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{
		Add:        idx,
		Descriptor: v1.Descriptor{Annotations: ann},
	})
	if _, err := layout.Write(dir, outer); err != nil {
		return fmt.Errorf("layout %s: %w", dir, err)
	}
	return nil
}

// parsePlatform reads "linux/amd64" or "linux/arm/v7".
func parsePlatform(s string) (v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return v1.Platform{}, fmt.Errorf("platform %q: want OS/ARCH[/VARIANT]", s)
	}
	for _, p := range parts {
		if p == "" || strings.TrimFunc(p, func(r rune) bool {
			return r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		}) != "" {
			return v1.Platform{}, fmt.Errorf("platform %q: each part is lower-case letters and digits", s)
		}
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}
