package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// MaxConfigBytes is the largest image config Berth reads (for its
// labels, platform, history or DiffIDs): the registry's default, the
// catalogue's and the delta worker's, in one place. Real configs are a
// few KiB; Flatpak ones with an icon and metadata labels rarely pass
// 100 KiB.
const MaxConfigBytes = 8 << 20

// ImageConfig holds the facts a registry records from an image config blob.
type ImageConfig struct {
	OS, Architecture, Variant string
	Labels                    map[string]string // config.Labels; nil if none
	Created                   time.Time         // zero if absent or not RFC 3339
}

// maxConfigDepth bounds the nesting of arrays and objects in an image
// config: far more than any real config holds, and it keeps the strict
// decoder's work proportional to the input.
const maxConfigDepth = 256

// ParseImageConfig reads an OCI (image-spec config.md) or Docker image
// config strictly, as the Flatpak client reads it:
//
//   - keys match exactly: "os", "architecture", "variant", "created",
//     "config" and, inside it, "Labels" (Go's encoding/json would also
//     take "OS" or "labels", which flatpak ignores, so the registry could
//     record, and its Flatpak index show, other labels than the client
//     installs);
//   - a key repeated in any object, anywhere in the document (after JSON
//     escapes are decoded), makes the config invalid: which of the values
//     a reader takes is up to the reader, so there is no one meaning to
//     record;
//   - os, architecture, variant and created are strings or null,
//     config an object or null, Labels an object of strings or null;
//   - the body is one JSON object with nothing after it but white space,
//     nested at most 256 deep.
//
// Unknown fields are ignored (but checked for repeated keys). Every error
// wraps ErrManifestInvalid. A created time that is not RFC 3339 is left
// zero rather than failing: it is a fact to display, not to enforce.
//
// The registry's contract (package registry, readConfig) is unchanged: a
// config this refuses is stored, but without its facts, so no labels,
// platform or created time are recorded for it and the Flatpak index and
// the catalogue see an image without labels (not a Flatpak image).
//
// Use it only on blobs whose media type is an image config type, and read
// at most a bounded size into body.
func ParseImageConfig(body []byte) (ImageConfig, error) {
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return ImageConfig{}, invalid("image config is not a JSON object")
	}
	p := &configParser{dec: json.NewDecoder(bytes.NewReader(body))}
	p.dec.UseNumber() // numbers are skipped, never converted
	var (
		c       ImageConfig
		created *string
	)
	if _, err := p.dec.Token(); err != nil { // the '{' checked above
		return ImageConfig{}, p.fail(err)
	}
	err := p.object(1, func(key string) error {
		switch key {
		case "os":
			return p.optString(&c.OS)
		case "architecture":
			return p.optString(&c.Architecture)
		case "variant":
			return p.optString(&c.Variant)
		case "created":
			var s string
			isNull, err := p.optStringNull(&s)
			if err == nil && !isNull {
				created = &s
			}
			return err
		case "config":
			return p.configObject(&c)
		}
		return p.skip(1)
	})
	if err != nil {
		return ImageConfig{}, p.fail(err)
	}
	if _, err := p.dec.Token(); err != io.EOF {
		return ImageConfig{}, invalid("image config: data after the JSON object")
	}
	if len(c.Labels) == 0 {
		c.Labels = nil
	}
	if created != nil {
		if t, err := time.Parse(time.RFC3339Nano, *created); err == nil {
			c.Created = t
		}
	}
	return c, nil
}

// configParser walks an image config token by token.
type configParser struct {
	dec *json.Decoder
}

// errConfig is a structural error found by the walk (as opposed to the
// decoder's syntax errors).
type errConfig struct{ msg string }

func (e *errConfig) Error() string { return e.msg }

func configErr(format string, args ...any) error {
	return &errConfig{msg: fmt.Sprintf(format, args...)}
}

// fail turns a walk error into the one ParseImageConfig returns.
func (p *configParser) fail(err error) error {
	var ce *errConfig
	if errors.As(err, &ce) {
		return invalid("image config: " + ce.msg)
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return invalid("image config: unexpected end of JSON")
	}
	return invalid("image config: " + jsonError(err))
}

// object reads the members of an object whose '{' has been read, up to
// its '}', calling member for each key; member must consume the value.
// A key seen twice is an error.
func (p *configParser) object(depth int, member func(key string) error) error {
	if depth > maxConfigDepth {
		return configErr("nested deeper than %d", maxConfigDepth)
	}
	seen := map[string]struct{}{}
	for {
		tok, err := p.dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok && d == '}' {
			return nil
		}
		key, ok := tok.(string)
		if !ok {
			return configErr("object key is not a string")
		}
		if _, dup := seen[key]; dup {
			return configErr("key %q appears twice in one object", key)
		}
		seen[key] = struct{}{}
		if err := member(key); err != nil {
			return err
		}
	}
}

// skip reads one value of any kind, checking the objects in it for
// repeated keys.
func (p *configParser) skip(depth int) error {
	tok, err := p.dec.Token()
	if err != nil {
		return err
	}
	return p.skipFrom(tok, depth)
}

func (p *configParser) skipFrom(tok json.Token, depth int) error {
	d, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar
	}
	switch d {
	case '{':
		return p.object(depth+1, func(string) error { return p.skip(depth + 1) })
	case '[':
		if depth+1 > maxConfigDepth {
			return configErr("nested deeper than %d", maxConfigDepth)
		}
		for {
			tok, err := p.dec.Token()
			if err != nil {
				return err
			}
			if d, ok := tok.(json.Delim); ok && d == ']' {
				return nil
			}
			if err := p.skipFrom(tok, depth+1); err != nil {
				return err
			}
		}
	}
	return configErr("unexpected %q", string(d))
}

// optString reads a string or null (which leaves *dst alone).
func (p *configParser) optString(dst *string) error {
	_, err := p.optStringNull(dst)
	return err
}

func (p *configParser) optStringNull(dst *string) (isNull bool, err error) {
	tok, err := p.dec.Token()
	if err != nil {
		return false, err
	}
	switch v := tok.(type) {
	case nil:
		return true, nil
	case string:
		*dst = v
		return false, nil
	}
	return false, configErr("expected a string, found %s", tokenKind(tok))
}

// configObject reads the "config" member: an object or null, whose
// "Labels" member (exact case) is an object of strings or null.
func (p *configParser) configObject(c *ImageConfig) error {
	tok, err := p.dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return configErr("config: expected an object, found %s", tokenKind(tok))
	}
	return p.object(2, func(key string) error {
		if key != "Labels" {
			return p.skip(2)
		}
		tok, err := p.dec.Token()
		if err != nil {
			return err
		}
		if tok == nil {
			return nil
		}
		if d, ok := tok.(json.Delim); !ok || d != '{' {
			return configErr("config.Labels: expected an object, found %s", tokenKind(tok))
		}
		labels := map[string]string{}
		err = p.object(3, func(key string) error {
			tok, err := p.dec.Token()
			if err != nil {
				return err
			}
			v, ok := tok.(string)
			if !ok {
				return configErr("config.Labels[%q]: expected a string, found %s", key, tokenKind(tok))
			}
			labels[key] = v
			return nil
		})
		c.Labels = labels
		return err
	})
}

func tokenKind(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		if v == '[' {
			return "an array"
		}
	}
	return fmt.Sprintf("%v", tok)
}

// PlatformString formats p as "os/architecture", with "/variant" appended
// when set. It returns "" for nil or a platform naming neither os nor
// architecture.
func PlatformString(p *v1.Platform) string {
	if p == nil || p.OS == "" && p.Architecture == "" {
		return ""
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}
