package registry

import (
	"io"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/berth-dev/berth/meta"
)

// writer is what the streaming encoders write to: bufio.Writer,
// bytes.Buffer and countWriter, none of which allocates per call.
type writer interface {
	io.Writer
	io.StringWriter
	io.ByteWriter
}

// writeReferrer writes one descriptor of the referrers index, byte for byte
// what json.Marshal of the image-spec v1.Descriptor gives, straight to w.
// encoding/json builds each string in a buffer of its own (a 600 KiB
// annotation of '<' became 7 MiB of allocations per encoding); this holds
// nothing.
func writeReferrer(w writer, m meta.Descriptor) error {
	_, _ = w.WriteString(`{"mediaType":`)
	writeJSONString(w, m.MediaType)
	_, _ = w.WriteString(`,"digest":`)
	writeJSONString(w, string(m.Digest))
	_, _ = w.WriteString(`,"size":`)
	_, _ = w.WriteString(strconv.FormatInt(m.Size, 10))
	if len(m.Annotations) > 0 {
		_, _ = w.WriteString(`,"annotations":{`)
		keys := make([]string, 0, len(m.Annotations))
		for k := range m.Annotations {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				_ = w.WriteByte(',')
			}
			writeJSONString(w, k)
			_ = w.WriteByte(':')
			writeJSONString(w, m.Annotations[k])
		}
		_ = w.WriteByte('}')
	}
	if m.ArtifactType != "" {
		_, _ = w.WriteString(`,"artifactType":`)
		writeJSONString(w, m.ArtifactType)
	}
	err := w.WriteByte('}')
	return err
}

const hexDigits = "0123456789abcdef"

// writeJSONString writes s as a JSON string escaped as encoding/json does
// by default: HTML-safe (<, >, & as \u00XX), U+2028 and U+2029 escaped,
// invalid UTF-8 replaced by U+FFFD.
func writeJSONString(w writer, s string) {
	_ = w.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			_, _ = w.WriteString(s[start:i])
			switch b {
			case '"', '\\':
				_ = w.WriteByte('\\')
				_ = w.WriteByte(b)
			case '\b':
				_, _ = w.WriteString(`\b`)
			case '\f':
				_, _ = w.WriteString(`\f`)
			case '\n':
				_, _ = w.WriteString(`\n`)
			case '\r':
				_, _ = w.WriteString(`\r`)
			case '\t':
				_, _ = w.WriteString(`\t`)
			default:
				_, _ = w.WriteString(`\u00`)
				_ = w.WriteByte(hexDigits[b>>4])
				_ = w.WriteByte(hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			_, _ = w.WriteString(s[start:i])
			_, _ = w.WriteString(`\ufffd`)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			_, _ = w.WriteString(s[start:i])
			_, _ = w.WriteString(`\u202`)
			_ = w.WriteByte(hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	_, _ = w.WriteString(s[start:])
	_ = w.WriteByte('"')
}

// countWriter counts the bytes written to it.
type countWriter int

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

func (c *countWriter) WriteString(s string) (int, error) {
	*c += countWriter(len(s))
	return len(s), nil
}

func (c *countWriter) WriteByte(byte) error {
	*c++
	return nil
}
