package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/config"
)

// tlsReloaders holds the certificate reloader of each Server serving TLS
// (Serve registers it, ReloadTLS finds it). A map rather than a field:
// the Server struct belongs to server.go.
var tlsReloaders sync.Map // *Server → *certReloader

// ReloadTLS re-reads the certificate and key files now (berth serve calls
// it on SIGHUP). A pair that does not load is refused: the certificate
// served so far stays, and the error says why.
func (s *Server) ReloadTLS() error {
	v, ok := tlsReloaders.Load(s)
	if !ok {
		return errors.New("reload TLS: the server is not serving TLS")
	}
	return v.(*certReloader).reload()
}

// certCheckEvery bounds how often a handshake looks at the certificate
// files for a change.
const certCheckEvery = time.Second

// certReloader serves the configured certificate: handshakes read it
// through GetCertificate from an atomically swapped pointer, so a reload
// never disturbs one in progress.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	cert      atomic.Pointer[tls.Certificate]
	lastCheck atomic.Int64 // unix nanoseconds of the last look at the files

	mu    sync.Mutex // serialises loads
	stamp [2]fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

func newCertReloader(certFile, keyFile string, logger *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, log: logger}
	if err := c.reload(); err != nil {
		return nil, err
	}
	c.lastCheck.Store(time.Now().UnixNano())
	return c, nil
}

func (c *certReloader) stamps() ([2]fileStamp, error) {
	a, err := stampOf(c.certFile)
	if err != nil {
		return [2]fileStamp{}, err
	}
	b, err := stampOf(c.keyFile)
	return [2]fileStamp{a, b}, err
}

// reload loads the pair; a pair that fails keeps the current certificate.
func (c *certReloader) reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The stamp is taken before reading: a write racing the read changes
	// it again, and the next check reloads.
	st, _ := c.stamps()
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err == nil && len(cert.Certificate) > 0 {
		cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
	}
	if err != nil {
		// Remember the stamp anyway: the bad pair is not retried (and
		// logged) every second, only when the files change again (a
		// certificate and its key are rarely replaced at the same instant).
		c.stamp = st
		err = fmt.Errorf("load TLS certificate %s and key %s: %w", c.certFile, c.keyFile, err)
		if c.cert.Load() != nil {
			c.log.Error("TLS certificate not reloaded; serving the previous one", "err", err)
		}
		return err
	}
	c.stamp = st
	c.cert.Store(&cert)
	if c.log != nil {
		c.log.Info("TLS certificate loaded", "subject", cert.Leaf.Subject.String(),
			"serial", cert.Leaf.SerialNumber.String(), "not_after", cert.Leaf.NotAfter)
	}
	return nil
}

// maybeReload reloads if the files changed since the last load; it looks
// at most once per certCheckEvery, on the handshake that finds the time
// has come (the others go on with the current certificate).
func (c *certReloader) maybeReload() {
	now := time.Now().UnixNano()
	last := c.lastCheck.Load()
	if now-last < int64(certCheckEvery) || !c.lastCheck.CompareAndSwap(last, now) {
		return
	}
	st, err := c.stamps()
	if err != nil {
		return // a file being replaced; the next check sees the new one
	}
	c.mu.Lock()
	changed := st != c.stamp
	c.mu.Unlock()
	if changed {
		_ = c.reload() // logged
	}
}

func (c *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.maybeReload()
	return c.cert.Load(), nil
}

// serverTLSConfig builds the TLS configuration cfg describes, with a
// reloader for its certificate.
func serverTLSConfig(cfg config.TLS, logger *slog.Logger) (*tls.Config, *certReloader, error) {
	rl, err := newCertReloader(cfg.CertFile, cfg.KeyFile, logger)
	if err != nil {
		return nil, nil, err
	}
	tc := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: rl.getCertificate,
		// h2 first: HTTP/2 for the clients that speak it.
		NextProtos: []string{"h2", "http/1.1"},
	}
	if cfg.MinVersion == "1.3" {
		tc.MinVersion = tls.VersionTLS13
	}
	switch cfg.ClientAuth {
	case "", "none":
		tc.ClientAuth = tls.NoClientCert
	case "verify_if_given":
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	case "require":
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		return nil, nil, fmt.Errorf("http.tls.client_auth: %q is not one of none, verify_if_given, require", cfg.ClientAuth)
	}
	if tc.ClientAuth != tls.NoClientCert {
		pem, err := os.ReadFile(cfg.ClientCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("http.tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("http.tls.client_ca_file: %s holds no PEM certificate", cfg.ClientCAFile)
		}
		tc.ClientCAs = pool
	}
	return tc, rl, nil
}

// http2Config sets the HTTP/2 server's limits explicitly rather than
// trusting defaults. Rapid reset (CVE-2023-44487: streams opened and
// reset at once, so MaxConcurrentStreams never bites) is mitigated by Go
// itself since 1.21.3 / 1.20.10 (golang/go#63417: a connection's handlers
// in flight are bounded by MaxConcurrentStreams whatever the resets); a
// small MaxConcurrentStreams keeps what one connection can start small.
func http2Config(cfg config.HTTP) *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxConcurrentStreams:          100,
		MaxReadFrameSize:              1 << 20,
		MaxDecoderHeaderTableSize:     4 << 10,
		MaxEncoderHeaderTableSize:     4 << 10,
		MaxReceiveBufferPerConnection: 8 << 20,
		MaxReceiveBufferPerStream:     1 << 20,
		SendPingTimeout:               time.Minute,
		PingTimeout:                   15 * time.Second,
		// The HTTP/2 form of http.write_stall_timeout: a connection on
		// which nothing can be written for this long is closed.
		WriteByteTimeout: cfg.WriteStallTimeout,
	}
}

// tlsListener does the TLS handshakes itself, off the accept loop (each
// bounded by timeout), so it can hand net/http a *tls.Conn when HTTP/2 was
// negotiated (net/http serves h2 on those) and, for HTTP/1.x, a framedConn
// over the decrypted stream (see hardenTransport; it restores r.TLS).
type tlsListener struct {
	net.Listener
	cfg     *tls.Config
	timeout time.Duration
	log     *slog.Logger

	conns chan net.Conn
	errs  chan error
	done  chan struct{}
	once  sync.Once
}

func newTLSListener(ln net.Listener, cfg *tls.Config, timeout time.Duration, logger *slog.Logger) *tlsListener {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	l := &tlsListener{Listener: ln, cfg: cfg, timeout: timeout, log: logger,
		conns: make(chan net.Conn), errs: make(chan error), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

func (l *tlsListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.errs <- err:
			case <-l.done:
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // net/http backs off on temporary errors and calls Accept again
		}
		go l.handshake(c)
	}
}

func (l *tlsListener) handshake(c net.Conn) {
	tc := tls.Server(c, l.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		l.log.Debug("TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	var out net.Conn = tc
	if st := tc.ConnectionState(); st.NegotiatedProtocol != "h2" {
		fc := newFramedConn(tc)
		fc.tlsState = &st
		out = fc
	}
	select {
	case l.conns <- out:
	case <-l.done:
		tc.Close()
	}
}

func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *tlsListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// framingListener frames every plain HTTP/1.x connection it accepts.
type framingListener struct{ net.Listener }

func (l framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newFramedConn(c), nil
}

// connContext makes a connection's framedConn reachable from its
// requests.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framedConn); ok {
		return context.WithValue(ctx, framedConnKey{}, fc)
	}
	return ctx
}
