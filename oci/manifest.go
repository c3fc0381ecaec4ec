package oci

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"unicode/utf8"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest is the parsed descriptor graph of an image manifest or index.
//
// For an image manifest (OCI or Docker) Config is set and Manifests is nil;
// for an index (OCI index or Docker manifest list) Config and Layers are nil.
// Empty lists and maps are nil.
type Manifest struct {
	MediaType    string // the effective media type, one of the four manifest types (see ParseManifest)
	ArtifactType string // the top-level artifactType field; may be ""
	Config       *v1.Descriptor
	Layers       []v1.Descriptor
	Manifests    []v1.Descriptor
	Subject      *v1.Descriptor
	Annotations  map[string]string
}

// manifestJSON is the part of a manifest or index document Berth reads.
// Unknown fields are ignored.
type manifestJSON struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *descriptorJSON   `json:"config"`
	Layers        []*descriptorJSON `json:"layers"`
	Manifests     []*descriptorJSON `json:"manifests"`
	Subject       *descriptorJSON   `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// descriptorJSON is v1.Descriptor with presence made visible: a missing size
// is not size 0, and data is kept as its base64 text to be checked.
type descriptorJSON struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         *int64            `json:"size"`
	URLs         []string          `json:"urls"`
	Annotations  map[string]string `json:"annotations"`
	Data         *string           `json:"data"`
	Platform     *v1.Platform      `json:"platform"`
	ArtifactType string            `json:"artifactType"`
}

// The fields of each object whose spelling and uniqueness are enforced.
var (
	manifestFields   = []string{"schemaVersion", "mediaType", "artifactType", "config", "layers", "manifests", "subject", "annotations"}
	descriptorFields = []string{"mediaType", "digest", "size", "urls", "annotations", "data", "platform", "artifactType"}
)

// ParseManifest parses and validates an image manifest or index pushed with
// the given Content-Type, which may be "" or carry parameters.
//
// The effective media type is the body's mediaType field if present, and
// otherwise the Content-Type; it must be one of the four manifest types, and
// Docker types must name themselves in the body. When both are present and
// the Content-Type is a manifest type they must agree. An unrecognised but
// well-formed media type gives an error wrapping ErrUnsupported; every other
// failure wraps ErrManifestInvalid with the reason.
//
// The document must be a UTF-8 JSON object with schemaVersion 2. An image
// manifest needs config and must not have manifests; an index must have
// neither config nor layers (a document with manifests and config or layers is
// ambiguous, CVE-2021-41190, and is rejected whatever its type). A missing or
// null layers or manifests list is empty. Every descriptor needs a media type
// (RFC 6838, no parameters), a sha256 or sha512 digest, and a size >= 0; urls
// must parse; embedded data must be base64 whose length and digest match.
// Known fields must be spelled exactly and appear once: Go's decoder would
// otherwise accept "Config" or a repeated "layers" that other parsers read
// differently. Other unknown fields are allowed and ignored.
//
// Nothing is checked against storage: whether blobs, subject or child
// manifests exist is the caller's question.
func ParseManifest(contentType string, body []byte) (*Manifest, error) {
	if !utf8.Valid(body) {
		return nil, invalid("body is not valid UTF-8")
	}
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, invalid("body is not a JSON object")
	}
	var doc manifestJSON
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, invalid(jsonError(err))
	}
	present, err := checkKeys(body)
	if err != nil {
		return nil, err
	}
	hasConfig, hasLayers, hasManifests := present.has("config"), present.has("layers"), present.has("manifests")
	mt, err := effectiveMediaType(contentType, doc.MediaType)
	if err != nil {
		return nil, err
	}
	switch {
	case doc.SchemaVersion == nil:
		return nil, invalid("schemaVersion is required")
	case *doc.SchemaVersion != 2:
		return nil, invalid(fmt.Sprintf("schemaVersion must be 2, not %d", *doc.SchemaVersion))
	}
	if hasManifests && (hasConfig || hasLayers) {
		return nil, invalid("document has both manifests and config or layers, so it is ambiguous between an index and an image manifest")
	}
	if doc.ArtifactType != "" && !validMediaType(doc.ArtifactType) {
		return nil, invalid(fmt.Sprintf("artifactType %s is not a valid media type", quote(doc.ArtifactType)))
	}

	m := &Manifest{MediaType: mt, ArtifactType: doc.ArtifactType}
	if len(doc.Annotations) > 0 {
		m.Annotations = doc.Annotations
	}
	if IsIndex(mt) {
		switch {
		case hasConfig:
			return nil, invalid("an index must not have config")
		case hasLayers:
			return nil, invalid("an index must not have layers")
		}
		if m.Manifests, err = descriptors("manifests", doc.Manifests); err != nil {
			return nil, err
		}
	} else {
		if hasManifests {
			return nil, invalid("an image manifest must not have manifests")
		}
		if doc.Config == nil {
			return nil, invalid("config is required in an image manifest")
		}
		if m.Config, err = doc.Config.descriptor("config"); err != nil {
			return nil, err
		}
		if m.Layers, err = descriptors("layers", doc.Layers); err != nil {
			return nil, err
		}
	}
	if doc.Subject != nil {
		if m.Subject, err = doc.Subject.descriptor("subject"); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Blobs returns the descriptors a registry must find in the repository before
// accepting the manifest: the config, then each layer that is distributable
// and has no urls, in document order. It is nil for an index, whose children
// are manifests, not blobs.
func (m *Manifest) Blobs() []v1.Descriptor {
	if m.Config == nil && len(m.Layers) == 0 {
		return nil
	}
	blobs := make([]v1.Descriptor, 0, 1+len(m.Layers))
	if m.Config != nil {
		blobs = append(blobs, *m.Config)
	}
	for _, l := range m.Layers {
		if !external(l) {
			blobs = append(blobs, l)
		}
	}
	return blobs
}

// External returns the layers that are non-distributable or carry urls, in
// document order: recorded, but never required to be in the registry.
func (m *Manifest) External() []v1.Descriptor {
	var ext []v1.Descriptor
	for _, l := range m.Layers {
		if external(l) {
			ext = append(ext, l)
		}
	}
	return ext
}

func external(d v1.Descriptor) bool { return len(d.URLs) > 0 || isNonDistributable(d.MediaType) }

// effectiveMediaType decides which kind of document a push is, from its
// Content-Type and the body's mediaType field.
func effectiveMediaType(contentType, bodyType string) (string, error) {
	ct := contentTypeMediaType(contentType)
	if bodyType != "" {
		switch {
		case ct != "" && ct != bodyType && (IsManifestMediaType(ct) || ct != "application/json" && ct != "application/octet-stream"):
			// V6: what the client says it sends and what the body says it
			// is must agree; only an absent or generic JSON Content-Type
			// defers to the body.
			return "", invalid(fmt.Sprintf("mediaType %s does not match Content-Type %s", quote(bodyType), quote(ct)))
		case IsManifestMediaType(bodyType):
			return bodyType, nil
		case !validMediaType(bodyType):
			return "", invalid(fmt.Sprintf("mediaType %s is not a valid media type", quote(bodyType)))
		}
		return "", fmt.Errorf("%w: manifest media type %s", ErrUnsupported, quote(bodyType))
	}
	switch {
	case ct == MediaTypeImageManifest || ct == MediaTypeImageIndex:
		return ct, nil
	case ct == MediaTypeDockerManifest || ct == MediaTypeDockerManifestList:
		return "", invalid(fmt.Sprintf("Content-Type is %s, and a Docker manifest must also give its mediaType in the body", ct))
	case ct == "" || genericMediaType(ct) || !validMediaType(ct):
		return "", invalid(fmt.Sprintf("no mediaType in the body and Content-Type %s does not name a manifest type", quote(ct)))
	}
	return "", fmt.Errorf("%w: manifest media type %s", ErrUnsupported, quote(ct))
}

func descriptors(field string, in []*descriptorJSON) ([]v1.Descriptor, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]v1.Descriptor, len(in))
	for i, dj := range in {
		path := fmt.Sprintf("%s[%d]", field, i)
		if dj == nil {
			return nil, invalid(path + ": null is not a descriptor")
		}
		d, err := dj.descriptor(path)
		if err != nil {
			return nil, err
		}
		out[i] = *d
	}
	return out, nil
}

// descriptor validates dj (image-spec descriptor.md) and converts it.
func (dj *descriptorJSON) descriptor(path string) (*v1.Descriptor, error) {
	switch {
	case dj.MediaType == "":
		return nil, invalid(path + ": mediaType is required")
	case !validMediaType(dj.MediaType):
		return nil, invalid(fmt.Sprintf("%s: mediaType %s is not a valid media type", path, quote(dj.MediaType)))
	case dj.ArtifactType != "" && !validMediaType(dj.ArtifactType):
		return nil, invalid(fmt.Sprintf("%s: artifactType %s is not a valid media type", path, quote(dj.ArtifactType)))
	case dj.Digest == "":
		return nil, invalid(path + ": digest is required")
	case dj.Size == nil:
		return nil, invalid(path + ": size is required")
	case *dj.Size < 0:
		return nil, invalid(fmt.Sprintf("%s: size %d is negative", path, *dj.Size))
	}
	dgst, err := ParseDigest(dj.Digest)
	if err != nil {
		// The document is invalid whatever the reason; don't let an
		// unsupported algorithm surface as ErrUnsupported.
		return nil, invalid(fmt.Sprintf("%s: %v", path, err))
	}
	for i, u := range dj.URLs {
		if u == "" {
			return nil, invalid(fmt.Sprintf("%s: urls[%d] is empty", path, i))
		}
		if _, err := url.Parse(u); err != nil {
			return nil, invalid(fmt.Sprintf("%s: urls[%d] %s is not a URL", path, i, quote(u)))
		}
	}
	d := &v1.Descriptor{
		MediaType:    dj.MediaType,
		Digest:       dgst,
		Size:         *dj.Size,
		URLs:         dj.URLs,
		Annotations:  dj.Annotations,
		Platform:     dj.Platform,
		ArtifactType: dj.ArtifactType,
	}
	if len(d.URLs) == 0 {
		d.URLs = nil
	}
	if len(d.Annotations) == 0 {
		d.Annotations = nil
	}
	if dj.Data != nil {
		if d.Data, err = checkData(*dj.Data, d.Size, dgst); err != nil {
			return nil, invalid(fmt.Sprintf("%s: data %v", path, err))
		}
	}
	return d, nil
}

// checkData decodes embedded content (image-spec descriptor.md, "Embedded
// content") and checks it against the descriptor's size and digest.
func checkData(b64 string, size int64, d digest.Digest) ([]byte, error) {
	data, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		return nil, errors.New("is not valid base64")
	}
	if int64(len(data)) != size {
		return nil, fmt.Errorf("is %d bytes, size says %d", len(data), size)
	}
	// d was checked by ParseDigest: sha256 or sha512, both available.
	if d.Algorithm().FromBytes(data) != d {
		return nil, fmt.Errorf("does not match digest %s", d)
	}
	return data, nil
}

// checkKeys walks the top-level object and every descriptor object in body,
// which json.Unmarshal has already accepted into manifestJSON, and rejects a
// known field spelled in another case (Go matches keys case-insensitively,
// most parsers don't) or given twice (parsers disagree on which one wins). It
// returns the top-level known fields present, counting those set to null, as
// a set of bits indexed like manifestFields.
func checkKeys(body []byte) (fieldSet, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	skip := func(int) error { return skipValue(dec) }
	descriptor := func(p path) error {
		_, err := walkObject(dec, p, descriptorFields, skip)
		return err
	}
	return walkObject(dec, path{}, manifestFields, func(i int) error {
		switch k := fieldName(manifestFields, i); k {
		case "config", "subject":
			return descriptor(path{field: k, index: -1})
		case "layers", "manifests":
			return walkArray(dec, k, descriptor)
		}
		return skipValue(dec)
	})
}

// fieldSet holds bits indexed by position in the list of known fields of the
// object it describes.
type fieldSet uint32

// has reports whether the top-level field name is in s.
func (s fieldSet) has(name string) bool {
	for i, f := range manifestFields {
		if f == name {
			return s&(1<<i) != 0
		}
	}
	return false
}

func fieldName(fields []string, i int) string {
	if i < 0 {
		return ""
	}
	return fields[i]
}

// path names a JSON object in a manifest, for error messages: the document
// (field ""), a field ("config"), or an element (index >= 0) of an array field.
type path struct {
	field string
	index int
}

func (p path) String() string {
	switch {
	case p.field == "":
		return "document"
	case p.index < 0:
		return p.field
	}
	return fmt.Sprintf("%s[%d]", p.field, p.index)
}

func (p path) prefix() string {
	if p.field == "" {
		return ""
	}
	return p.String() + ": "
}

// walkObject reads an object or null from dec. For each key it calls value
// with the key's index in known, or -1 for an unknown key; value must consume
// the key's value. It returns the known fields seen.
func walkObject(dec *json.Decoder, p path, known []string, value func(i int) error) (fieldSet, error) {
	tok, err := dec.Token()
	if err != nil {
		return 0, invalid(jsonError(err))
	}
	if tok == nil {
		return 0, nil
	}
	if tok != json.Delim('{') {
		return 0, invalid(p.String() + " is not an object")
	}
	var seen fieldSet
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return 0, invalid(jsonError(err))
		}
		key, _ := tok.(string)
		idx := -1
		for i, k := range known {
			if !strings.EqualFold(key, k) {
				continue
			}
			if key != k {
				return 0, invalid(fmt.Sprintf("%sfield %s must be spelled %q", p.prefix(), quote(key), k))
			}
			if seen&(1<<i) != 0 {
				return 0, invalid(fmt.Sprintf("%sduplicate field %q", p.prefix(), k))
			}
			seen |= 1 << i
			idx = i
		}
		if err := value(idx); err != nil {
			return 0, err
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return 0, invalid(jsonError(err))
	}
	return seen, nil
}

// walkArray reads an array or null from dec, calling elem for each element.
func walkArray(dec *json.Decoder, field string, elem func(path) error) error {
	tok, err := dec.Token()
	if err != nil {
		return invalid(jsonError(err))
	}
	if tok == nil {
		return nil
	}
	if tok != json.Delim('[') {
		return invalid(field + " is not an array")
	}
	for i := 0; dec.More(); i++ {
		if err := elem(path{field: field, index: i}); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // ']'
		return invalid(jsonError(err))
	}
	return nil
}

func skipValue(dec *json.Decoder) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return invalid(jsonError(err))
	}
	return nil
}

func invalid(reason string) error {
	return fmt.Errorf("%w: %s", ErrManifestInvalid, reason)
}

// jsonError describes a decoding error without the Go type names
// encoding/json puts in its messages.
func jsonError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at offset %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "document"
		}
		return fmt.Sprintf("field %s: expected %s, found JSON %s", field, jsonKind(typ.Type), typ.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "another type"
}
