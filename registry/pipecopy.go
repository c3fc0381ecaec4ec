package registry

import (
	"errors"
	"io"
	"sync"
)

// copyBufs holds the buffers of pipeCopy, in pairs.
var copyBufs = sync.Pool{New: func() any {
	return &[2][]byte{make([]byte, 256<<10), make([]byte, 256<<10)}
}}

// pipeCopy copies src to dst like io.Copy, but reads the next buffer
// while dst writes the last one: a request body arrives while the blob
// store hashes and writes what came before (the filesystem store hashes
// and writes one buffer in parallel too). Each buffer is filled before it
// is written, so dst sees few, large writes. It returns the bytes dst
// accepted and the first error of either side; src is never read after
// pipeCopy returns.
func pipeCopy(dst io.Writer, src io.Reader) (int64, error) {
	bufs := copyBufs.Get().(*[2][]byte)
	defer copyBufs.Put(bufs)

	type chunk struct {
		b   []byte
		n   int
		err error // the read's: io.EOF at the end
	}
	free := make(chan []byte, 2)
	full := make(chan chunk, 2)
	stop := make(chan struct{})
	free <- bufs[0]
	free <- bufs[1]
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(full)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var b []byte
			select {
			case b = <-free:
			case <-stop:
				return
			}
			n, err := io.ReadFull(src, b)
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			full <- chunk{b, n, err}
			if err != nil {
				return
			}
		}
	})
	defer wg.Wait()

	var written int64
	for c := range full {
		if c.n > 0 {
			n, err := dst.Write(c.b[:c.n])
			written += int64(n)
			if err == nil && n < c.n {
				err = io.ErrShortWrite
			}
			if err != nil {
				close(stop)
				for range full { // let the reader finish its read
				}
				return written, err
			}
		}
		switch {
		case c.err == io.EOF:
			return written, nil
		case c.err != nil:
			return written, c.err
		}
		free <- c.b
	}
	return written, nil
}
