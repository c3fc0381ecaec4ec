package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/config"
)

// hardenTransport goes around every handler (New puts it inside the
// request log, so refusals are logged): it refuses what must never reach
// a handler and bounds how slowly a client may send or receive.
//
//   - A non-canonical path (a ".", ".." or empty segment, or an encoded
//     slash) is answered 400, never redirected: Go's ServeMux would answer
//     307 to the cleaned path, and a 307 keeps the method, so a client that
//     follows it would PUT or DELETE in another repository.
//   - A request the connection's framer saw with both Content-Length and
//     Transfer-Encoding, or with several Content-Length fields (net/http
//     drops the Content-Length before a handler sees it), is answered 400
//     and the connection is closed (RFC 9112 §6.1): bytes after its body
//     are never read as another request.
//   - The request body must deliver cfg.MinBodyRate×cfg.BodyRateWindow
//     bytes in every window, or its read fails (the connection's read
//     deadline is the window's end, so a client that sends nothing at all
//     is cut too).
//   - The write deadline moves with progress: each write (or each slice of
//     a sendfile) must complete within cfg.WriteStallTimeout.
//
// On connections accepted by Serve over TLS with HTTP/1.1 (which Serve
// frames itself), it also restores r.TLS.
func hardenTransport(next http.Handler, cfg config.HTTP, logger *slog.Logger) http.Handler {
	return &hardened{next: next, cfg: cfg, log: logger}
}

// hardened is hardenTransport's handler.
type hardened struct {
	next http.Handler
	cfg  config.HTTP
	log  *slog.Logger
}

// hardenedKey marks a request hardenTransport has seen: wrapped twice, it
// applies once (a second framing verdict would be another request's).
type hardenedKey struct{}

func (h *hardened) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Context().Value(hardenedKey{}) != nil {
		h.next.ServeHTTP(w, r)
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), hardenedKey{}, true))
	fc, _ := r.Context().Value(framedConnKey{}).(*framedConn)
	if fc != nil && r.ProtoMajor == 1 {
		if fc.tlsState != nil && r.TLS == nil {
			r2 := *r
			st := *fc.tlsState
			r2.TLS = &st
			r = &r2
		}
		if why := fc.next(); why != "" {
			h.log.Warn("refused an ambiguously framed request; closing the connection",
				"why", why, "method", r.Method, "remote", r.RemoteAddr)
			w.Header().Set("Connection", "close")
			http.Error(w, "bad request: "+why, http.StatusBadRequest)
			return
		}
	}
	if !canonicalPath(r.URL.Path) || badRawPath(r.URL.RawPath) {
		refuseNonCanonical(w, r)
		return
	}
	rc := http.NewResponseController(w)
	if r.Body != nil && r.Body != http.NoBody && h.cfg.MinBodyRate > 0 && h.cfg.BodyRateWindow > 0 {
		r.Body = &rateReader{
			rc: rc, r: r.Body,
			min:    h.cfg.MinBodyRate * int64(h.cfg.BodyRateWindow) / int64(time.Second),
			window: h.cfg.BodyRateWindow,
		}
	}
	if h.cfg.WriteStallTimeout > 0 {
		// A deadline left by an earlier request on this connection must
		// not cut this one's first bytes.
		_ = rc.SetWriteDeadline(time.Time{})
		sw := &stallWriter{ResponseWriter: w, rc: rc, stall: h.cfg.WriteStallTimeout}
		// net/http flushes what is buffered after the handler returns:
		// that flush gets its own stall window.
		defer sw.extend()
		w = sw
	}
	h.next.ServeHTTP(w, r)
}

// canonicalPath reports whether p is absolute with no ".", ".." or empty
// segment (a trailing slash is allowed: "/v2/" and upload URLs end in one).
func canonicalPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		switch s {
		case ".", "..":
			return false
		case "":
			if i != len(segs)-1 {
				return false
			}
		}
	}
	return true
}

// badRawPath reports an escaped path with an encoded slash or backslash:
// "a%2Fb" decodes to a name with a slash, which handlers splitting the
// decoded path would read as two segments.
func badRawPath(raw string) bool {
	if raw == "" {
		return false
	}
	l := strings.ToLower(raw)
	return strings.Contains(l, "%2f") || strings.Contains(l, "%5c") || !canonicalPath(raw)
}

func refuseNonCanonical(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimLeft(r.URL.Path, "/")
	if p == "v2" || strings.HasPrefix(p, "v2/") {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"errors":[{"code":"NAME_INVALID","message":"invalid repository name",`+
			`"detail":"the path is not canonical (a '.', '..' or empty segment, or an encoded slash); it is refused, never redirected"}]}`)
		return
	}
	http.Error(w, "bad request: the path is not canonical", http.StatusBadRequest)
}

// errBodyTooSlow is the error a request body's read fails with when the
// client sends below the minimum rate.
var errBodyTooSlow = errors.New("request body below the minimum transfer rate (http.min_body_rate over http.body_rate_window)")

// rateReader cuts a request body that delivers fewer than min bytes in a
// window. Each window ends at a read deadline on the connection, so a Read
// blocked on a silent client fails at the window's end; a window that has
// received min bytes starts the next one.
//
// The registry's upload reader sets its own idle deadline before each
// read; this reader is closer to the connection, so its deadline is the
// one in force while it reads.
type rateReader struct {
	rc     *http.ResponseController
	r      io.ReadCloser
	min    int64
	window time.Duration

	started bool
	end     time.Time // the current window's end
	got     int64     // bytes received in the current window
	err     error     // sticky: errBodyTooSlow
}

func (b *rateReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.cut(b.err)
	}
	now := time.Now()
	if !b.started || b.got >= b.min {
		b.started, b.got, b.end = true, 0, now.Add(b.window)
	} else if !now.Before(b.end) {
		return 0, b.cut(errBodyTooSlow)
	}
	if err := b.rc.SetReadDeadline(b.end); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return 0, err
	}
	n, err := b.r.Read(p)
	b.got += int64(n)
	if err == io.EOF {
		// Done: net/http's background read (it watches for the client
		// going away) must not time out on this window's deadline, which
		// would cancel the request's context while the handler works.
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	if err != nil && err != io.EOF {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) || !time.Now().Before(b.end) {
			return n, b.cut(fmt.Errorf("%w: %w", errBodyTooSlow, err))
		}
	}
	return n, err
}

// cut fails the body for good. The read deadline goes to the past: a
// reader above this one (the registry's) may have pushed it back just
// before calling Read, and net/http's discard of the unread body after
// the handler must fail at once, closing the connection, rather than
// wait on the trickle.
func (b *rateReader) cut(err error) error {
	b.err = err
	_ = b.rc.SetReadDeadline(time.Unix(1, 0))
	return err
}

func (b *rateReader) Close() error { return b.r.Close() }

// Write slices: a write (or a sendfile slice) must complete within the
// stall timeout, so a client accepting at least writeSlice bytes per
// http.write_stall_timeout is never cut. Small enough that a slow but
// moving client keeps up. A sendfile slice starts at readFromSlice and
// doubles, up to maxReadFromSlice, after each one the client took in under
// a sixteenth of the timeout (so at its rate the next takes under an
// eighth): a fast client is sent large slices (one 256 MiB pull went 3,089
// -> 3,633 MiB/s with 2 MiB slices instead of 128 KiB), and only one
// whose rate falls more than eightfold within a slice can be cut while
// moving.
const (
	writeSlice       = 32 << 10
	readFromSlice    = 128 << 10
	maxReadFromSlice = 4 << 20
)

// stallWriter moves the connection's write deadline before each write, so
// a client that stops reading is cut after the stall timeout while one
// that reads slowly is not. It keeps io.ReaderFrom (sendfile for blob
// GETs, in slices), Flush and Unwrap (for http.ResponseController).
type stallWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func (w *stallWriter) extend() {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.stall))
}

func (w *stallWriter) WriteHeader(code int) {
	w.extend()
	w.ResponseWriter.WriteHeader(code)
}

func (w *stallWriter) Write(p []byte) (int, error) {
	var n int
	for len(p) > 0 {
		k := min(len(p), writeSlice)
		w.extend()
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// ReadFrom hands the underlying ReadFrom (sendfile on a TCP connection)
// one slice at a time, moving the deadline between slices. A limited
// *os.File stays a limited *os.File (one level of io.LimitedReader is
// what net's sendfile unwraps).
func (w *stallWriter) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{w}, src)
	}
	var inner io.Reader = src
	remain := int64(-1)
	if lr, ok := src.(*io.LimitedReader); ok {
		inner, remain = lr.R, lr.N
		defer func() { lr.N = remain }()
	}
	var total int64
	for slice := int64(readFromSlice); remain != 0; {
		k := slice
		if remain > 0 {
			k = min(k, remain)
		}
		w.extend()
		start := time.Now()
		n, err := rf.ReadFrom(&io.LimitedReader{R: inner, N: k})
		if n == slice && time.Since(start) < w.stall/16 {
			slice = min(2*slice, maxReadFromSlice)
		}
		total += n
		if remain > 0 {
			remain -= n
		}
		if err != nil {
			return total, err
		}
		if n < k {
			return total, nil // the source ended
		}
	}
	return total, nil
}

func (w *stallWriter) Flush() {
	w.extend()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *stallWriter) FlushError() error {
	w.extend()
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *stallWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writerOnly hides ReadFrom, so io.Copy does not call it back.
type writerOnly struct{ io.Writer }

// framedConnKey is the context key of a connection's *framedConn.
type framedConnKey struct{}

// framedConn is an HTTP/1.x server connection whose incoming bytes go
// through an h1Framer, so the handler learns what net/http hides: whether
// a request carried both Content-Length and Transfer-Encoding. It keeps
// io.ReaderFrom (net/http's sendfile path uses the connection's).
type framedConn struct {
	net.Conn
	// tlsState is set for TLS connections Serve frames itself (HTTP/1.1
	// after ALPN), whose requests net/http sees without r.TLS.
	tlsState *tls.ConnectionState

	mu sync.Mutex
	f  h1Framer
}

func newFramedConn(c net.Conn) *framedConn {
	return &framedConn{Conn: c}
}

func (c *framedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.f.feed(p[:n])
		c.mu.Unlock()
	}
	return n, err
}

// CloseWrite half-closes the connection when the one underneath can
// (TCP, TLS), as net/http does before closing after an error answer, so a
// client still sending reads the answer instead of a reset.
func (c *framedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *framedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}

// next takes the verdict on the oldest request not yet taken: "" if it
// was framed unambiguously, else why not. Requests are handled in order
// on an HTTP/1 connection, and every request net/http reads without
// refusing it (refusals close the connection) reaches the handler
// (Serve disables net/http's own "OPTIONS *" answer), so the n-th call
// concerns the n-th request.
func (c *framedConn) next() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.f.verdicts) == 0 {
		if c.f.broken != "" {
			return c.f.broken
		}
		return "the request's framing could not be followed"
	}
	v := c.f.verdicts[0]
	c.f.verdicts = c.f.verdicts[1:]
	return v
}

// h1Framer follows the message framing of an HTTP/1.x request stream as
// net/http's server reads it (RFC 9112 §6: headers up to an empty line,
// then a body of Content-Length bytes, or chunked when HTTP/1.1 says
// Transfer-Encoding: chunked, which net/http accepts alone) and records,
// for each request, whether its framing was ambiguous. Where net/http
// would refuse the stream (a bad chunk line, an unsupported
// Transfer-Encoding, conflicting lengths) it closes the connection, so
// the framer just stops (broken) and later requests are refused.
type h1Framer struct {
	state    int
	line     []byte // the current line, up to maxLine bytes
	overlong bool

	reqLine bool // the request line was read
	http10  bool
	te      int // Transfer-Encoding fields
	teVal   string
	cl      int // Content-Length fields
	clVal   string
	last    string // the last header field name
	folded  bool   // an obs-fold line was seen in this header block

	remain int64 // body or chunk bytes still to skip

	verdicts []string
	broken   string
}

const (
	fsHeader = iota
	fsBody
	fsChunkSize
	fsChunkData
	fsChunkEnd // the CRLF after a chunk's data
	fsChunkEndLF
	fsTrailer
	fsBroken
)

// maxLine bounds a buffered line. net/http refuses header blocks beyond
// MaxHeaderBytes (plus slack) and chunk lines beyond 4 KiB, so a longer
// line only has to be recognised as a header name or be skipped.
const maxLine = 8 << 10

func (f *h1Framer) fail(why string) {
	f.state = fsBroken
	if f.broken == "" {
		f.broken = why
	}
}

func (f *h1Framer) feed(p []byte) {
	for len(p) > 0 && f.state != fsBroken {
		switch f.state {
		case fsBody, fsChunkData:
			k := min(int64(len(p)), f.remain)
			f.remain -= k
			p = p[k:]
			if f.remain == 0 {
				if f.state == fsBody {
					f.state = fsHeader
				} else {
					f.state = fsChunkEnd
				}
			}
		case fsChunkEnd:
			if p[0] != '\r' {
				f.fail("malformed chunked body")
				return
			}
			f.state, p = fsChunkEndLF, p[1:]
		case fsChunkEndLF:
			if p[0] != '\n' {
				f.fail("malformed chunked body")
				return
			}
			f.state, p = fsChunkSize, p[1:]
		default: // line states
			i := indexByte(p, '\n')
			chunk := p
			if i >= 0 {
				chunk = p[:i]
			}
			if len(f.line)+len(chunk) > maxLine {
				f.overlong = true
				f.line = append(f.line, chunk[:max(0, maxLine-len(f.line))]...)
			} else {
				f.line = append(f.line, chunk...)
			}
			if i < 0 {
				return
			}
			p = p[i+1:]
			// Only the CR goes: a line of spaces or tabs is not the empty
			// line that ends a header block (net/http reads it as an
			// obs-fold continuation), so it must not look like one here.
			line := strings.TrimSuffix(string(f.line), "\r")
			f.line, f.overlong = f.line[:0], false
			f.onLine(line)
		}
	}
}

func indexByte(p []byte, c byte) int {
	for i, b := range p {
		if b == c {
			return i
		}
	}
	return -1
}

func (f *h1Framer) onLine(line string) {
	switch f.state {
	case fsHeader:
		f.headerLine(line)
	case fsChunkSize:
		line = strings.TrimRight(line, " \t")
		if j := strings.IndexByte(line, ';'); j >= 0 {
			line = strings.TrimRight(line[:j], " \t")
		}
		n, ok := parseHex(line)
		if !ok {
			f.fail("malformed chunk size")
			return
		}
		if n == 0 {
			f.state = fsTrailer
			return
		}
		f.state, f.remain = fsChunkData, n
	case fsTrailer:
		if line == "" {
			f.state = fsHeader
		}
	}
}

func (f *h1Framer) headerLine(line string) {
	if !f.reqLine {
		if line == "" {
			// net/http refuses an empty request line; it closes.
			f.fail("empty request line")
			return
		}
		f.reqLine = true
		proto := line[strings.LastIndexByte(line, ' ')+1:]
		f.http10 = proto == "HTTP/1.0" || strings.HasPrefix(proto, "HTTP/0.")
		return
	}
	if line != "" {
		if line[0] == ' ' || line[0] == '\t' {
			// obs-fold continues the previous field. RFC 9112 §5.2 lets a
			// server refuse it, and Berth does: a proxy in front may
			// have read the fold differently.
			f.folded = true
			return
		}
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			return // net/http refuses the header block and closes
		}
		f.last = strings.ToLower(name)
		switch f.last {
		case "transfer-encoding":
			f.te++
			f.teVal = strings.TrimSpace(val)
		case "content-length":
			f.cl++
			v := strings.TrimSpace(val)
			if f.cl > 1 && v != f.clVal {
				f.clVal = "\x00conflict"
			} else {
				f.clVal = v
			}
		}
		return
	}
	// The empty line: the header block ends; the verdict, then the body.
	verdict := ""
	switch {
	case f.te > 0 && f.cl > 0:
		verdict = "both Content-Length and Transfer-Encoding (RFC 9112 §6.1)"
	case f.cl > 1:
		verdict = "more than one Content-Length"
	case f.folded:
		verdict = "a folded header line (obs-fold, RFC 9112 §5.2)"
	case f.te > 0 && f.http10:
		verdict = "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1)"
	}
	f.verdicts = append(f.verdicts, verdict)
	te, cl, clVal, http10 := f.te, f.cl, f.clVal, f.http10
	f.reqLine, f.http10, f.te, f.teVal, f.cl, f.clVal, f.last, f.folded = false, false, 0, "", 0, "", "", false
	switch {
	case te > 0 && !http10:
		// net/http accepts one field reading "chunked", nothing else.
		f.state = fsChunkSize
	case cl > 0:
		n, ok := parseDec(clVal)
		if !ok {
			f.fail("invalid Content-Length")
			return
		}
		if n > 0 {
			f.state, f.remain = fsBody, n
		}
	}
}

func parseHex(s string) (int64, bool) {
	if s == "" || len(s) > 16 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		if n > (1<<63-1-int64(d))/16 {
			return 0, false
		}
		n = n*16 + int64(d)
	}
	return n, true
}

func parseDec(s string) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, n >= 0
}
