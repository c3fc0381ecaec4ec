package oci

import (
	"bytes"
	"encoding/json"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImageConfig holds the facts a registry records from an image config blob.
type ImageConfig struct {
	OS, Architecture, Variant string
	Labels                    map[string]string // config.Labels; nil if none
	Created                   time.Time         // zero if absent or not RFC 3339
}

// configJSON is the part of an OCI (image-spec config.md) or Docker image
// config that ImageConfig records.
type configJSON struct {
	Created      *string `json:"created"`
	OS           string  `json:"os"`
	Architecture string  `json:"architecture"`
	Variant      string  `json:"variant"`
	Config       *struct {
		Labels map[string]string `json:"Labels"`
	} `json:"config"`
}

// ParseImageConfig reads an OCI or Docker image config. Unknown fields are
// ignored. A body that is not a JSON object, or whose os, architecture,
// variant, created or config.Labels have the wrong JSON type, gives an error
// wrapping ErrManifestInvalid. A created time that is not RFC 3339 is left
// zero rather than failing: it is a fact to display, not to enforce.
//
// Use it only on blobs whose media type is an image config type, and read at
// most a bounded size into body.
func ParseImageConfig(body []byte) (ImageConfig, error) {
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return ImageConfig{}, invalid("image config is not a JSON object")
	}
	var cj configJSON
	if err := json.Unmarshal(body, &cj); err != nil {
		return ImageConfig{}, invalid("image config: " + jsonError(err))
	}
	c := ImageConfig{OS: cj.OS, Architecture: cj.Architecture, Variant: cj.Variant}
	if cj.Config != nil && len(cj.Config.Labels) > 0 {
		c.Labels = cj.Config.Labels
	}
	if cj.Created != nil {
		if t, err := time.Parse(time.RFC3339Nano, *cj.Created); err == nil {
			c.Created = t
		}
	}
	return c, nil
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
