package testutil

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// Layer is a layer written to a file: the gzip blob's path, digest and
// size, and its tar's DiffID.
type Layer struct {
	Path   string
	Digest digest.Digest
	Size   int64
	DiffID digest.Digest
}

// WriteLayer writes to path a gzipped (fastest level) tar of size bytes
// of files of 4 MiB pseudo-random bytes (files/share/data/NNN.bin, the same
// for every call), with 64 bytes flipped in the middle of file changed
// (none if changed < 0) and, when extra > 0, one more file of extra bytes.
// Versions of a Flatpak-like layer for delta tests and benchmarks.
func WriteLayer(t testing.TB, path string, size int64, changed int, extra int) Layer {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blobH, tarH := digest.SHA256.Digester(), digest.SHA256.Digester()
	bw := bufio.NewWriterSize(io.MultiWriter(f, blobH.Hash()), 1<<20)
	zw, _ := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	tw := tar.NewWriter(io.MultiWriter(zw, tarH.Hash()))
	const fileSize = 4 << 20
	var seed [32]byte
	rng := rand.NewChaCha8(seed)
	buf := make([]byte, fileSize)
	add := func(name string, body []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644,
			Size: int64(len(body)), ModTime: time.Unix(1e9, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	for i := range int(size / fileSize) {
		rng.Read(buf)
		if i == changed {
			for k := range 64 {
				buf[fileSize/2+k] ^= 0x5a
			}
		}
		add(fmt.Sprintf("files/share/data/%03d.bin", i), buf)
	}
	if extra > 0 {
		add("files/share/added.bin", buf[:min(extra, len(buf))])
	}
	for _, c := range []io.Closer{tw, zw} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return Layer{Path: path, Digest: blobH.Digest(), Size: st.Size(), DiffID: tarH.Digest()}
}
