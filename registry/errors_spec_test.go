package registry

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestErrorCodesMatchSpec checks the error table against the spec's list
// (testdata/spec-error-codes.md): every spec code is there with the spec's
// message and status, and the only code beyond the list is the documented
// extension RANGE_INVALID.
func TestErrorCodesMatchSpec(t *testing.T) {
	b, err := os.ReadFile("testdata/spec-error-codes.md")
	if err != nil {
		t.Fatal(err)
	}
	spec := map[Code]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 6 || !strings.HasPrefix(strings.TrimSpace(f[1]), "code-") {
			continue
		}
		code := Code(strings.Trim(strings.TrimSpace(f[2]), "`"))
		msg := strings.TrimSpace(f[3])
		status, err := strconv.Atoi(strings.TrimSpace(f[4]))
		if err != nil {
			t.Fatalf("status of %s: %v", code, err)
		}
		spec[code] = true
		got, ok := codes[code]
		switch {
		case !ok:
			t.Errorf("spec code %s is missing from the table", code)
		case got.message != msg:
			t.Errorf("%s: message %q, spec says %q", code, got.message, msg)
		case got.status != status:
			t.Errorf("%s: status %d, spec says %d", code, got.status, status)
		}
	}
	if len(spec) != 14 {
		t.Fatalf("read %d spec codes, want 14", len(spec))
	}
	for code := range codes {
		if !spec[code] && code != CodeRangeInvalid {
			t.Errorf("code %s is neither in the spec's list nor a documented extension", code)
		}
	}
}
