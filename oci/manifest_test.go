package oci

import (
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	layerGzip      = "application/vnd.oci.image.layer.v1.tar+gzip"
	layerNondist   = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
	dockerLayer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	dockerForeign  = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	emptyJSONData  = "e30=" // base64("{}")
	emptyJSONSHA   = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
	sbomType       = "application/vnd.example.sbom.v1+json"
	schema1        = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	dockerManifest = `{
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": 7023,
        "digest": "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7"
    },
    "layers": [
        {
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 32654,
            "digest": "sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f"
        },
        {
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 16724,
            "digest": "sha256:3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6b"
        },
        {
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 73109,
            "digest": "sha256:ec4b8955958665577945c89419d1af06b5f7636b4ac3da7f12184802ad867736"
        }
    ]
}`
	dockerManifestList = `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
  "manifests": [
    {
      "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
      "digest": "sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f",
      "size": 7143,
      "platform": {
        "architecture": "ppc64le",
        "os": "linux"
      }
    },
    {
      "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
      "digest": "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270",
      "size": 7682,
      "platform": {
        "architecture": "amd64",
        "os": "linux",
        "features": [
          "sse4"
        ]
      }
    }
  ]
}`
)

// obj is a JSON object under construction; tests build documents with it and
// marshal them, so a case changes one field of a known-good document.
type obj = map[string]any

func desc(mediaType, content string) obj {
	return obj{"mediaType": mediaType, "digest": digest.FromString(content).String(), "size": len(content)}
}

func desc512(mediaType, content string) obj {
	sum := sha512.Sum512([]byte(content))
	return obj{"mediaType": mediaType, "digest": "sha512:" + hex.EncodeToString(sum[:]), "size": len(content)}
}

func with(o obj, kv ...any) obj {
	c := make(obj, len(o)+len(kv)/2)
	for k, v := range o {
		c[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == del {
			delete(c, kv[i].(string))
			continue
		}
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

// del, as a value in with, removes the key.
var del = &struct{ _ byte }{}

func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func imageManifest() obj {
	return obj{
		"schemaVersion": 2,
		"mediaType":     MediaTypeImageManifest,
		"config":        desc(MediaTypeImageConfig, "config"),
		"layers":        []any{desc(layerGzip, "layer1"), desc(layerGzip, "layer2")},
	}
}

func imageIndex() obj {
	return obj{
		"schemaVersion": 2,
		"mediaType":     MediaTypeImageIndex,
		"manifests": []any{
			with(desc(MediaTypeImageManifest, "amd64"), "platform", obj{"os": "linux", "architecture": "amd64"}),
			with(desc(MediaTypeImageManifest, "arm64"), "platform", obj{"os": "linux", "architecture": "arm64", "variant": "v8"}),
		},
	}
}

type manifestCase struct {
	name        string
	contentType string
	body        string
	wantErr     error                           // nil, ErrManifestInvalid or ErrUnsupported
	check       func(t *testing.T, m *Manifest) // optional, for accepted documents
}

func manifestCases() []manifestCase {
	cfg := desc(MediaTypeImageConfig, "config")
	l1, l2 := desc(layerGzip, "layer1"), desc(layerGzip, "layer2")
	emptyCfg := obj{"mediaType": MediaTypeEmptyJSON, "digest": emptyJSONSHA, "size": 2, "data": emptyJSONData}
	subject := desc(MediaTypeImageManifest, "subject")
	hex64 := strings.Repeat("a", 64)

	return []manifestCase{
		// Media type resolution.
		{
			name: "oci manifest", contentType: MediaTypeImageManifest, body: js(imageManifest()),
			check: func(t *testing.T, m *Manifest) {
				wantDesc(t, "config", m.Config, cfg)
				if len(m.Layers) != 2 {
					t.Fatalf("layers = %d, want 2", len(m.Layers))
				}
				wantDesc(t, "layers[1]", &m.Layers[1], l2)
				if m.Manifests != nil || m.Subject != nil || m.ArtifactType != "" || m.Annotations != nil {
					t.Fatalf("unexpected fields set: %+v", m)
				}
				if got := len(m.Blobs()); got != 3 {
					t.Fatalf("Blobs() = %d, want 3", got)
				}
				if got := m.External(); len(got) != 0 {
					t.Fatalf("External() = %v, want none", got)
				}
			},
		},
		{name: "oci manifest without mediaType uses Content-Type", contentType: MediaTypeImageManifest, body: js(with(imageManifest(), "mediaType", del)), check: wantMediaType(MediaTypeImageManifest)},
		{name: "Content-Type with parameters", contentType: "application/vnd.oci.image.manifest.v1+json; charset=utf-8", body: js(with(imageManifest(), "mediaType", del)), check: wantMediaType(MediaTypeImageManifest)},
		{name: "Content-Type case insensitive", contentType: "Application/VND.OCI.Image.Manifest.v1+JSON", body: js(imageManifest()), check: wantMediaType(MediaTypeImageManifest)},
		{name: "empty Content-Type uses body mediaType", body: js(imageManifest()), check: wantMediaType(MediaTypeImageManifest)},
		{name: "generic Content-Type uses body mediaType", contentType: "application/octet-stream", body: js(imageManifest()), check: wantMediaType(MediaTypeImageManifest)},
		{name: "oci index without mediaType uses Content-Type", contentType: MediaTypeImageIndex, body: js(with(imageIndex(), "mediaType", del)), check: wantMediaType(MediaTypeImageIndex)},
		{name: "mediaType does not match Content-Type", contentType: MediaTypeImageIndex, body: js(imageManifest()), wantErr: ErrManifestInvalid},
		{name: "docker mediaType under oci Content-Type", contentType: MediaTypeImageManifest, body: dockerManifest, wantErr: ErrManifestInvalid},
		{name: "unknown body mediaType under manifest Content-Type", contentType: MediaTypeImageManifest, body: js(with(imageManifest(), "mediaType", schema1)), wantErr: ErrManifestInvalid},
		{name: "body mediaType schema1", body: js(with(imageManifest(), "mediaType", schema1)), wantErr: ErrUnsupported},
		{name: "body mediaType is a config type", body: js(with(imageManifest(), "mediaType", MediaTypeImageConfig)), wantErr: ErrUnsupported},
		{name: "body mediaType malformed", body: js(with(imageManifest(), "mediaType", "manifest")), wantErr: ErrManifestInvalid},
		{name: "body mediaType not a string", body: js(with(imageManifest(), "mediaType", 1)), wantErr: ErrManifestInvalid},
		{name: "no mediaType anywhere", body: js(with(imageManifest(), "mediaType", del)), wantErr: ErrManifestInvalid},
		{name: "no mediaType and generic Content-Type", contentType: "application/json", body: js(with(imageManifest(), "mediaType", del)), wantErr: ErrManifestInvalid},
		{name: "no mediaType and malformed Content-Type", contentType: "json", body: js(with(imageManifest(), "mediaType", del)), wantErr: ErrManifestInvalid},
		{name: "no mediaType and schema1 Content-Type", contentType: schema1, body: js(with(imageManifest(), "mediaType", del)), wantErr: ErrUnsupported},
		{name: "schema1 document", contentType: schema1, body: `{"schemaVersion":1,"name":"a","tag":"b","architecture":"amd64","fsLayers":[],"history":[]}`, wantErr: ErrUnsupported},
		{name: "docker manifest requires body mediaType", contentType: MediaTypeDockerManifest, body: js(with(imageManifest(), "mediaType", del)), wantErr: ErrManifestInvalid},
		{name: "docker manifest list requires body mediaType", contentType: MediaTypeDockerManifestList, body: js(with(imageIndex(), "mediaType", del)), wantErr: ErrManifestInvalid},

		// Docker v2.2.
		{
			name: "docker manifest", contentType: MediaTypeDockerManifest, body: dockerManifest,
			check: func(t *testing.T, m *Manifest) {
				wantMediaType(MediaTypeDockerManifest)(t, m)
				if m.Config == nil || m.Config.MediaType != MediaTypeDockerConfig || m.Config.Size != 7023 {
					t.Fatalf("config = %+v", m.Config)
				}
				if len(m.Layers) != 3 || m.Layers[2].Size != 73109 {
					t.Fatalf("layers = %+v", m.Layers)
				}
				if len(m.Blobs()) != 4 || len(m.External()) != 0 {
					t.Fatalf("Blobs() = %d, External() = %d; want 4, 0", len(m.Blobs()), len(m.External()))
				}
			},
		},
		{
			name: "docker manifest list", contentType: MediaTypeDockerManifestList, body: dockerManifestList,
			check: func(t *testing.T, m *Manifest) {
				wantMediaType(MediaTypeDockerManifestList)(t, m)
				if !IsIndex(m.MediaType) || m.Config != nil || m.Layers != nil {
					t.Fatalf("not an index: %+v", m)
				}
				if len(m.Manifests) != 2 {
					t.Fatalf("manifests = %d, want 2", len(m.Manifests))
				}
				if got := PlatformString(m.Manifests[1].Platform); got != "linux/amd64" {
					t.Fatalf("platform = %q", got)
				}
				if len(m.Blobs()) != 0 || len(m.External()) != 0 {
					t.Fatal("an index has no blobs")
				}
			},
		},
		{
			name: "docker foreign layer", contentType: MediaTypeDockerManifest,
			body: js(obj{
				"schemaVersion": 2, "mediaType": MediaTypeDockerManifest,
				"config": desc(MediaTypeDockerConfig, "config"),
				"layers": []any{
					with(desc(dockerForeign, "windows base"), "urls", []string{"https://mcr.microsoft.com/v2/windows/blobs/x"}),
					desc(dockerLayer, "app"),
				},
			}),
			check: wantSplit(2, 1),
		},

		// Image manifests.
		{name: "no layers", body: js(with(imageManifest(), "layers", []any{})), check: wantSplit(1, 0)},
		{name: "layers absent", body: js(with(imageManifest(), "layers", del)), check: wantSplit(1, 0)},
		{name: "layers null", body: js(with(imageManifest(), "layers", nil)), check: wantSplit(1, 0)},
		{
			name: "non-distributable and urls layers", body: js(with(imageManifest(), "layers", []any{
				l1,
				desc(layerNondist, "nondist"),
				desc("application/vnd.oci.image.layer.nondistributable.v1.tar", "nondist plain"),
				desc("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", "nondist zstd"),
				with(l2, "urls", []string{"https://example.com/layer2"}),
				desc("application/vnd.oci.image.layer.v1.tar+zstd", "zstd"),
			})),
			check: func(t *testing.T, m *Manifest) {
				wantSplit(3, 4)(t, m)
				b := m.Blobs()
				if b[0].MediaType != MediaTypeImageConfig || b[1].Digest != digest.FromString("layer1") || b[2].Digest != digest.FromString("zstd") {
					t.Fatalf("Blobs() = %+v", b)
				}
				if e := m.External(); e[3].URLs[0] != "https://example.com/layer2" {
					t.Fatalf("External() = %+v", e)
				}
			},
		},
		{name: "empty urls list is not external", body: js(with(imageManifest(), "layers", []any{with(l1, "urls", []string{})})), check: wantSplit(2, 0)},
		{
			name: "artifact with artifactType and empty config", contentType: MediaTypeImageManifest,
			body: js(obj{
				"schemaVersion": 2, "mediaType": MediaTypeImageManifest, "artifactType": sbomType,
				"config": emptyCfg, "layers": []any{desc("application/spdx+json", "{}")},
				"annotations": obj{"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
			}),
			check: func(t *testing.T, m *Manifest) {
				if m.ArtifactType != sbomType {
					t.Fatalf("artifactType = %q", m.ArtifactType)
				}
				if m.Config.MediaType != MediaTypeEmptyJSON || string(m.Config.Data) != "{}" {
					t.Fatalf("config = %+v", m.Config)
				}
				if !reflect.DeepEqual(*m.Config, v1.DescriptorEmptyJSON) {
					t.Fatalf("config = %+v, want v1.DescriptorEmptyJSON", m.Config)
				}
				if m.Annotations["org.opencontainers.image.created"] == "" {
					t.Fatal("annotations lost")
				}
			},
		},
		{
			name: "artifact with empty layer", body: js(with(imageManifest(), "artifactType", sbomType, "config", emptyCfg, "layers", []any{emptyCfg})),
			check: wantSplit(2, 0),
		},
		{
			name: "subject", body: js(with(imageManifest(), "subject", subject, "artifactType", sbomType)),
			check: func(t *testing.T, m *Manifest) { wantDesc(t, "subject", m.Subject, subject) },
		},
		{
			name: "sha512 digests", body: js(with(imageManifest(),
				"config", desc512(MediaTypeImageConfig, "config"),
				"layers", []any{desc512(layerGzip, "l"), l1},
				"subject", desc512(MediaTypeImageManifest, "s"))),
			check: func(t *testing.T, m *Manifest) {
				if m.Config.Digest.Algorithm() != digest.SHA512 || m.Subject.Digest.Algorithm() != digest.SHA512 {
					t.Fatalf("digests = %s, %s", m.Config.Digest, m.Subject.Digest)
				}
			},
		},
		{
			name: "data sha512", body: js(with(imageManifest(), "config", with(desc512(MediaTypeImageConfig, `{"os":"linux"}`), "data", base64.StdEncoding.EncodeToString([]byte(`{"os":"linux"}`))))),
			check: func(t *testing.T, m *Manifest) {
				if string(m.Config.Data) != `{"os":"linux"}` {
					t.Fatalf("data = %q", m.Config.Data)
				}
			},
		},
		{name: "data empty", body: js(with(imageManifest(), "layers", []any{with(desc(layerGzip, ""), "data", "")})), check: wantSplit(2, 0)},
		{
			name: "custom fields and descriptor extras", body: js(with(imageManifest(),
				"x-custom", obj{"nested": []any{1, "two", nil}},
				"config", with(cfg, "x-extra", true, "annotations", obj{"a": "b"}, "artifactType", sbomType),
			)),
			check: func(t *testing.T, m *Manifest) {
				if m.Config.Annotations["a"] != "b" || m.Config.ArtifactType != sbomType {
					t.Fatalf("config = %+v", m.Config)
				}
			},
		},
		{
			name: "annotations", body: js(with(imageManifest(), "annotations", obj{"org.opencontainers.image.title": "x", "Org.Case": "y"})),
			check: func(t *testing.T, m *Manifest) {
				if m.Annotations["org.opencontainers.image.title"] != "x" || m.Annotations["Org.Case"] != "y" {
					t.Fatalf("annotations = %v", m.Annotations)
				}
			},
		},
		{name: "compact", body: `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + hex64 + `","size":0},"layers":[]}`, check: wantSplit(1, 0)},
		{name: "leading whitespace", body: " \n\t" + js(imageManifest()) + "\n", check: wantSplit(3, 0)},

		// Indexes.
		{
			name: "oci index", contentType: MediaTypeImageIndex, body: js(imageIndex()),
			check: func(t *testing.T, m *Manifest) {
				wantMediaType(MediaTypeImageIndex)(t, m)
				if len(m.Manifests) != 2 || m.Config != nil || m.Layers != nil {
					t.Fatalf("index = %+v", m)
				}
				if got := PlatformString(m.Manifests[1].Platform); got != "linux/arm64/v8" {
					t.Fatalf("platform = %q", got)
				}
				if m.Blobs() != nil || m.External() != nil {
					t.Fatal("an index has no blobs")
				}
			},
		},
		{
			// A sparse index lists manifests the registry may not hold; parsing does not care.
			name: "sparse index", body: js(with(imageIndex(), "manifests", []any{
				desc(MediaTypeImageManifest, "held"),
				with(desc(MediaTypeImageManifest, "not pushed"), "platform", obj{"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.1"}),
			})),
			check: func(t *testing.T, m *Manifest) {
				if len(m.Manifests) != 2 || m.Manifests[1].Platform.OSVersion != "10.0.17763.1" {
					t.Fatalf("manifests = %+v", m.Manifests)
				}
			},
		},
		{
			name: "nested index", body: js(with(imageIndex(), "manifests", []any{desc(MediaTypeImageIndex, "child index"), desc(MediaTypeImageManifest, "m")})),
			check: func(t *testing.T, m *Manifest) {
				if !IsIndex(m.Manifests[0].MediaType) {
					t.Fatalf("manifests[0] = %+v", m.Manifests[0])
				}
			},
		},
		{name: "index of artifacts", body: js(with(imageIndex(), "artifactType", sbomType, "manifests", []any{with(desc(MediaTypeImageManifest, "a"), "artifactType", sbomType)}))},
		{name: "index with subject", body: js(with(imageIndex(), "subject", subject)), check: func(t *testing.T, m *Manifest) { wantDesc(t, "subject", m.Subject, subject) }},
		{name: "empty index", body: js(with(imageIndex(), "manifests", []any{})), check: func(t *testing.T, m *Manifest) { wantManifests(t, m, 0) }},
		{name: "index manifests null", body: js(with(imageIndex(), "manifests", nil)), check: func(t *testing.T, m *Manifest) { wantManifests(t, m, 0) }},
		{name: "index manifests absent", body: js(with(imageIndex(), "manifests", del)), check: func(t *testing.T, m *Manifest) { wantManifests(t, m, 0) }},

		// Document shape.
		{name: "empty body", body: "", wantErr: ErrManifestInvalid},
		{name: "whitespace body", body: " \n", wantErr: ErrManifestInvalid},
		{name: "not JSON", body: "schemaVersion: 2", wantErr: ErrManifestInvalid},
		{name: "JSON null", contentType: MediaTypeImageManifest, body: "null", wantErr: ErrManifestInvalid},
		{name: "JSON array", contentType: MediaTypeImageManifest, body: "[]", wantErr: ErrManifestInvalid},
		{name: "JSON string", contentType: MediaTypeImageManifest, body: `"x"`, wantErr: ErrManifestInvalid},
		{name: "truncated", body: js(imageManifest())[:40], wantErr: ErrManifestInvalid},
		{name: "trailing data", body: js(imageManifest()) + "{}", wantErr: ErrManifestInvalid},
		{name: "invalid UTF-8", body: strings.Replace(js(with(imageManifest(), "annotations", obj{"a": "XX"})), "XX", "\xff\xfe", 1), wantErr: ErrManifestInvalid},
		{name: "schemaVersion missing", body: js(with(imageManifest(), "schemaVersion", del)), wantErr: ErrManifestInvalid},
		{name: "schemaVersion 1", body: js(with(imageManifest(), "schemaVersion", 1)), wantErr: ErrManifestInvalid},
		{name: "schemaVersion 3", body: js(with(imageManifest(), "schemaVersion", 3)), wantErr: ErrManifestInvalid},
		{name: "schemaVersion string", body: js(with(imageManifest(), "schemaVersion", "2")), wantErr: ErrManifestInvalid},
		{name: "schemaVersion float", body: strings.Replace(js(imageManifest()), `"schemaVersion":2`, `"schemaVersion":2.0`, 1), wantErr: ErrManifestInvalid},
		{name: "schemaVersion null", body: js(with(imageManifest(), "schemaVersion", nil)), wantErr: ErrManifestInvalid},
		{name: "annotations not strings", body: js(with(imageManifest(), "annotations", obj{"a": 1})), wantErr: ErrManifestInvalid},
		{name: "layers not an array", body: js(with(imageManifest(), "layers", l1)), wantErr: ErrManifestInvalid},
		{name: "layer null", body: js(with(imageManifest(), "layers", []any{nil})), wantErr: ErrManifestInvalid},
		{name: "config not an object", body: js(with(imageManifest(), "config", []any{cfg})), wantErr: ErrManifestInvalid},

		// Ambiguity (CVE-2021-41190) and required parts.
		{name: "manifest with manifests", body: js(with(imageManifest(), "manifests", imageIndex()["manifests"])), wantErr: ErrManifestInvalid},
		{name: "manifest with empty manifests", body: js(with(imageManifest(), "manifests", []any{})), wantErr: ErrManifestInvalid},
		{name: "index with config", body: js(with(imageIndex(), "config", cfg)), wantErr: ErrManifestInvalid},
		{name: "index with layers", body: js(with(imageIndex(), "layers", []any{l1})), wantErr: ErrManifestInvalid},
		{name: "index with empty layers", body: js(with(imageIndex(), "layers", []any{})), wantErr: ErrManifestInvalid},
		{name: "index with null layers", body: js(with(imageIndex(), "layers", nil)), wantErr: ErrManifestInvalid},
		{name: "index with null config", body: js(with(imageIndex(), "config", nil)), wantErr: ErrManifestInvalid},
		{name: "ambiguous without mediaType as index", contentType: MediaTypeImageIndex, body: js(with(imageManifest(), "mediaType", del, "manifests", imageIndex()["manifests"])), wantErr: ErrManifestInvalid},
		{name: "ambiguous without mediaType as manifest", contentType: MediaTypeImageManifest, body: js(with(imageIndex(), "mediaType", del, "config", cfg, "layers", []any{})), wantErr: ErrManifestInvalid},
		{name: "docker list with layers", body: js(with(imageIndex(), "mediaType", MediaTypeDockerManifestList, "layers", []any{l1})), wantErr: ErrManifestInvalid},
		{name: "config missing", body: js(with(imageManifest(), "config", del)), wantErr: ErrManifestInvalid},
		{name: "config null", body: js(with(imageManifest(), "config", nil)), wantErr: ErrManifestInvalid},
		{name: "docker manifest without config", body: js(with(imageManifest(), "mediaType", MediaTypeDockerManifest, "config", del)), wantErr: ErrManifestInvalid},

		// Parser differentials: keys Go would fold onto a known field, and repeated known fields.
		{name: "top-level key in other case", body: js(with(imageManifest(), "Manifests", []any{})), wantErr: ErrManifestInvalid},
		{name: "config key in other case", body: js(with(imageManifest(), "config", del, "Config", cfg)), wantErr: ErrManifestInvalid},
		{name: "duplicate layers key", body: strings.Replace(js(imageManifest()), `"layers":`, `"layers":[],"layers":`, 1), wantErr: ErrManifestInvalid},
		{name: "duplicate mediaType key", body: strings.Replace(js(imageManifest()), `"schemaVersion":2`, `"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"`, 1), wantErr: ErrManifestInvalid},
		{name: "descriptor key in other case", body: js(with(imageManifest(), "layers", []any{with(l1, "Digest", l2["digest"])})), wantErr: ErrManifestInvalid},
		{name: "descriptor key with unicode fold", body: js(with(imageManifest(), "layers", []any{with(l1, "\u017fize", 3)})), wantErr: ErrManifestInvalid},
		{name: "duplicate descriptor digest", body: strings.Replace(js(imageManifest()), `"digest":`, `"digest":"`+l2["digest"].(string)+`","digest":`, 1), wantErr: ErrManifestInvalid},
		{name: "index entry key in other case", body: js(with(imageIndex(), "manifests", []any{with(desc(MediaTypeImageManifest, "m"), "SIZE", 1)})), wantErr: ErrManifestInvalid},
		{name: "escaped duplicate key", body: strings.Replace(js(imageManifest()), `"layers":`, `"layers":[],"\u006cayers":`, 1), wantErr: ErrManifestInvalid},
		{name: "escaped key in other case", body: strings.Replace(js(imageManifest()), `"config":`, `"\u0043onfig":`, 1), wantErr: ErrManifestInvalid},
		{name: "escaped key", body: strings.Replace(js(imageManifest()), `"config":`, `"\u0063onfig":`, 1), check: wantSplit(3, 0)},
		{name: "unknown key in other case is fine", body: js(with(imageManifest(), "X-Custom", 1, "x-custom", 2)), check: wantSplit(3, 0)},
		{name: "platform keys are not checked", body: js(with(imageIndex(), "manifests", []any{with(desc(MediaTypeImageManifest, "m"), "platform", obj{"OS": "linux", "architecture": "amd64"})}))},

		// artifactType.
		{name: "artifactType malformed", body: js(with(imageManifest(), "artifactType", "sbom")), wantErr: ErrManifestInvalid},
		{name: "artifactType with parameters", body: js(with(imageManifest(), "artifactType", "application/json; x=y")), wantErr: ErrManifestInvalid},
		{name: "artifactType not a string", body: js(with(imageManifest(), "artifactType", 1)), wantErr: ErrManifestInvalid},
		{name: "descriptor artifactType malformed", body: js(with(imageIndex(), "manifests", []any{with(desc(MediaTypeImageManifest, "m"), "artifactType", "x")})), wantErr: ErrManifestInvalid},

		// Descriptors.
		{name: "config mediaType missing", body: js(with(imageManifest(), "config", with(cfg, "mediaType", del))), wantErr: ErrManifestInvalid},
		{name: "config mediaType empty", body: js(with(imageManifest(), "config", with(cfg, "mediaType", ""))), wantErr: ErrManifestInvalid},
		{name: "layer mediaType no subtype", body: js(with(imageManifest(), "layers", []any{with(l1, "mediaType", "application")})), wantErr: ErrManifestInvalid},
		{name: "layer mediaType two slashes", body: js(with(imageManifest(), "layers", []any{with(l1, "mediaType", "application/a/b")})), wantErr: ErrManifestInvalid},
		{name: "layer mediaType with parameters", body: js(with(imageManifest(), "layers", []any{with(l1, "mediaType", "application/json; charset=utf-8")})), wantErr: ErrManifestInvalid},
		{name: "layer mediaType leading space", body: js(with(imageManifest(), "layers", []any{with(l1, "mediaType", " application/json")})), wantErr: ErrManifestInvalid},
		{name: "layer mediaType too long", body: js(with(imageManifest(), "layers", []any{with(l1, "mediaType", "application/"+strings.Repeat("x", 128))})), wantErr: ErrManifestInvalid},
		{name: "layer mediaType odd but valid", body: js(with(imageManifest(), "layers", []any{with(l1, "mediaType", "application/vnd.a!b#c$d&e^f_g-h+i")})), check: wantSplit(2, 0)},
		{name: "index entry mediaType invalid", body: js(with(imageIndex(), "manifests", []any{with(desc(MediaTypeImageManifest, "m"), "mediaType", "x y/z")})), wantErr: ErrManifestInvalid},
		{name: "subject mediaType missing", body: js(with(imageManifest(), "subject", with(subject, "mediaType", del))), wantErr: ErrManifestInvalid},
		{name: "digest missing", body: js(with(imageManifest(), "layers", []any{with(l1, "digest", del)})), wantErr: ErrManifestInvalid},
		{name: "digest uppercase", body: js(with(imageManifest(), "layers", []any{with(l1, "digest", strings.ToUpper(l1["digest"].(string)))})), wantErr: ErrManifestInvalid},
		{name: "digest sha384", body: js(with(imageManifest(), "config", with(cfg, "digest", "sha384:"+strings.Repeat("a", 96)))), wantErr: ErrManifestInvalid},
		{name: "digest path traversal", body: js(with(imageManifest(), "layers", []any{with(l1, "digest", "sha256:../../../../etc/passwd")})), wantErr: ErrManifestInvalid},
		{name: "digest not a string", body: js(with(imageManifest(), "layers", []any{with(l1, "digest", 1)})), wantErr: ErrManifestInvalid},
		{name: "index entry digest invalid", body: js(with(imageIndex(), "manifests", []any{with(desc(MediaTypeImageManifest, "m"), "digest", "sha256:abc")})), wantErr: ErrManifestInvalid},
		{name: "subject digest invalid", body: js(with(imageManifest(), "subject", with(subject, "digest", "md5:abc"))), wantErr: ErrManifestInvalid},
		{name: "size missing", body: js(with(imageManifest(), "layers", []any{with(l1, "size", del)})), wantErr: ErrManifestInvalid},
		{name: "size null", body: js(with(imageManifest(), "layers", []any{with(l1, "size", nil)})), wantErr: ErrManifestInvalid},
		{name: "size negative", body: js(with(imageManifest(), "layers", []any{with(l1, "size", -1)})), wantErr: ErrManifestInvalid},
		{name: "size fractional", body: js(with(imageManifest(), "layers", []any{with(l1, "size", 1.5)})), wantErr: ErrManifestInvalid},
		{name: "size string", body: js(with(imageManifest(), "layers", []any{with(l1, "size", "6")})), wantErr: ErrManifestInvalid},
		{name: "size overflow", body: strings.Replace(js(imageManifest()), `"size":6`, `"size":99999999999999999999`, 1), wantErr: ErrManifestInvalid},
		{name: "size zero", body: js(with(imageManifest(), "layers", []any{with(l1, "size", 0)})), check: wantSplit(2, 0)},
		{name: "size max int64", body: js(with(imageManifest(), "layers", []any{with(l1, "size", int64(1<<63-1))})), check: wantSplit(2, 0)},
		{name: "urls empty entry", body: js(with(imageManifest(), "layers", []any{with(l1, "urls", []string{""})})), wantErr: ErrManifestInvalid},
		{name: "urls invalid", body: js(with(imageManifest(), "layers", []any{with(l1, "urls", []string{"http://[::1"})})), wantErr: ErrManifestInvalid},
		{name: "urls not strings", body: js(with(imageManifest(), "layers", []any{with(l1, "urls", []any{1})})), wantErr: ErrManifestInvalid},
		{name: "descriptor annotations not strings", body: js(with(imageManifest(), "layers", []any{with(l1, "annotations", obj{"a": false})})), wantErr: ErrManifestInvalid},
		{name: "data good", body: js(with(imageManifest(), "config", emptyCfg)), check: wantSplit(3, 0)},
		{name: "data not base64", body: js(with(imageManifest(), "config", with(emptyCfg, "data", "e30"))), wantErr: ErrManifestInvalid},
		{name: "data bad characters", body: js(with(imageManifest(), "config", with(emptyCfg, "data", "e3!="))), wantErr: ErrManifestInvalid},
		{name: "data non-canonical padding bits", body: js(with(imageManifest(), "config", with(emptyCfg, "data", "e31="))), wantErr: ErrManifestInvalid},
		{name: "data size mismatch", body: js(with(imageManifest(), "config", with(emptyCfg, "size", 3))), wantErr: ErrManifestInvalid},
		{name: "data digest mismatch", body: js(with(imageManifest(), "config", with(emptyCfg, "data", base64.StdEncoding.EncodeToString([]byte("[]"))))), wantErr: ErrManifestInvalid},
		{name: "data on subject mismatch", body: js(with(imageManifest(), "subject", with(subject, "data", "e30="))), wantErr: ErrManifestInvalid},
		{name: "data on index entry mismatch", body: js(with(imageIndex(), "manifests", []any{with(desc(MediaTypeImageManifest, "m"), "data", "bg==")})), wantErr: ErrManifestInvalid},
		{name: "data on index entry good", body: js(with(imageIndex(), "manifests", []any{with(desc(MediaTypeImageManifest, "m"), "data", "bQ==")}))},
		{name: "data sha512 mismatch", body: js(with(imageManifest(), "config", with(desc512(MediaTypeImageConfig, "{}"), "data", "W10="))), wantErr: ErrManifestInvalid},
		{name: "data not a string", body: js(with(imageManifest(), "config", with(emptyCfg, "data", 1))), wantErr: ErrManifestInvalid},
	}
}

func TestParseManifest(t *testing.T) {
	for _, tc := range manifestCases() {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseManifest(tc.contentType, []byte(tc.body))
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("ParseManifest = %+v, nil; want %v", m, tc.wantErr)
				}
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ParseManifest error %q does not wrap %v", err, tc.wantErr)
				}
				for _, other := range []error{ErrManifestInvalid, ErrUnsupported, ErrDigestInvalid} {
					if other != tc.wantErr && errors.Is(err, other) {
						t.Fatalf("ParseManifest error %q also wraps %v", err, other)
					}
				}
				if m != nil {
					t.Fatal("ParseManifest returned a manifest with an error")
				}
				t.Logf("error: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("ParseManifest: %v", err)
			}
			checkInvariants(t, m)
			if tc.check != nil {
				tc.check(t, m)
			}
		})
	}
}

func TestParseManifestErrorMessages(t *testing.T) {
	tests := []struct {
		name, contentType, body, want string
	}{
		{"mismatch", MediaTypeImageIndex, js(imageManifest()), "does not match Content-Type"},
		{"ambiguous", "", js(with(imageManifest(), "manifests", []any{})), "manifests"},
		{"layer path", "", js(with(imageManifest(), "layers", []any{desc(layerGzip, "a"), with(desc(layerGzip, "b"), "size", -1)})), "layers[1]"},
		{"index path", "", js(with(imageIndex(), "manifests", []any{desc(MediaTypeImageManifest, "a"), with(desc(MediaTypeImageManifest, "b"), "digest", "x")})), "manifests[1]"},
		{"subject path", "", js(with(imageManifest(), "subject", obj{"size": 1})), "subject"},
		{"schemaVersion", "", js(with(imageManifest(), "schemaVersion", 1)), "schemaVersion"},
		{"docker body mediaType", MediaTypeDockerManifest, js(with(imageManifest(), "mediaType", del)), "mediaType"},
		{"type error names the field", "", js(with(imageManifest(), "layers", "x")), "layers"},
		{"duplicate", "", strings.Replace(js(imageManifest()), `"layers":`, `"layers":[],"layers":`, 1), "duplicate"},
		{"case", "", js(with(imageManifest(), "Subject", obj{})), `"Subject"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseManifest(tc.contentType, []byte(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to mention %q", err, tc.want)
			}
			if msg := err.Error(); strings.Contains(msg, "descriptorJSON") || strings.Contains(msg, "manifestJSON") || strings.Contains(msg, "Go ") {
				t.Fatalf("error %q leaks Go type names", err)
			}
		})
	}
}

// checkInvariants holds for every manifest ParseManifest accepts; the fuzz target uses it too.
func checkInvariants(t *testing.T, m *Manifest) {
	t.Helper()
	if !IsManifestMediaType(m.MediaType) {
		t.Fatalf("MediaType = %q, not a manifest type", m.MediaType)
	}
	if IsIndex(m.MediaType) {
		if m.Config != nil || m.Layers != nil {
			t.Fatalf("index has config or layers: %+v", m)
		}
		if m.Blobs() != nil || m.External() != nil {
			t.Fatal("index has blobs")
		}
	} else {
		if m.Config == nil {
			t.Fatal("image manifest without config")
		}
		if m.Manifests != nil {
			t.Fatal("image manifest with manifests")
		}
	}
	var all []v1.Descriptor
	if m.Config != nil {
		all = append(all, *m.Config)
	}
	all = append(all, m.Layers...)
	all = append(all, m.Manifests...)
	if m.Subject != nil {
		all = append(all, *m.Subject)
	}
	for i, d := range all {
		if _, err := ParseDigest(string(d.Digest)); err != nil {
			t.Fatalf("descriptor %d: accepted digest %q: %v", i, d.Digest, err)
		}
		if d.Size < 0 {
			t.Fatalf("descriptor %d: negative size", i)
		}
		if !validMediaType(d.MediaType) {
			t.Fatalf("descriptor %d: media type %q", i, d.MediaType)
		}
		if d.Data != nil && int64(len(d.Data)) != d.Size {
			t.Fatalf("descriptor %d: data length %d, size %d", i, len(d.Data), d.Size)
		}
	}

	// Blobs and External partition config+layers, each keeping layer order.
	blobs, ext := m.Blobs(), m.External()
	var want []v1.Descriptor
	if m.Config != nil {
		want = append(want, *m.Config)
	}
	want = append(want, m.Layers...)
	if len(blobs)+len(ext) != len(want) {
		t.Fatalf("Blobs() %d + External() %d != config+layers %d", len(blobs), len(ext), len(want))
	}
	if m.Config != nil && (len(blobs) == 0 || !reflect.DeepEqual(blobs[0], *m.Config)) {
		t.Fatal("Blobs()[0] is not the config")
	}
	bi, ei := 0, 0
	if m.Config != nil {
		bi = 1
	}
	for i, l := range m.Layers {
		external := len(l.URLs) > 0 || isNonDistributable(l.MediaType)
		switch {
		case external && ei < len(ext) && reflect.DeepEqual(ext[ei], l):
			ei++
		case !external && bi < len(blobs) && reflect.DeepEqual(blobs[bi], l):
			bi++
		default:
			t.Fatalf("layer %d (external=%v) not where expected in Blobs/External", i, external)
		}
	}

	// Re-marshalling the parsed graph gives a document that parses to the same graph.
	b1 := remarshal(t, m)
	m2, err := ParseManifest("", b1)
	if err != nil {
		t.Fatalf("re-marshalled manifest rejected: %v\n%s", err, b1)
	}
	if b2 := remarshal(t, m2); string(b1) != string(b2) {
		t.Fatalf("re-marshal not stable:\n%s\n%s", b1, b2)
	}
	if m2.MediaType != m.MediaType || m2.ArtifactType != m.ArtifactType || len(m2.Layers) != len(m.Layers) || len(m2.Manifests) != len(m.Manifests) {
		t.Fatalf("re-parse differs: %+v vs %+v", m2, m)
	}
}

func remarshal(t *testing.T, m *Manifest) []byte {
	t.Helper()
	b, err := json.Marshal(struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		ArtifactType  string            `json:"artifactType,omitempty"`
		Config        *v1.Descriptor    `json:"config,omitempty"`
		Layers        []v1.Descriptor   `json:"layers,omitempty"`
		Manifests     []v1.Descriptor   `json:"manifests,omitempty"`
		Subject       *v1.Descriptor    `json:"subject,omitempty"`
		Annotations   map[string]string `json:"annotations,omitempty"`
	}{2, m.MediaType, m.ArtifactType, m.Config, m.Layers, m.Manifests, m.Subject, m.Annotations})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantMediaType(mt string) func(*testing.T, *Manifest) {
	return func(t *testing.T, m *Manifest) {
		t.Helper()
		if m.MediaType != mt {
			t.Fatalf("MediaType = %q, want %q", m.MediaType, mt)
		}
	}
}

func wantSplit(blobs, external int) func(*testing.T, *Manifest) {
	return func(t *testing.T, m *Manifest) {
		t.Helper()
		if b, e := len(m.Blobs()), len(m.External()); b != blobs || e != external {
			t.Fatalf("Blobs() = %d, External() = %d; want %d, %d", b, e, blobs, external)
		}
	}
}

func wantManifests(t *testing.T, m *Manifest, n int) {
	t.Helper()
	if len(m.Manifests) != n {
		t.Fatalf("manifests = %d, want %d", len(m.Manifests), n)
	}
}

func wantDesc(t *testing.T, what string, got *v1.Descriptor, want obj) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s is nil", what)
	}
	if got.MediaType != want["mediaType"] || string(got.Digest) != want["digest"] || got.Size != int64(want["size"].(int)) {
		t.Fatalf("%s = %+v, want %v", what, got, want)
	}
}

func TestIsIndexAndManifestMediaType(t *testing.T) {
	tests := []struct {
		mt              string
		index, manifest bool
	}{
		{MediaTypeImageManifest, false, true},
		{MediaTypeImageIndex, true, true},
		{MediaTypeDockerManifest, false, true},
		{MediaTypeDockerManifestList, true, true},
		{MediaTypeImageConfig, false, false},
		{MediaTypeEmptyJSON, false, false},
		{schema1, false, false},
		{"", false, false},
		{MediaTypeImageIndex + "; charset=utf-8", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.mt, func(t *testing.T) {
			if got := IsIndex(tc.mt); got != tc.index {
				t.Errorf("IsIndex = %v, want %v", got, tc.index)
			}
			if got := IsManifestMediaType(tc.mt); got != tc.manifest {
				t.Errorf("IsManifestMediaType = %v, want %v", got, tc.manifest)
			}
		})
	}
}

func TestMediaTypeConstantsMatchImageSpec(t *testing.T) {
	for got, want := range map[string]string{
		MediaTypeImageManifest: v1.MediaTypeImageManifest,
		MediaTypeImageIndex:    v1.MediaTypeImageIndex,
		MediaTypeImageConfig:   v1.MediaTypeImageConfig,
		MediaTypeEmptyJSON:     v1.MediaTypeEmptyJSON,
	} {
		if got != want {
			t.Errorf("%q != image-spec %q", got, want)
		}
	}
}

func BenchmarkParseManifest(b *testing.B) {
	layers := make([]any, 10)
	for i := range layers {
		layers[i] = with(desc(layerGzip, strings.Repeat("l", i)), "annotations", obj{"org.opencontainers.image.title": "layer.tar.gz"})
	}
	for _, bc := range []struct{ name, body string }{
		{"manifest", js(with(imageManifest(), "layers", layers, "annotations", obj{"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}))},
		{"index", js(imageIndex())},
		{"docker", dockerManifest},
	} {
		b.Run(bc.name, func(b *testing.B) {
			body := []byte(bc.body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseManifest("", body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
