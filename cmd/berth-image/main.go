// Command berth-image builds Berth's OCI image without a container daemon:
// it cross-compiles the static berth binary for each platform (CGO_ENABLED=0,
// -trimpath), lays it on an empty base with a passwd entry for uid 65532, a
// default /etc/berth/config.yaml and a /var/lib/berth volume, and writes one
// multi-platform image index into an OCI image layout directory, which skopeo,
// crane, oras or podman can push anywhere:
//
//	go run ./cmd/berth-image -out dist/oci
//	skopeo copy --all oci:dist/oci docker://registry.example.com/berth:VERSION
//
// The build is reproducible: file times and the image's creation time come
// from SOURCE_DATE_EPOCH or the commit's time, tar entries are sorted and
// carry no build-machine owners, so the same sources give the same digests.
//
// It uses go-containerregistry (the library crane is built on) for the
// image and layout formats; ko would do the same but needs the network.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// defaultLicenses is the licenses annotation until the project has a
// LICENSE file to name (SPDX "no assertion").
const defaultLicenses = "NOASSERTION"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "berth-image:", err)
		os.Exit(1)
	}
}

type binaryFlags map[string]string

func (b binaryFlags) String() string { return fmt.Sprint(map[string]string(b)) }
func (b binaryFlags) Set(s string) error {
	p, file, ok := strings.Cut(s, "=")
	if !ok || file == "" {
		return fmt.Errorf("want PLATFORM=FILE, got %q", s)
	}
	if _, err := parsePlatform(p); err != nil {
		return err
	}
	b[p] = file
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("berth-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		out       = fs.String("out", "", "OCI layout directory to write (replaced)")
		dir       = fs.String("C", ".", "the Berth module's directory")
		platforms = fs.String("platforms", "linux/amd64,linux/arm64", "comma-separated platforms")
		version   = fs.String("version", "", "release version (default: git describe --tags --always --dirty --match v[0-9]*, as scripts/build.sh)")
		revision  = fs.String("revision", "", "source revision (default: git rev-parse HEAD)")
		created   = fs.String("created", "", "creation time, RFC 3339 (default: $SOURCE_DATE_EPOCH, else the commit's time)")
		source    = fs.String("source", "https://github.com/berth-dev/berth", "source repository URL")
		licenses  = fs.String("licenses", defaultLicenses, "SPDX license expression")
		caCerts   = fs.String("ca-certs", CACertsPath, "CA bundle to install at "+CACertsPath+` ("" for none; skipped if missing)`)
		ref       = fs.String("ref", "", "tag of the index in the layout's index.json (default: the version)")
		cache     = fs.String("cache", "", "directory caching compiled binaries by a hash of their sources")
		binaries  = binaryFlags{}
	)
	fs.Var(binaries, "binary", "PLATFORM=FILE: use this binary instead of compiling (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return fmt.Errorf("usage: berth-image -out DIR [flags]")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	info, err := resolveInfo(ctx, *dir, *version, *revision, *created, os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	spec := Spec{
		Version:     info.Version,
		Revision:    info.Revision,
		Created:     info.Created,
		Source:      *source,
		Licenses:    *licenses,
		Title:       "Berth",
		Description: "An OCI registry for server images and a Flatpak remote, in one static binary",
	}
	if *caCerts != "" {
		b, err := os.ReadFile(*caCerts)
		switch {
		case err == nil:
			spec.CACerts = b
		case os.IsNotExist(err) && *caCerts == CACertsPath:
			log.Warn("no CA bundle on this machine; the image will not verify TLS servers", "path", *caCerts)
		default:
			return fmt.Errorf("ca-certs: %w", err)
		}
	}
	for _, ps := range strings.Split(*platforms, ",") {
		p, err := parsePlatform(strings.TrimSpace(ps))
		if err != nil {
			return err
		}
		var data []byte
		if file, ok := binaries[p.String()]; ok {
			data, err = os.ReadFile(file)
		} else {
			start := time.Now()
			var path string
			var hit bool
			path, hit, err = compile(ctx, *dir, *cache, p, info)
			if err == nil {
				log.Info("berth binary", "platform", p.String(), "cached", hit, "took", time.Since(start).Round(time.Millisecond))
				data, err = os.ReadFile(path)
				if *cache == "" {
					os.RemoveAll(filepath.Dir(path)) // compile's temporary directory
				}
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", p.String(), err)
		}
		spec.Binaries = append(spec.Binaries, Binary{Platform: p, Data: data})
	}
	idx, err := Build(spec)
	if err != nil {
		return err
	}
	tag := *ref
	if tag == "" {
		tag = info.Version
	}
	if err := WriteLayout(*out, idx, tag); err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s %s\n", *out, tag, d)
	return nil
}

// buildInfo is what the binary and the annotations say about the build.
type buildInfo struct {
	Version, Revision string
	Created           time.Time
}

func resolveInfo(ctx context.Context, dir, version, revision, created, sourceDateEpoch string) (buildInfo, error) {
	var bi buildInfo
	var err error
	if bi.Version = version; bi.Version == "" {
		if bi.Version, err = git(ctx, dir, "describe", "--tags", "--always", "--dirty", "--match", "v[0-9]*"); err != nil {
			return bi, fmt.Errorf("version (give -version): %w", err)
		}
	}
	if bi.Revision = revision; bi.Revision == "" {
		if bi.Revision, err = git(ctx, dir, "rev-parse", "HEAD"); err != nil {
			return bi, fmt.Errorf("revision (give -revision): %w", err)
		}
	}
	switch {
	case created != "":
		if bi.Created, err = time.Parse(time.RFC3339, created); err != nil {
			return bi, fmt.Errorf("-created: %w", err)
		}
	case sourceDateEpoch != "":
		if bi.Created, err = parseEpoch(sourceDateEpoch); err != nil {
			return bi, fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
		}
	default:
		ct, err := git(ctx, dir, "log", "-1", "--format=%ct", "HEAD")
		if err != nil {
			return bi, fmt.Errorf("creation time (set SOURCE_DATE_EPOCH): %w", err)
		}
		if bi.Created, err = parseEpoch(ct); err != nil {
			return bi, fmt.Errorf("commit time: %w", err)
		}
	}
	bi.Created = bi.Created.UTC()
	return bi, nil
}

// parseEpoch reads SOURCE_DATE_EPOCH: decimal seconds since 1970, as the
// reproducible-builds specification defines it.
func parseEpoch(s string) (time.Time, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 || n > 253402300799 { // 9999-12-31T23:59:59Z
		return time.Time{}, fmt.Errorf("%q is not a number of seconds since 1970", s)
	}
	return time.Unix(n, 0).UTC(), nil
}
