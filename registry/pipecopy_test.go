package registry

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// failWriter accepts limit bytes, then fails.
type failWriter struct {
	buf   bytes.Buffer
	limit int
}

func (f *failWriter) Write(p []byte) (int, error) {
	if f.buf.Len()+len(p) > f.limit {
		n := f.limit - f.buf.Len()
		f.buf.Write(p[:n])
		return n, errors.New("disk full")
	}
	return f.buf.Write(p)
}

// countingReader counts what was read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestPipeCopy(t *testing.T) {
	data := make([]byte, 3<<20+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, tc := range []struct {
		name string
		src  func() io.Reader
	}{
		{"whole", func() io.Reader { return bytes.NewReader(data) }},
		{"one byte at a time", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data[:300<<10])) }},
		{"half reads", func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) }},
		{"data with EOF", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) }},
		{"empty", func() io.Reader { return bytes.NewReader(nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want bytes.Buffer
			if _, err := io.Copy(&want, tc.src()); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			n, err := pipeCopy(&got, tc.src())
			if err != nil || n != int64(want.Len()) || !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("pipeCopy = %d, %v; %d bytes equal: %v; want %d", n, err, got.Len(), bytes.Equal(got.Bytes(), want.Bytes()), want.Len())
			}
		})
	}

	t.Run("read error", func(t *testing.T) {
		boom := errors.New("client went away")
		src := io.MultiReader(bytes.NewReader(data[:1<<20]), iotest.ErrReader(boom))
		var got bytes.Buffer
		n, err := pipeCopy(&got, src)
		if !errors.Is(err, boom) || n != 1<<20 || !bytes.Equal(got.Bytes(), data[:1<<20]) {
			t.Fatalf("pipeCopy = %d, %v; want the %d bytes before the error, and the error", n, err, 1<<20)
		}
	})

	t.Run("write error", func(t *testing.T) {
		src := &countingReader{r: bytes.NewReader(data)}
		dst := &failWriter{limit: 600 << 10}
		n, err := pipeCopy(dst, src)
		if err == nil || err.Error() != "disk full" || n != 600<<10 {
			t.Fatalf("pipeCopy = %d, %v; want 600 KiB and the write's error", n, err)
		}
		// The reader stops: at most the buffers ahead of the failed write
		// were read.
		if src.n > 600<<10+3*(256<<10) {
			t.Errorf("%d bytes read after the write failed at %d", src.n, 600<<10)
		}
		if !bytes.Equal(dst.buf.Bytes(), data[:600<<10]) {
			t.Error("the bytes written are not the source's")
		}
	})
}
