package registry

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/meta"
)

// writeReferrer must give exactly what json.Marshal gives, so the streamed
// referrers index is the one clients always got.
func checkWriteReferrer(t *testing.T, m meta.Descriptor) {
	t.Helper()
	want, err := json.Marshal(v1.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size, ArtifactType: m.ArtifactType, Annotations: m.Annotations})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := writeReferrer(&got, m); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("writeReferrer:\n got %q\nwant %q", got.Bytes(), want)
	}
	var c countWriter
	_ = writeReferrer(&c, m)
	if int(c) != len(want) {
		t.Fatalf("counted %d bytes, wrote %d", c, len(want))
	}
}

func TestWriteReferrer(t *testing.T) {
	d := digest.FromString("x")
	checkWriteReferrer(t, meta.Descriptor{MediaType: ociManifest, Digest: d, Size: 12})
	checkWriteReferrer(t, meta.Descriptor{MediaType: ociManifest, Digest: d, Size: -1, ArtifactType: "a/b",
		Annotations: map[string]string{"z": "1", "a": "<&>\"\\\n\r\t\b\f\x00\x1f\x7f \u2028\u2029 é \xff\xfe", "": ""}})
}

func FuzzWriteReferrer(f *testing.F) {
	f.Add("application/x", "k", "v<>&\u2028\xff", int64(3))
	f.Fuzz(func(t *testing.T, mt, k, v string, size int64) {
		checkWriteReferrer(t, meta.Descriptor{MediaType: mt, Digest: digest.Digest(k), Size: size, ArtifactType: v, Annotations: map[string]string{k: v, v: mt}})
	})
}
