package registry

import (
	"fmt"
	"strconv"
	"strings"
)

// byteRange is an inclusive range of bytes.
type byteRange struct{ start, end int64 }

// maxRanges bounds the ranges one Range header may ask for.
const maxRanges = 16

// parseRange checks an HTTP Range header (RFC 9110 §14.2) against a blob of
// size bytes and returns the satisfiable ranges. A malformed header, or one
// none of whose ranges is satisfiable, is an error; the caller answers 416.
// Unsatisfiable ranges beside satisfiable ones are dropped, as
// http.ServeContent does.
func parseRange(s string, size int64) ([]byteRange, error) {
	spec, ok := strings.CutPrefix(s, "bytes=")
	if !ok {
		return nil, fmt.Errorf("%w: unit is not bytes", errRange)
	}
	parts := strings.Split(spec, ",")
	if len(parts) > maxRanges {
		return nil, fmt.Errorf("%w: more than %d ranges", errRange, maxRanges)
	}
	out := make([]byteRange, 0, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		first, last, ok := strings.Cut(p, "-")
		if !ok {
			return nil, fmt.Errorf("%w: %q has no '-'", errRange, p)
		}
		var br byteRange
		switch {
		case first == "":
			n, err := parseUint(last)
			if err != nil || n == 0 {
				return nil, fmt.Errorf("%w: bad suffix length %q", errRange, last)
			}
			if size == 0 {
				continue // nothing to take the suffix of
			}
			br = byteRange{max(size-n, 0), size - 1}
		default:
			a, err := parseUint(first)
			if err != nil {
				return nil, fmt.Errorf("%w: bad start %q", errRange, first)
			}
			b := size - 1
			if last != "" {
				if b, err = parseUint(last); err != nil || b < a {
					return nil, fmt.Errorf("%w: bad end %q", errRange, last)
				}
			}
			if a >= size {
				continue // unsatisfiable: starts beyond the end
			}
			br = byteRange{a, min(b, size-1)}
		}
		out = append(out, br)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no range within the %d bytes", errRange, size)
	}
	return out, nil
}

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
