package tardiff_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/berth-dev/berth/tardiff"
)

// entry is one tar entry of a test tree.
type entry struct {
	name     string
	typ      byte
	body     []byte
	mode     int64
	linkname string
	pax      map[string]string
}

func reg(name string, body []byte) entry {
	return entry{name: name, typ: tar.TypeReg, body: body, mode: 0o644}
}

func mkTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body)),
			Linkname: e.linkname, ModTime: time.Unix(1e9, 0), PAXRecords: e.pax}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write(e.body)
		}
	}
	tw.Close()
	// Pad to a 10 KiB record, as tar(1) does: trailing bytes after the
	// end blocks are part of the layer too.
	if r := b.Len() % 10240; r != 0 {
		b.Write(make([]byte, 10240-r))
	}
	return b.Bytes()
}

func random(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func flip(b []byte, at, n int) []byte {
	b = bytes.Clone(b)
	for i := range n {
		b[at+i] ^= 0xa5
	}
	return b
}

// roundTrip diffs old to new, applies the delta to old, and checks the
// result is new byte for byte.
func roundTrip(t *testing.T, old, new []byte, opt tardiff.Options) (tardiff.Stats, []byte) {
	t.Helper()
	opt.TempDir = t.TempDir()
	var delta bytes.Buffer
	st, err := tardiff.Diff(t.Context(), bytes.NewReader(old), bytes.NewReader(new), &delta, opt)
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	if st.DeltaBytes != int64(delta.Len()) || st.OldBytes != int64(len(old)) || st.NewBytes != int64(len(new)) {
		t.Errorf("stats %+v: delta %d, old %d, new %d", st, delta.Len(), len(old), len(new))
	}
	got := apply(t, delta.Bytes(), old)
	if !bytes.Equal(got, new) {
		t.Fatalf("applying the delta gives %d bytes that differ from the new tar's %d", len(got), len(new))
	}
	return st, delta.Bytes()
}

func apply(t *testing.T, delta, old []byte) []byte {
	t.Helper()
	src, err := tardiff.TarSource(t.Context(), bytes.NewReader(old), t.TempDir())
	if err != nil {
		t.Fatalf("TarSource: %v", err)
	}
	defer src.Close()
	var out bytes.Buffer
	if err := tardiff.Apply(t.Context(), bytes.NewReader(delta), src, &out); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return out.Bytes()
}

func TestRoundTrip(t *testing.T) {
	big := random(1, 4<<20)
	small := random(2, 3000)
	base := []entry{
		{name: "files/", typ: tar.TypeDir},
		{name: "files/bin/", typ: tar.TypeDir},
		reg("metadata", []byte("[Application]\nname=org.example.App\n")),
		reg("files/bin/app", small),
		reg("files/share/big.bin", big),
		{name: "files/bin/link", typ: tar.TypeSymlink, linkname: "app"},
		reg("files/empty", nil),
	}
	with := func(changes func([]entry) []entry) []byte {
		es := append([]entry(nil), base...)
		return mkTar(t, changes(es)...)
	}
	old := mkTar(t, base...)
	cases := []struct {
		name     string
		new      []byte
		maxDelta int // bytes
		reused   int
	}{
		{"identical", old, 2048, 3},
		{"64 bytes changed in a 4 MiB file", with(func(es []entry) []entry {
			es[4].body = flip(big, 2<<20, 64)
			return es
		}), 4096, 2},
		{"renamed", with(func(es []entry) []entry {
			es[4].name = "files/share/renamed.bin"
			return es
		}), 2048, 3},
		{"added and removed", with(func(es []entry) []entry {
			es[3] = reg("files/bin/new", random(3, 1000))
			return append(es, reg("files/extra", []byte("extra")))
		}), 4096, 2},
		{"hard link and ./ names", with(func(es []entry) []entry {
			es[4].name = "./files/share/big.bin"
			return append(es, entry{name: "files/hard", typ: tar.TypeLink, linkname: "files/share/big.bin"})
		}), 2048, 3},
		{"PAX headers and a long name", with(func(es []entry) []entry {
			long := "files/" + strings.Repeat("d/", 80) + "deep.bin"
			es[3].pax = map[string]string{"user.xattr": "x"}
			return append(es, reg(long, small))
		}), 4096, 4},
		{"grown file", with(func(es []entry) []entry {
			es[4].body = append(bytes.Clone(big), random(4, 1000)...)
			return es
		}), 4096, 2},
		{"all new", mkTar(t, reg("files/share/big.bin", random(9, 4<<20))), 5 << 20, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, delta := roundTrip(t, old, tc.new, tardiff.Options{})
			t.Logf("%d-byte delta for a %d-byte tar; %+v", len(delta), len(tc.new), st)
			if len(delta) > tc.maxDelta {
				t.Errorf("delta of %d bytes, want at most %d", len(delta), tc.maxDelta)
			}
			if st.FilesReused < tc.reused {
				t.Errorf("%d files reused, want at least %d", st.FilesReused, tc.reused)
			}
		})
	}
}

// TestBigFileSentWhole: a changed file over MaxDiffFileSize is data.
func TestBigFileSentWhole(t *testing.T) {
	big := random(5, 1<<20)
	old := mkTar(t, reg("a.bin", big))
	new := mkTar(t, reg("a.bin", flip(big, 1000, 8)))
	st, delta := roundTrip(t, old, new, tardiff.Options{MaxDiffFileSize: 512 << 10})
	if st.FilesLiteral != 1 || st.FilesDiffed != 0 || len(delta) < 1<<20 {
		t.Errorf("stats %+v, delta %d bytes: want the file sent whole", st, len(delta))
	}
	// Under the limit it is diffed.
	st, delta = roundTrip(t, old, new, tardiff.Options{})
	if st.FilesDiffed != 1 || len(delta) > 4096 {
		t.Errorf("stats %+v, delta %d bytes: want a small diff", st, len(delta))
	}
}

// TestBlockSizeGrows: a small MaxMemory makes bigger blocks (the index
// stays within it) and the delta still rebuilds the file.
func TestBlockSizeGrows(t *testing.T) {
	big := random(6, 8<<20)
	old := mkTar(t, reg("a.bin", big))
	new := mkTar(t, reg("a.bin", flip(flip(big, 100, 10), 6<<20, 10)))
	st, delta := roundTrip(t, old, new, tardiff.Options{MaxMemory: 64 << 10})
	if st.BlockSize <= 64 || int64(8<<20)/int64(st.BlockSize)*48 > 64<<10+48 {
		t.Errorf("block size %d for an 8 MiB file in a 64 KiB index", st.BlockSize)
	}
	if len(delta) > 4*st.BlockSize+4096 {
		t.Errorf("delta %d bytes with blocks of %d", len(delta), st.BlockSize)
	}
}

// TestUnreadableNotReferenced: like containers/tar-diff, files others
// cannot read are not referenced (the client may not be able to read
// them from its checkout).
func TestUnreadableNotReferenced(t *testing.T) {
	body := random(7, 100_000)
	e := reg("secret", body)
	e.mode = 0o600
	old := mkTar(t, e)
	st, delta := roundTrip(t, old, mkTar(t, reg("other", body)), tardiff.Options{})
	if st.FilesReused != 0 || bytes.Contains(delta, []byte("secret")) {
		t.Errorf("an unreadable file was referenced: %+v", st)
	}
}

// deltaOf encodes ops into a delta by hand (for malformed cases).
func deltaOf(t *testing.T, ops ...any) []byte {
	t.Helper()
	var b bytes.Buffer
	b.Write(tardiff.Header)
	zw, _ := zstd.NewWriter(&b)
	for i := 0; i < len(ops); i += 3 {
		op, size := ops[i].(int), ops[i+1].(int)
		zw.Write([]byte{byte(op)})
		zw.Write(binary.AppendUvarint(nil, uint64(size)))
		if d, _ := ops[i+2].([]byte); d != nil {
			zw.Write(d)
		}
	}
	zw.Close()
	return b.Bytes()
}

func TestApplyRejects(t *testing.T) {
	old := mkTar(t, reg("a", []byte("0123456789")), reg("dir/b", []byte("abc")))
	good := deltaOf(t, 1, 1, []byte("a"), 2, 10, nil)
	if got := apply(t, good, old); string(got) != "0123456789" {
		t.Fatalf("a hand-made delta gives %q", got)
	}
	cases := map[string][]byte{
		"empty":              nil,
		"bad header":         append([]byte("tardf2\n\x00"), good[8:]...),
		"not zstd":           append(bytes.Clone(tardiff.Header), "garbage"...),
		"truncated stream":   good[:len(good)-3],
		"trailing garbage":   append(bytes.Clone(good), "junk"...),
		"unknown op":         deltaOf(t, 9, 0, nil),
		"copy without open":  deltaOf(t, 2, 1, nil),
		"copy past the end":  deltaOf(t, 1, 1, []byte("a"), 2, 11, nil),
		"seek past the end":  deltaOf(t, 1, 1, []byte("a"), 4, 11, nil),
		"add past the end":   deltaOf(t, 1, 1, []byte("a"), 3, 11, make([]byte, 11)),
		"missing file":       deltaOf(t, 1, 1, []byte("c"), 2, 1, nil),
		"escaping path":      deltaOf(t, 1, 4, []byte("../a"), 2, 1, nil),
		"absolute path":      deltaOf(t, 1, 2, []byte("/a"), 2, 1, nil),
		"dot path":           deltaOf(t, 1, 7, []byte("dir/./b"), 2, 1, nil),
		"empty path":         deltaOf(t, 1, 0, nil),
		"NUL in path":        deltaOf(t, 1, 3, []byte("a\x00b"), 2, 1, nil),
		"huge path":          deltaOf(t, 1, 5000, make([]byte, 5000)),
		"data cut short":     deltaOf(t, 0, 100, []byte("only this")),
		"size varint cut":    deltaOf(t, 0, 0, nil)[:0],
		"huge data size":     deltaOf(t, 0, 1<<40, []byte("x")),
		"directory as file":  deltaOf(t, 1, 3, []byte("dir"), 2, 1, nil),
		"size without op":    append(bytes.Clone(tardiff.Header), mustZstd(t, []byte{0, 0x80})...),
		"op with no size":    append(bytes.Clone(tardiff.Header), mustZstd(t, []byte{2})...),
		"add data cut short": deltaOf(t, 1, 1, []byte("a"), 3, 5, []byte("ab")),
	}
	for name, d := range cases {
		t.Run(name, func(t *testing.T) {
			src, err := tardiff.TarSource(t.Context(), bytes.NewReader(old), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			err = tardiff.Apply(t.Context(), bytes.NewReader(d), src, io.Discard)
			if err == nil {
				t.Fatal("Apply accepted it")
			}
			t.Logf("%v", err)
		})
	}
}

func mustZstd(t *testing.T, b []byte) []byte {
	var out bytes.Buffer
	zw, _ := zstd.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

// TestCancel: a cancelled context stops both.
func TestCancel(t *testing.T) {
	old := mkTar(t, reg("a", random(8, 1<<20)))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := tardiff.Diff(ctx, bytes.NewReader(old), bytes.NewReader(old), io.Discard, tardiff.Options{TempDir: t.TempDir()})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Diff with a cancelled context: %v", err)
	}
}

// TestBadTars: tars that do not parse are errors, not empty deltas.
func TestBadTars(t *testing.T) {
	good := mkTar(t, reg("a", []byte("x")))
	for name, pair := range map[string][2][]byte{
		"old not a tar": {[]byte(strings.Repeat("not a tar ", 100)), good},
		"new not a tar": {good, []byte(strings.Repeat("not a tar ", 100))},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tardiff.Diff(t.Context(), bytes.NewReader(pair[0]), bytes.NewReader(pair[1]), io.Discard, tardiff.Options{TempDir: t.TempDir()})
			if err == nil {
				t.Error("no error")
			}
		})
	}
}

func FuzzApply(f *testing.F) {
	f.Add(deltaOf(&testing.T{}, 1, 1, []byte("a"), 2, 10, nil))
	f.Add(deltaOf(&testing.T{}, 0, 3, []byte("abc"), 1, 5, []byte("dir/b"), 4, 1, nil, 3, 2, []byte{1, 2}))
	old := mkTar(f, reg("a", []byte("0123456789")), reg("dir/b", []byte("abc")))
	f.Fuzz(func(t *testing.T, delta []byte) {
		src, err := tardiff.TarSource(context.Background(), bytes.NewReader(old), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		var out bytes.Buffer
		lim := &limitWriter{w: &out, n: 1 << 20}
		_ = tardiff.Apply(context.Background(), bytes.NewReader(delta), src, lim)
	})
}

// FuzzRoundTrip: any pair of small trees round-trips.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello world"), []byte("hello there world"), uint8(0))
	f.Add(random(1, 500), random(1, 600), uint8(3))
	f.Fuzz(func(t *testing.T, a, b []byte, k uint8) {
		names := []string{"x", "dir/y", "./z", "x"}
		old := mkTar(t, reg(names[k%4], a), reg("keep", b))
		new := mkTar(t, reg("keep", a), reg(names[(k+1)%4], b), reg("more", append(a, b...)))
		roundTrip(t, old, new, tardiff.Options{})
	})
}

type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, errors.New("too much output")
	}
	l.n -= len(p)
	return l.w.Write(p)
}

// TestApplyRefusesHugeWindow: a delta whose zstd frame asks for a window
// over the applier's bound (its memory) is refused before any output.
func TestApplyRefusesHugeWindow(t *testing.T) {
	// A zstd frame by hand (RFC 8878): magic, a descriptor with no
	// content size and not single-segment, a window descriptor of 2^27
	// bytes (exponent 17), then one raw last block holding the op
	// Data(5) "hello".
	ops := append([]byte{0, 5}, "hello"...)
	var b bytes.Buffer
	b.Write(tardiff.Header)
	b.Write([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 17 << 3})
	bh := uint32(len(ops))<<3 | 1 // raw, last
	b.Write([]byte{byte(bh), byte(bh >> 8), byte(bh >> 16)})
	b.Write(ops)
	old := mkTar(t, reg("a", []byte("x")))
	src, err := tardiff.TarSource(t.Context(), bytes.NewReader(old), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var out bytes.Buffer
	if err := tardiff.Apply(t.Context(), &b, src, &out); err == nil || !errors.Is(err, tardiff.ErrInvalid) {
		t.Errorf("Apply with a 128 MiB window: %v (output %q)", err, out.String())
	}
}

// TestCollidingChecksumsBounded: data crafted so the weak checksum matches
// at nearly every position (the old file is every rotation of a block; the
// new file repeats the block changed without changing either sum) costs a
// bounded number of false hits, and the delta still rebuilds the file.
func TestCollidingChecksumsBounded(t *testing.T) {
	x := random(13, 64)
	var old []byte
	for r := range 64 {
		old = append(old, x[r:]...)
		old = append(old, x[:r]...)
	}
	y := bytes.Clone(x)
	y[10]++
	y[11]--
	y[40]--
	y[41]++
	newFile := bytes.Repeat(y, (1<<20)/64)
	st, _ := roundTrip(t, mkTar(t, reg("f", old)), mkTar(t, reg("f", newFile)), tardiff.Options{})
	if limit := max(int64(4096), int64(len(newFile))/64); st.FalseHits > limit+1 {
		t.Errorf("%d false hits for a %d-byte file, want at most %d", st.FalseHits, len(newFile), limit)
	}
	t.Logf("%d false hits", st.FalseHits)
}
