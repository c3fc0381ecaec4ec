package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
)

// blockSize is the size of the random block big blobs repeat.
const blockSize = 1 << 20

// block is the random block every generated big blob repeats after its
// header; generating a blob is then a memory copy.
var block = func() []byte {
	b := make([]byte, blockSize)
	r := rand.NewChaCha8([32]byte{'b', 'e', 'r', 't', 'h'})
	r.Read(b)
	return b
}()

// genReader streams a big blob: a 32-byte header naming its id, then the
// random block repeated, size bytes in all. Equal ids give equal bytes.
type genReader struct {
	header    [32]byte
	off, size int64
}

func newGen(id string, size int64) *genReader {
	g := &genReader{size: size}
	copy(g.header[:], fmt.Sprintf("berth-bench %-20s", id))
	return g
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.size-g.off)]
	n := 0
	for n < len(p) {
		var m int
		if g.off < int64(len(g.header)) {
			m = copy(p[n:], g.header[g.off:])
		} else {
			m = copy(p[n:], block[(g.off-int64(len(g.header)))%blockSize:])
		}
		n += m
		g.off += int64(m)
	}
	return n, nil
}

// genDigest is the digest of newGen(id, size)'s bytes.
func genDigest(id string, size int64) Digest {
	h := sha256.New()
	buf := make([]byte, 256<<10)
	io.CopyBuffer(h, io.LimitReader(newGen(id, size), size), buf)
	return Digest("sha256:" + hex.EncodeToString(h.Sum(nil)))
}

// smallBlob is size bytes that differ for every id.
func smallBlob(id string, size int) []byte {
	b := make([]byte, size)
	g := newGen(id, int64(size))
	io.ReadFull(g, b)
	return b
}

// imageConfig is an image config JSON with labels; id makes it unique.
func imageConfig(id string, labels map[string]string) []byte {
	cfg := map[string]any{
		"created":      "2026-01-01T00:00:00Z",
		"os":           "linux",
		"architecture": "amd64",
		"config":       map[string]any{"Labels": labels, "Env": []string{"BENCH_ID=" + id}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{}},
	}
	b, _ := json.Marshal(cfg)
	return b
}

// manifest is an OCI image manifest of cfg and layers; note (may be
// empty) goes in an annotation so that equal blobs give distinct manifests.
func manifest(cfg []byte, note string, layers ...[]byte) []byte {
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    Digest `json:"digest"`
		Size      int    `json:"size"`
	}
	m := struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Config        desc              `json:"config"`
		Layers        []desc            `json:"layers"`
		Annotations   map[string]string `json:"annotations,omitempty"`
	}{SchemaVersion: 2, MediaType: mediaManifest, Config: desc{mediaConfig, digestOf(cfg), len(cfg)}, Layers: []desc{}}
	for _, l := range layers {
		m.Layers = append(m.Layers, desc{mediaLayer, digestOf(l), len(l)})
	}
	if note != "" {
		m.Annotations = map[string]string{"org.berth.bench": note}
	}
	b, _ := json.Marshal(m)
	return b
}

// flatpakLabels are the labels that put an image in Berth's Flatpak index
// (an app ref and its metadata keyfile) for app id.
func flatpakLabels(id string) map[string]string {
	return map[string]string{
		"org.flatpak.ref": "app/" + id + "/x86_64/stable",
		"org.flatpak.metadata": "[Application]\nname=" + id + "\nruntime=org.bench.Platform/x86_64/1\n" +
			"sdk=org.bench.Sdk/x86_64/1\ncommand=app\n\n[Context]\nshared=network;\n",
	}
}
