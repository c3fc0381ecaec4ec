package fsck

// Run with
//
//	go test -run '^$' -bench . ./fsck
//
// BenchmarkCheck reports fsck's verification throughput in MB/s over 64
// blobs of 1 MiB; BenchmarkSHA256 is the machine's sha256 limit to compare
// it with.

import (
	"crypto/sha256"
	"fmt"
	"testing"
)

func BenchmarkCheck(b *testing.B) {
	s := newStores(b)
	const n, size = 64, 1 << 20
	buf := make([]byte, size)
	for i := range n {
		copy(buf, fmt.Sprintf("blob %d", i))
		s.push("app", buf, true)
	}
	c := New(s.meta, s.blobs, nil)
	b.SetBytes(n * size)
	b.ResetTimer()
	for range b.N {
		r, err := c.Check(b.Context(), Options{})
		if err != nil || len(r.Problems) != 0 {
			b.Fatal(err, r.Problems)
		}
	}
}

func BenchmarkSHA256(b *testing.B) {
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	for range b.N {
		sha256.Sum256(buf)
	}
}
