package server

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/config"
)

// testCA is a certificate authority made by the test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial int64 = 1000

func nextSerial() *big.Int { serial++; return big.NewInt(serial) }

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue makes a leaf: a server certificate for 127.0.0.1, or a client
// certificate for cn.
func (ca *testCA) issue(t *testing.T, cn string, client bool) (certPEM, keyPEM []byte, sn *big.Int) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sn = nextSerial()
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), sn
}

// writeAtomic replaces path's content in one rename.
func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type tlsEnv struct {
	ca               *testCA
	dir              string
	certFile         string
	keyFile          string
	serial           *big.Int
	addr             string
	srv              *Server
	clientCert       tls.Certificate
	strangerCert     tls.Certificate // from a CA the server does not trust
	clientCAFilePath string
}

// startTLS serves HTTPS with a certificate from a test CA; the handler
// answers who the client certificate says the caller is, and the protocol.
func startTLS(t *testing.T, edit func(*config.TLS)) *tlsEnv {
	t.Helper()
	e := &tlsEnv{ca: newCA(t, "berth test CA"), dir: t.TempDir()}
	e.certFile, e.keyFile = filepath.Join(e.dir, "cert.pem"), filepath.Join(e.dir, "key.pem")
	c, k, sn := e.ca.issue(t, "registry", false)
	writeAtomic(t, e.certFile, c)
	writeAtomic(t, e.keyFile, k)
	e.serial = sn
	e.clientCAFilePath = filepath.Join(e.dir, "clients.pem")
	writeAtomic(t, e.clientCAFilePath, e.ca.pem)
	cc, ck, _ := e.ca.issue(t, "alice", true)
	e.clientCert, _ = tls.X509KeyPair(cc, ck)
	stranger := newCA(t, "someone else")
	sc, sk, _ := stranger.issue(t, "mallory", true)
	e.strangerCert, _ = tls.X509KeyPair(sc, sk)

	cfg := testConfig(t)
	cfg.HTTP.ShutdownTimeout = 5 * time.Second
	cfg.HTTP.TLS = config.TLS{CertFile: e.certFile, KeyFile: e.keyFile, ClientAuth: "none", MinVersion: "1.2"}
	if edit != nil {
		edit(&cfg.HTTP.TLS)
	}
	if cfg.HTTP.TLS.ClientAuth != "none" {
		cfg.HTTP.TLS.ClientCAFile = e.clientCAFilePath
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e.srv = newServer(t, cfg, nil)
	inner := e.srv.handler
	// Inside hardenTransport, as New puts the handlers (the inner one
	// sees the request already hardened and passes it on).
	e.srv.handler = hardenTransport(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/whoami" {
			inner.ServeHTTP(w, r)
			return
		}
		who := "anonymous"
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			who = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		fmt.Fprintf(w, "%s %s tls=%v", who, r.Proto, r.TLS != nil)
	}), cfg.HTTP, slog.New(slog.DiscardHandler))
	e.addr = serveOn(t, e.srv)
	return e
}

// client is an HTTPS client trusting pool (nil: the system's), offering
// certs, speaking HTTP/2 when the server agrees.
func (e *tlsEnv) client(pool *x509.CertPool, certs ...tls.Certificate) *http.Client {
	tc := &tls.Config{RootCAs: pool}
	if len(certs) > 0 {
		// Sent whatever CAs the server names (Go's client would otherwise
		// hold back a certificate from a CA the server did not list).
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
	}
	tr := &http.Transport{
		TLSClientConfig:   tc,
		ForceAttemptHTTP2: true,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func (e *tlsEnv) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(e.ca.cert)
	return p
}

func (e *tlsEnv) get(c *http.Client, path string) (string, error) {
	res, err := c.Get("https://" + e.addr + path)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("status %d", res.StatusCode)
	}
	return string(b), err
}

// servedSerial is the serial of the certificate a new handshake gets.
func (e *tlsEnv) servedSerial(t *testing.T) *big.Int {
	t.Helper()
	conn, err := tls.Dial("tcp", e.addr, &tls.Config{RootCAs: e.pool()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

func TestTLSServesWithTheConfiguredCertificate(t *testing.T) {
	e := startTLS(t, nil)
	if _, err := e.get(e.client(nil), "/v2/"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client without the CA: %v; want a certificate error", err)
	}
	got, err := e.get(e.client(e.pool()), "/whoami")
	if err != nil || got != "anonymous HTTP/2.0 tls=true" {
		t.Fatalf("a client with the CA: %q, %v; want HTTP/2 (ALPN) over TLS", got, err)
	}
	if got, err := e.get(e.client(e.pool()), "/v2/"); err != nil {
		t.Fatalf("GET /v2/ over HTTPS: %q %v", got, err)
	}
	// An HTTP/1.1 client over TLS is framed by Berth, and its requests
	// still carry their TLS state.
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.pool(), NextProtos: []string{"http/1.1"}}}}
	if got, err := e.get(h1, "/whoami"); err != nil || got != "anonymous HTTP/1.1 tls=true" {
		t.Fatalf("HTTP/1.1 over TLS: %q, %v", got, err)
	}
	// Plain HTTP on the TLS port is refused.
	if res, err := http.Get("http://" + e.addr + "/v2/"); err == nil && res.StatusCode == http.StatusOK {
		t.Errorf("plain HTTP answered 200 on the TLS port")
	}
}

func TestTLSMinVersion(t *testing.T) {
	e := startTLS(t, func(c *config.TLS) { c.MinVersion = "1.3" })
	c := e.client(e.pool())
	c.Transport.(*http.Transport).TLSClientConfig.MaxVersion = tls.VersionTLS12
	if _, err := e.get(c, "/v2/"); err == nil {
		t.Errorf("a TLS 1.2 client was served with min_version 1.3")
	}
	if _, err := e.get(e.client(e.pool()), "/v2/"); err != nil {
		t.Errorf("a TLS 1.3 client: %v", err)
	}
}

func TestTLSSmugglingRefused(t *testing.T) {
	e := startTLS(t, nil)
	c, err := tls.Dial("tcp", e.addr, &tls.Config{RootCAs: e.pool(), NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	io.WriteString(c, "POST /v2/r/blobs/uploads/ HTTP/1.1\r\nHost: registry\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"+
		"GET /v2/ HTTP/1.1\r\nHost: registry\r\n\r\n")
	br := bufio.NewReader(c)
	res, _ := readResponse(t, br)
	if res.StatusCode != http.StatusBadRequest || !res.Close {
		t.Errorf("status %d close %v; want 400 and close", res.StatusCode, res.Close)
	}
	if rest, _ := io.ReadAll(br); strings.Contains(string(rest), "HTTP/1.1") {
		t.Errorf("the smuggled request was answered: %q", rest)
	}
}

func TestTLSClientCertificates(t *testing.T) {
	t.Run("require", func(t *testing.T) {
		e := startTLS(t, func(c *config.TLS) { c.ClientAuth = "require" })
		if _, err := e.get(e.client(e.pool()), "/whoami"); err == nil {
			t.Errorf("a client without a certificate was served")
		}
		if _, err := e.get(e.client(e.pool(), e.strangerCert), "/whoami"); err == nil {
			t.Errorf("a client certificate from an untrusted CA was accepted")
		}
		got, err := e.get(e.client(e.pool(), e.clientCert), "/whoami")
		if err != nil || !strings.HasPrefix(got, "alice ") {
			t.Errorf("a client with a certificate: %q, %v; want alice", got, err)
		}
	})
	t.Run("verify_if_given", func(t *testing.T) {
		e := startTLS(t, func(c *config.TLS) { c.ClientAuth = "verify_if_given" })
		if got, err := e.get(e.client(e.pool()), "/whoami"); err != nil || !strings.HasPrefix(got, "anonymous ") {
			t.Errorf("no certificate: %q, %v; want served, anonymous", got, err)
		}
		if _, err := e.get(e.client(e.pool(), e.strangerCert), "/whoami"); err == nil {
			t.Errorf("a client certificate from an untrusted CA was accepted")
		}
		if got, err := e.get(e.client(e.pool(), e.clientCert), "/whoami"); err != nil || !strings.HasPrefix(got, "alice ") {
			t.Errorf("with a certificate: %q, %v; want alice", got, err)
		}
	})
}

// A certificate replaced on disk is served without a restart: at once on
// ReloadTLS (SIGHUP), and by itself within about a second otherwise. A
// pair that does not load keeps the old one.
func TestTLSCertificateReload(t *testing.T) {
	e := startTLS(t, nil)
	if got := e.servedSerial(t); got.Cmp(e.serial) != 0 {
		t.Fatalf("serial %v, want %v", got, e.serial)
	}

	// A bad pair (a key that does not match) is refused by ReloadTLS and
	// the old certificate stays.
	c2, _, _ := e.ca.issue(t, "registry", false)
	writeAtomic(t, e.certFile, c2)
	if err := e.srv.ReloadTLS(); err == nil {
		t.Errorf("ReloadTLS accepted a certificate with the wrong key")
	}
	if got := e.servedSerial(t); got.Cmp(e.serial) != 0 {
		t.Errorf("after a bad pair: serial %v, want the old %v", got, e.serial)
	}

	// A good pair through ReloadTLS: served at once.
	c3, k3, sn3 := e.ca.issue(t, "registry", false)
	writeAtomic(t, e.keyFile, k3)
	writeAtomic(t, e.certFile, c3)
	if err := e.srv.ReloadTLS(); err != nil {
		t.Fatalf("ReloadTLS: %v", err)
	}
	if got := e.servedSerial(t); got.Cmp(sn3) != 0 {
		t.Errorf("after ReloadTLS: serial %v, want %v", got, sn3)
	}

	// A good pair swapped on disk with no signal: served eventually.
	c4, k4, sn4 := e.ca.issue(t, "registry", false)
	writeAtomic(t, e.keyFile, k4)
	writeAtomic(t, e.certFile, c4)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := e.servedSerial(t)
		if got.Cmp(sn4) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the swapped certificate was not served: serial %v, want %v", got, sn4)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestReloadTLSWithoutTLS(t *testing.T) {
	s, _ := startServer(t, nil)
	if err := s.ReloadTLS(); err == nil {
		t.Error("ReloadTLS on a plain HTTP server: no error")
	}
}

// The HTTP/2 limits are set explicitly.
func TestHTTP2Limits(t *testing.T) {
	h := http2Config(config.Default().HTTP)
	if h.MaxConcurrentStreams != 100 || h.MaxReadFrameSize == 0 || h.WriteByteTimeout <= 0 {
		t.Errorf("HTTP/2 config %+v", h)
	}
}
