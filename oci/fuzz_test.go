package oci

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// The spec's grammars, as regular expressions, are the oracle the hand-written
// validators are fuzzed against.
var (
	nameRegexp   = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRegexp    = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	digestSyntax = regexp.MustCompile(`^[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`)
	digestOK     = regexp.MustCompile(`^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$`)
)

func FuzzParseManifest(f *testing.F) {
	for _, tc := range manifestCases() {
		f.Add(tc.contentType, []byte(tc.body))
	}
	f.Add(MediaTypeDockerManifest, []byte(dockerManifest))
	f.Add(MediaTypeDockerManifestList, []byte(dockerManifestList))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		m, err := ParseManifest(contentType, body)
		if err != nil {
			if m != nil {
				t.Fatal("manifest returned with an error")
			}
			if !errors.Is(err, ErrManifestInvalid) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %q wraps neither ErrManifestInvalid nor ErrUnsupported", err)
			}
			return
		}
		checkInvariants(t, m)
	})
}

func FuzzValidateName(f *testing.F) {
	for _, tc := range nameCases() {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateName(name)
		want := len(name) <= MaxNameLength && nameRegexp.MatchString(name)
		if (err == nil) != want {
			t.Fatalf("ValidateName(%q) = %v; grammar says valid=%v", name, err, want)
		}
		if err != nil && !errors.Is(err, ErrNameInvalid) {
			t.Fatalf("ValidateName(%q) = %v, not ErrNameInvalid", name, err)
		}
		if err == nil && (strings.Contains(name, "..") || strings.Contains(name, "//")) {
			t.Fatalf("ValidateName(%q) accepted a path-unsafe name", name)
		}
	})
}

func FuzzValidateTag(f *testing.F) {
	for _, tc := range tagCases() {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, tag string) {
		err := ValidateTag(tag)
		if want := tagRegexp.MatchString(tag); (err == nil) != want {
			t.Fatalf("ValidateTag(%q) = %v; grammar says valid=%v", tag, err, want)
		}
		if err != nil && !errors.Is(err, ErrTagInvalid) {
			t.Fatalf("ValidateTag(%q) = %v, not ErrTagInvalid", tag, err)
		}
	})
}

func FuzzParseDigest(f *testing.F) {
	for _, tc := range digestCases() {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDigest(s)
		switch {
		case err == nil:
			if !digestOK.MatchString(s) || string(d) != s {
				t.Fatalf("ParseDigest(%q) accepted %q", s, d)
			}
		case digestOK.MatchString(s):
			t.Fatalf("ParseDigest(%q) = %v; want it accepted", s, err)
		case errors.Is(err, ErrUnsupported):
			alg, _, _ := strings.Cut(s, ":")
			if !digestSyntax.MatchString(s) || alg == "sha256" || alg == "sha512" || errors.Is(err, ErrDigestInvalid) {
				t.Fatalf("ParseDigest(%q) = %v; want ErrDigestInvalid", s, err)
			}
		case errors.Is(err, ErrDigestInvalid):
			alg, _, _ := strings.Cut(s, ":")
			if digestSyntax.MatchString(s) && alg != "sha256" && alg != "sha512" {
				t.Fatalf("ParseDigest(%q) = %v; want ErrUnsupported", s, err)
			}
		default:
			t.Fatalf("ParseDigest(%q) = %v; wraps no sentinel", s, err)
		}
		if IsDigestRef(s) != strings.Contains(s, ":") {
			t.Fatalf("IsDigestRef(%q) disagrees", s)
		}
	})
}

func FuzzParseImageConfig(f *testing.F) {
	f.Add([]byte(`{"created":"2024-05-06T07:08:09Z","architecture":"arm64","variant":"v8","os":"linux","config":{"Labels":{"a":"b"}}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"config":null,"created":"x"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := ParseImageConfig(body); err != nil && !errors.Is(err, ErrManifestInvalid) {
			t.Fatalf("error %q does not wrap ErrManifestInvalid", err)
		}
	})
}
