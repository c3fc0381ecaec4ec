package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testCA is a certificate authority made by the test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Berth test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue makes a leaf certificate: a server's for 127.0.0.1, or a
// client's with cn as its subject. It returns the PEM certificate and key.
func (ca *testCA) issue(t testing.TB, serial int64, cn string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// writeAtomic replaces path's content in one rename, as cert managers do.
func writeAtomic(t testing.TB, path string, b []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// servedSerial is the serial number of the certificate berth presents.
func servedSerial(t testing.TB, addr string, roots *x509.CertPool) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// waitSerial waits (bounded) until berth presents the certificate with
// serial want.
func waitSerial(t testing.TB, addr string, roots *x509.CertPool, want int64, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := servedSerial(t, addr, roots)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: berth still serves serial %d, want %d", what, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTLS: berth serves HTTPS from a CA the test makes; a client without
// the CA fails, one with it succeeds (over HTTP/2); a client certificate
// authenticates its common name as a user; certificates replaced on disk,
// or on SIGHUP, are served without a restart.
func TestTLS(t *testing.T) {
	tools := newToolRunner(t)
	tools.need(t, "crane", "skopeo")
	dir := t.TempDir()
	ca := newTestCA(t)
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	c, k := ca.issue(t, 100, "berth", true)
	writeAtomic(t, certFile, c)
	writeAtomic(t, keyFile, k)
	htpasswd := filepath.Join(dir, "htpasswd")
	writeHtpasswd(t, htpasswd, "reader")
	cfg := `http:
  tls:
    cert_file: ` + certFile + `
    key_file: ` + keyFile + `
    client_ca_file: ` + caFile + `
    client_auth: verify_if_given
auth:
  htpasswd: ` + htpasswd + `
  access:
    - repositories: ["team/**"]
      users:
        writer: [pull, push]
        reader: [pull]
`
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	srv := startServerWith(t, serverOptions{Config: cfg, HTTPS: true, Client: client})
	addr := srv.Addr

	// Plain HTTP is not served on the TLS port.
	if resp, err := httpClient().Get("http://" + addr + "/v2/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("plain HTTP on the TLS port: %s", resp.Status)
		}
	}
	// With the CA: HTTP/2, and the registry answers (401: auth is on).
	resp, err := client.Get("https://" + addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v2/ over TLS: %s %s, want HTTP/2.0 401", resp.Proto, resp.Status)
	}

	// A real client without the CA fails; with it (SSL_CERT_FILE), it works.
	out := tools.mustFail(t, "crane", "catalog", addr)
	if !strings.Contains(out, "certificate") {
		t.Errorf("crane without the CA failed, but not on the certificate:\n%s", out)
	}
	if res := tools.tryEnv(t, "", []string{"SSL_CERT_FILE=" + caFile}, "crane", "auth", "login", addr, "-u", "reader", "-p", password("reader")); res.Err != nil {
		t.Fatalf("crane login with the CA:\n%s", res)
	}
	if res := tools.tryEnv(t, "", []string{"SSL_CERT_FILE=" + caFile}, "crane", "catalog", addr); res.Err != nil {
		t.Fatalf("crane catalog with the CA:\n%s", res)
	}

	// Client certificate: skopeo's cert dir with ca.crt and a client pair
	// whose CN is "writer" pushes; with the CA alone it is anonymous and
	// refused.
	work := t.TempDir()
	tarPath := writeLayerTar(t, work, "layer.tar", map[string][]byte{"tls": []byte("over TLS\n")})
	layout := filepath.Join(work, "oci")
	if res := tools.tryEnv(t, "", []string{"SSL_CERT_FILE=" + caFile}, "crane", "append", "--oci-empty-base", "-f", tarPath, "-t", "localhost/tls:1", "-o", filepath.Join(work, "img.tar")); res.Err != nil {
		t.Fatalf("%s", res)
	}
	tools.run(t, "skopeo", "copy", "--quiet", "docker-archive:"+filepath.Join(work, "img.tar"), "oci:"+layout+":img")
	caOnly, withCert := filepath.Join(work, "ca-only"), filepath.Join(work, "with-cert")
	for _, d := range []string{caOnly, withCert} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "ca.crt"), ca.pem, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cc, ck := ca.issue(t, 200, "writer", false)
	writeAtomic(t, filepath.Join(withCert, "client.cert"), cc)
	writeAtomic(t, filepath.Join(withCert, "client.key"), ck)
	tools.mustFail(t, "skopeo", "copy", "--quiet", "--dest-cert-dir", caOnly, "oci:"+layout+":img", "docker://"+addr+"/team/tls:1")
	tools.run(t, "skopeo", "copy", "--quiet", "--dest-cert-dir", withCert, "oci:"+layout+":img", "docker://"+addr+"/team/tls:1")
	tools.run(t, "skopeo", "inspect", "--cert-dir", withCert, "--raw", "docker://"+addr+"/team/tls:1")
	// A client certificate from another CA is refused at the handshake.
	other := newTestCA(t)
	oc, ok := other.issue(t, 300, "writer", false)
	pair, err := tls.X509KeyPair(oc, ok)
	if err != nil {
		t.Fatal(err)
	}
	bad := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}}}
	if resp, err := bad.Get("https://" + addr + "/v2/"); err == nil {
		resp.Body.Close()
		t.Errorf("a client certificate from an unknown CA was accepted: %s", resp.Status)
	}

	// Certificate rotation: a new pair on disk is served without a restart;
	// another one after SIGHUP.
	if got := servedSerial(t, addr, roots); got != 100 {
		t.Fatalf("served serial %d, want 100", got)
	}
	c, k = ca.issue(t, 101, "berth", true)
	writeAtomic(t, keyFile, k)
	writeAtomic(t, certFile, c)
	waitSerial(t, addr, roots, 101, "after replacing the files")
	c, k = ca.issue(t, 102, "berth", true)
	writeAtomic(t, keyFile, k)
	writeAtomic(t, certFile, c)
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitSerial(t, addr, roots, 102, "after SIGHUP")
	// Still serving requests.
	if res := tools.tryEnv(t, "", []string{"SSL_CERT_FILE=" + caFile}, "crane", "catalog", addr); res.Err != nil {
		t.Fatalf("crane catalog after rotation:\n%s", res)
	}
}
