package flatpak

import (
	"bytes"
	"compress/gzip"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"testing"
)

func TestCRC32Combine(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range [][2]int{{0, 0}, {0, 5}, {5, 0}, {1, 1}, {3, 1000}, {70000, 3}, {1 << 20, 12345}} {
		a, b := make([]byte, n[0]), make([]byte, n[1])
		for i := range a {
			a[i] = byte(rng.Uint32())
		}
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		want := crc32.ChecksumIEEE(append(append([]byte{}, a...), b...))
		if got := crc32Combine(crc32.ChecksumIEEE(a), crc32.ChecksumIEEE(b), int64(len(b))); got != want {
			t.Errorf("combine of %d and %d bytes = %08x, want %08x", n[0], n[1], got, want)
		}
	}
}

// checkAssembled: the groups, compressed apart and joined, are one gzip
// member holding their concatenation (compress/gzip checks the CRC-32 and
// the length), and equal contents give equal ETags.
func checkAssembled(t *testing.T, parts [][]byte) {
	t.Helper()
	groups := make([]*gzGroup, len(parts))
	for i, p := range parts {
		groups[i] = compressGroup(string(rune('a'+i%26)), p)
	}
	gz, size, etag, placed := assembleGzip(groups)
	want := bytes.Join(parts, nil)
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	zr.Multistream(false)
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("decoding: %v", err)
	}
	if !bytes.Equal(got, want) || size != int64(len(want)) {
		t.Fatalf("decoded %d bytes (size %d), want %d", len(got), size, len(want))
	}
	if rest, _ := io.ReadAll(bytes.NewReader(gz[len(gz)-8:])); len(rest) != 8 {
		t.Fatal("no trailer")
	}
	// Reassembled from the placed groups (as a refresh does): the same.
	gz2, _, etag2, _ := assembleGzip(placed)
	if !bytes.Equal(gz, gz2) || etag != etag2 {
		t.Fatal("reassembling the placed groups changed the body")
	}
}

func TestAssembleGzip(t *testing.T) {
	checkAssembled(t, [][]byte{[]byte(`{"Registry":"/","Results":[`), []byte(`]}` + "\n")})
	checkAssembled(t, [][]byte{{}, []byte("x"), {}, bytes.Repeat([]byte("abc"), 100000), []byte("tail")})
}

func FuzzAssembleGzip(f *testing.F) {
	f.Add([]byte("hello, world"), uint8(3))
	f.Add(bytes.Repeat([]byte{0}, 70000), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, cuts uint8) {
		// Cut data into up to cuts+1 parts at positions drawn from it.
		var parts [][]byte
		rest := data
		for i := 0; i < int(cuts)%16 && len(rest) > 0; i++ {
			n := int(rest[0]) % (len(rest) + 1)
			parts = append(parts, rest[:n])
			rest = rest[n:]
		}
		parts = append(parts, rest)
		checkAssembled(t, parts)
	})
}
