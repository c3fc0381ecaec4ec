package flatpak

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"sync"
)

// An index answer's gzip body is assembled from groups of repositories,
// each compressed on its own: a group is deflate blocks ending in a sync
// flush (byte-aligned, referring to nothing before the group), so groups
// concatenate into one valid deflate stream, closed by an empty final
// block; the gzip trailer's CRC-32 is combined from the groups' own
// (crc32Combine). When an app's tag moves, the answer is rebuilt by
// re-reading that one repository and recompressing the group holding it,
// not the whole index (docs/design-notes.md, "The Flatpak index under
// churn").
//
// Group boundaries depend only on the answer itself (a repository whose
// name hashes to 0 modulo groupEvery ends a group, and so does reaching
// maxGroupBytes), so equal answers are cut alike, compress alike and
// carry equal ETags however they were built. A group of about 32 apps is at least the deflate window
// (32 KiB), so cutting costs some compression, not much: over the
// benchmark's 1,000 near-identical apps the body is 27% larger than one
// stream's (231 KB, 182 KB), less where apps differ.

const (
	groupEvery    = 32
	maxGroupBytes = 64 << 10
)

// gzGroup is one compressed group, or the answer's head or tail.
type gzGroup struct {
	key string // its repositories' names (and whether it is first)
	z   []byte // deflate blocks, ending in a sync flush
	crc uint32 // CRC-32 of the uncompressed bytes
	n   int64  // uncompressed length
	sum [sha256.Size]byte
}

// endsGroup reports whether a group ends after repository name.
func endsGroup(name string) bool {
	h := fnv.New32a()
	h.Write([]byte(name))
	return h.Sum32()%groupEvery == 0
}

// flateWriters are reused: a compressor's tables are most of a megabyte,
// and a full build compresses one group per about 32 apps.
var flateWriters = sync.Pool{New: func() any {
	zw, _ := flate.NewWriter(nil, flate.DefaultCompression) // the level is valid
	return zw
}}

// compressGroup compresses b as a group.
func compressGroup(key string, b []byte) *gzGroup {
	var z bytes.Buffer
	zw := flateWriters.Get().(*flate.Writer)
	zw.Reset(&z)
	_, _ = zw.Write(b) // a bytes.Buffer does not fail
	_ = zw.Flush()
	zw.Reset(nil)
	flateWriters.Put(zw)
	return &gzGroup{key: key, z: z.Bytes(), crc: crc32.ChecksumIEEE(b), n: int64(len(b)), sum: sha256.Sum256(b)}
}

// gzHeader is the gzip member header (RFC 1952): deflate, no flags, no
// time, default level, unknown OS (as compress/gzip writes it).
var gzHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// finalBlock is an empty stored block with BFINAL set, which ends a
// deflate stream left byte-aligned by a sync flush.
var finalBlock = []byte{0x01, 0x00, 0x00, 0xff, 0xff}

// assembleGzip joins groups into one gzip member, and returns it, the
// uncompressed length, the strong ETag (a fingerprint of the groups'
// contents, so of the body) and the groups re-pointed into the new body.
func assembleGzip(groups []*gzGroup) (gz []byte, size int64, etag string, out []*gzGroup) {
	total := len(gzHeader) + len(finalBlock) + 8
	for _, g := range groups {
		total += len(g.z)
	}
	gz = make([]byte, 0, total)
	gz = append(gz, gzHeader...)
	var crc uint32
	sums := sha256.New()
	out = make([]*gzGroup, len(groups))
	for i, g := range groups {
		start := len(gz)
		gz = append(gz, g.z...)
		ng := *g
		ng.z = gz[start:len(gz):len(gz)]
		out[i] = &ng
		crc = crc32Combine(crc, g.crc, g.n)
		size += g.n
		sums.Write(g.sum[:])
	}
	gz = append(gz, finalBlock...)
	gz = binary.LittleEndian.AppendUint32(gz, crc)
	gz = binary.LittleEndian.AppendUint32(gz, uint32(size)) // ISIZE is the length mod 2^32
	sum := sums.Sum(nil)
	return gz, size, `"` + hex.EncodeToString(sum[:16]) + `"`, out
}

// crc32Combine returns the CRC-32 (IEEE) of A followed by B, given A's,
// B's and B's length. CRC-32 is multiplication by x^32 and reduction
// modulo the polynomial P over GF(2), so appending lenB bytes to A
// multiplies A's CRC by x^(8·lenB) mod P: built from x^(2^k) mod P
// (x2nModP, from a table) with a shift-and-add product (multModP), as
// zlib's crc32_combine does. Bits are reflected, as in hash/crc32.
func crc32Combine(crcA, crcB uint32, lenB int64) uint32 {
	if lenB <= 0 {
		return crcA ^ crcB
	}
	return multModP(x2nModP(lenB, 3), crcA) ^ crcB
}

// crcPoly is the IEEE polynomial, reflected (hash/crc32.IEEE).
const crcPoly = 0xedb88320

// multModP returns a(x)·b(x) mod P(x).
func multModP(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
		}
		if b&1 != 0 {
			b = b>>1 ^ crcPoly
		} else {
			b >>= 1
		}
	}
	return p
}

// x2nTable[k] is x^(2^k) mod P.
var x2nTable = func() (t [32]uint32) {
	p := uint32(1) << 30 // x^1
	for k := range t {
		t[k] = p
		p = multModP(p, p)
	}
	return t
}()

// x2nModP returns x^(n·2^k) mod P.
func x2nModP(n int64, k uint) uint32 {
	p := uint32(1) << 31 // x^0
	for ; n != 0; n >>= 1 {
		if n&1 != 0 {
			p = multModP(x2nTable[k&31], p)
		}
		k++
	}
	return p
}

// groupKey names a group by its members (and whether it comes first,
// which decides its leading comma).
func groupKey(first bool, names []string) string {
	return fmt.Sprintf("%t%q", first, names)
}
