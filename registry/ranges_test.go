package registry

import (
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	const size = 2048
	for _, tc := range []struct {
		in   string
		want []byteRange
		bad  bool
	}{
		{in: "bytes=500-1499", want: []byteRange{{500, 1499}}},
		{in: "bytes=500-", want: []byteRange{{500, 2047}}},
		{in: "bytes=-500", want: []byteRange{{1548, 2047}}},
		{in: "bytes=-5000", want: []byteRange{{0, 2047}}},
		{in: "bytes=2000-5000", want: []byteRange{{2000, 2047}}},
		{in: "bytes=0-0,10-20", want: []byteRange{{0, 0}, {10, 20}}},
		{in: "bytes=0-1,999999-", want: []byteRange{{0, 1}}},
		{in: "bytes=5000-,-0", bad: true},
		{in: "bytes=500-0", bad: true},
		{in: "bytes=5000-10000", bad: true},
		{in: "bytes=2048-", bad: true},
		{in: "bytes=-0", bad: true},
		{in: "bytes=", bad: true},
		{in: "items=0-1", bad: true},
		{in: "bytes=a-b", bad: true},
		{in: "bytes=+1-2", bad: true},
		{in: "bytes=99999999999999999999-", bad: true},
		{in: "bytes=" + strings.Repeat("0-1,", 20) + "0-1", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseRange(tc.in, size)
			if tc.bad {
				if err == nil {
					t.Fatalf("parseRange(%q) = %v, want error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseRange(%q): %v", tc.in, err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("parseRange(%q) = %v, want %v", tc.in, got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("parseRange(%q) = %v, want %v", tc.in, got, tc.want)
				}
			}
		})
	}
	if _, err := parseRange("bytes=-1", 0); err == nil {
		t.Fatal("a suffix range of an empty blob must be unsatisfiable")
	}
}

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want byteRange
		bad  bool
	}{
		{in: "0-1023", want: byteRange{0, 1023}},
		{in: "1024-2047", want: byteRange{1024, 2047}},
		{in: "bytes 0-9/10", want: byteRange{0, 9}},
		{in: "bytes=5-5", want: byteRange{5, 5}},
		{in: "10-9", bad: true},
		{in: "-1-5", bad: true},
		{in: "1-", bad: true},
		{in: "1", bad: true},
		{in: "", bad: true},
		{in: "0x1-0x2", bad: true},
		{in: "1-99999999999999999999", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseContentRange(tc.in)
			if tc.bad != (err != nil) || (!tc.bad && got != tc.want) {
				t.Fatalf("parseContentRange(%q) = %v, %v; want %v (error: %v)", tc.in, got, err, tc.want, tc.bad)
			}
		})
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-1", "bytes=-5", "bytes=3-", "bytes=1-2,3-4", "bytes=", "bytes=9223372036854775807-"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, s string, size int64) {
		if size < 0 {
			size = -size
		}
		rs, err := parseRange(s, size)
		if err != nil {
			return
		}
		for _, r := range rs {
			if r.start < 0 || r.end < r.start || r.end >= size {
				t.Fatalf("parseRange(%q, %d) gave out-of-bounds %v", s, size, r)
			}
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"0-0", "0-1023", "bytes 1-2/3", "5-4", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseContentRange(s)
		if err == nil && (r.start < 0 || r.end < r.start) {
			t.Fatalf("parseContentRange(%q) = %v", s, r)
		}
	})
}
