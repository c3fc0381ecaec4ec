package etag

import "testing"

func TestNoneMatch(t *testing.T) {
	const tag = `"sha256:abc"`
	for _, tc := range []struct {
		header string
		exists bool
		want   bool
	}{
		{"", true, false},
		{tag, true, true},
		{`W/` + tag, true, true},
		{`"other", ` + tag, true, true},
		{`"other",` + tag + `,"third"`, true, true},
		{`"other"`, true, false},
		{`"sha256:ab"`, true, false},
		{tag + `x`, true, false},
		{"*", true, true},
		{"*", false, false},
		{`"other", *`, true, true},
		{`"other", *`, false, false},
		{tag, false, true}, // names the bytes the client holds
	} {
		if got := NoneMatch(tc.header, tag, tc.exists); got != tc.want {
			t.Errorf("NoneMatch(%q, exists %v) = %v, want %v", tc.header, tc.exists, got, tc.want)
		}
	}
}
