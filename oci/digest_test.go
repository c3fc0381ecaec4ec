package oci

import (
	"errors"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
)

type digestCase struct {
	name    string
	in      string
	wantErr error // nil, ErrDigestInvalid or ErrUnsupported
}

func digestCases() []digestCase {
	hex64 := strings.Repeat("0123456789abcdef", 4)
	hex128 := hex64 + hex64
	return []digestCase{
		{"sha256", "sha256:" + hex64, nil},
		{"sha256 empty blob", "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", nil},
		{"sha512", "sha512:" + hex128, nil},

		{"empty", "", ErrDigestInvalid},
		{"no colon", hex64, ErrDigestInvalid},
		{"no algorithm", ":" + hex64, ErrDigestInvalid},
		{"no encoded", "sha256:", ErrDigestInvalid},
		{"sha256 uppercase hex", "sha256:" + strings.ToUpper(hex64), ErrDigestInvalid},
		{"sha256 uppercase algorithm", "SHA256:" + hex64, ErrDigestInvalid},
		{"sha256 short", "sha256:" + hex64[:63], ErrDigestInvalid},
		{"sha256 long", "sha256:" + hex64 + "0", ErrDigestInvalid},
		{"sha256 with sha512 length", "sha256:" + hex128, ErrDigestInvalid},
		{"sha512 with sha256 length", "sha512:" + hex64, ErrDigestInvalid},
		{"sha256 non-hex", "sha256:" + strings.Repeat("g", 64), ErrDigestInvalid},
		{"sha256 base64 chars", "sha256:" + strings.Repeat("A=", 32), ErrDigestInvalid},
		{"double colon", "sha256::" + hex64, ErrDigestInvalid},
		{"trailing newline", "sha256:" + hex64 + "\n", ErrDigestInvalid},
		{"leading space", " sha256:" + hex64, ErrDigestInvalid},
		{"path traversal", "sha256:../../../etc/passwd", ErrDigestInvalid},
		{"path traversal in algorithm", "../sha256:" + hex64, ErrDigestInvalid},
		{"slash in encoded", "sha256:" + hex64[:32] + "/" + hex64[33:], ErrDigestInvalid},
		{"backslash", `sha256:..\..\x`, ErrDigestInvalid},
		{"nul", "sha256:" + hex64[:63] + "\x00", ErrDigestInvalid},
		{"algorithm trailing separator", "sha256+:" + hex64, ErrDigestInvalid},

		{"sha384", "sha384:" + strings.Repeat("a", 96), ErrUnsupported},
		{"sha1", "sha1:" + strings.Repeat("a", 40), ErrUnsupported},
		{"unregistered algorithm", "blake3:" + hex64, ErrUnsupported},
		{"algorithm with separator", "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", ErrUnsupported},
		{"unsupported with traversal-free odd encoding", "x:A=_-", ErrUnsupported},
	}
}

func TestParseDigest(t *testing.T) {
	for _, tc := range digestCases() {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseDigest(tc.in)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("ParseDigest(%q) = %v", tc.in, err)
				}
				if d != digest.Digest(tc.in) {
					t.Fatalf("ParseDigest(%q) = %q, want input back", tc.in, d)
				}
				if err := d.Validate(); err != nil {
					t.Fatalf("go-digest rejects accepted digest %q: %v", d, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseDigest(%q) = %q, nil; want %v", tc.in, d, tc.wantErr)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ParseDigest(%q) = %v; want it to wrap %v", tc.in, err, tc.wantErr)
			}
			other := ErrUnsupported
			if tc.wantErr == ErrUnsupported {
				other = ErrDigestInvalid
			}
			if errors.Is(err, other) {
				t.Fatalf("ParseDigest(%q) = %v; must not also wrap %v", tc.in, err, other)
			}
			if d != "" {
				t.Fatalf("ParseDigest(%q) returned %q with an error", tc.in, d)
			}
		})
	}
}

func TestParseDigestErrorIsBounded(t *testing.T) {
	_, err := ParseDigest("sha256:" + strings.Repeat("x", 1<<20))
	if err == nil {
		t.Fatal("want error")
	}
	if n := len(err.Error()); n > 300 {
		t.Fatalf("error message is %d bytes; it must not echo the whole input", n)
	}
}

func TestIsDigestRef(t *testing.T) {
	tests := []struct {
		ref  string
		want bool
	}{
		{"latest", false},
		{"v1.0", false},
		{"", false},
		{"sha256:abc", true},
		{"sha256:" + strings.Repeat("a", 64), true},
		{"foo:bar", true},
		{":", true},
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			if got := IsDigestRef(tc.ref); got != tc.want {
				t.Fatalf("IsDigestRef(%q) = %v, want %v", tc.ref, got, tc.want)
			}
		})
	}
}
