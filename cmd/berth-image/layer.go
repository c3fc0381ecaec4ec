package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// entry is one file or directory of a layer.
type entry struct {
	Path string // absolute, e.g. /usr/bin/berth
	Mode int64  // permission bits (and sticky)
	UID  int
	GID  int
	Dir  bool
	Data []byte
}

// layerTar writes entries as a tar stream that depends on nothing but the
// entries and mtime: sorted by path (parents before children), every
// header's times fixed, no user or group names from the build machine, PAX
// records only when a field needs one. Missing parent directories are added
// (root-owned, 0755), so a runtime never has to invent them.
func layerTar(entries []entry, mtime time.Time) ([]byte, error) {
	byPath := map[string]entry{}
	for _, e := range entries {
		p := path.Clean("/" + e.Path)
		if p == "/" {
			return nil, fmt.Errorf("layer: entry %q names the root", e.Path)
		}
		if _, dup := byPath[p]; dup {
			return nil, fmt.Errorf("layer: %s listed twice", p)
		}
		e.Path = p
		byPath[p] = e
	}
	for p := range byPath {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if e, ok := byPath[d]; ok {
				if !e.Dir {
					return nil, fmt.Errorf("layer: %s is a file but %s is under it", d, p)
				}
				continue
			}
			byPath[d] = entry{Path: d, Mode: 0o755, Dir: true}
		}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	// Sorting by path puts "/a" before "/a/b": a directory precedes what
	// it holds, as tar readers expect.
	sort.Strings(paths)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime = mtime.UTC().Truncate(time.Second)
	for _, p := range paths {
		e := byPath[p]
		h := &tar.Header{
			Name:    strings.TrimPrefix(p, "/"),
			Mode:    e.Mode,
			Uid:     e.UID,
			Gid:     e.GID,
			ModTime: mtime,
			Format:  tar.FormatPAX,
		}
		if e.Dir {
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer: header %s: %w", p, err)
		}
		if !e.Dir {
			if _, err := tw.Write(e.Data); err != nil {
				return nil, fmt.Errorf("layer: writing %s: %w", p, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return buf.Bytes(), nil
}

// gzipped compresses b reproducibly: compress/gzip is deterministic for a
// given level, and the header carries no name, time or OS of the build.
func gzipped(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	zw.OS = 255 // "unknown", whatever machine builds it
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// memLayer is a gzipped OCI layer held in memory. (go-containerregistry's
// static.NewLayer reports the compressed digest as the DiffID, which is
// wrong for a compressed layer; its tarball layers recompress lazily.)
type memLayer struct {
	tar, gz        []byte
	digest, diffID v1.Hash
}

func newLayer(tarBytes []byte) (*memLayer, error) {
	gz, err := gzipped(tarBytes)
	if err != nil {
		return nil, fmt.Errorf("layer: gzip: %w", err)
	}
	d, _, err := v1.SHA256(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	diff, _, err := v1.SHA256(bytes.NewReader(tarBytes))
	if err != nil {
		return nil, err
	}
	return &memLayer{tar: tarBytes, gz: gz, digest: d, diffID: diff}, nil
}

func (l *memLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *memLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *memLayer) Size() (int64, error)                { return int64(len(l.gz)), nil }
func (l *memLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (l *memLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.gz)), nil
}
func (l *memLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.tar)), nil
}
