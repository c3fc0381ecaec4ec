package registry

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// byteRange is an inclusive range of bytes.
type byteRange struct{ start, end int64 }

// parseContentRange parses the Content-Range of a chunk PATCH: the spec's
// "<start>-<end>" (inclusive), also accepted with a "bytes " prefix and a
// "/<total>" suffix as some clients send it.
func parseContentRange(s string) (byteRange, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "bytes ")
	s = strings.TrimPrefix(s, "bytes=")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	first, last, ok := strings.Cut(s, "-")
	if !ok {
		return byteRange{}, fmt.Errorf("Content-Range %q: want <start>-<end>", s)
	}
	a, err1 := parseUint(first)
	b, err2 := parseUint(last)
	if err1 != nil || err2 != nil || b < a {
		return byteRange{}, fmt.Errorf("Content-Range %q: want <start>-<end> with start <= end", s)
	}
	if b == math.MaxInt64 {
		// Its length, end-start+1, would overflow to a negative number,
		// which the PATCH's size checks read as "not given".
		return byteRange{}, fmt.Errorf("Content-Range %q: end out of range", s)
	}
	return byteRange{a, b}, nil
}

// parseUint parses a non-empty string of ASCII digits that fits in int64.
func parseUint(s string) (int64, error) {
	if s == "" || len(s) > 19 {
		return 0, fmt.Errorf("number %q out of range", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("number %q is not decimal", s)
		}
	}
	return strconv.ParseInt(s, 10, 64)
}
