package e2e

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clientFrom is an HTTP client whose connections come from the loopback
// address ip (all of 127.0.0.0/8 is local on Linux), so one test can be
// several clients to a limit kept per address.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, DialContext: d.DialContext}}
}

// TestKubernetesEnvAndRateLimit starts berth with the variables Kubernetes
// injects for a Service named berth: it serves normally, warns once
// (naming the variables, not their values), and the per-client rate limit
// set through the environment answers 429 TOOMANYREQUESTS with
// Retry-After to one client while another is unaffected.
func TestKubernetesEnvAndRateLimit(t *testing.T) {
	const burst = 20
	s := startServerWith(t, serverOptions{Env: []string{
		"BERTH_PORT=tcp://10.0.0.1:5000",
		"BERTH_SERVICE_HOST=10.0.0.1",
		"BERTH_SERVICE_PORT=5000",
		"BERTH_PORT_5000_TCP=tcp://10.0.0.1:5000",
		"BERTH_PORT_5000_TCP_ADDR=10.0.0.1",
		// Known keys still apply: one request per 1000 s, so no token
		// comes back during the test.
		"BERTH_LIMITS_RATE_LIMIT_REQUESTS_PER_SECOND=0.001",
		"BERTH_LIMITS_RATE_LIMIT_BURST=" + strconv.Itoa(burst),
	}})
	base := func() string { return "http://" + s.Addr }

	// Client b pushes and pulls an image: 3 + 4 requests.
	b := &pusher{c: clientFrom("127.0.0.2"), base: base}
	img := makeTestImage("k8s/app", "v1", []byte(`{"architecture":"amd64","os":"linux"}`), []byte("layer bytes"))
	for _, blob := range img.blobs() {
		if err := b.monolithic(img.Repo, blob); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.putManifest(img.Repo, img.Tag, img.Manifest); err != nil {
		t.Fatal(err)
	}
	if err := b.verify(img); err != nil {
		t.Fatal(err)
	}
	used := 7
	for ; used < burst; used++ {
		if _, _, err := b.expect(http.StatusOK, "GET /v2/ within the burst", "GET", "/v2/", nil); err != nil {
			t.Fatalf("request %d of a burst of %d: %v", used+1, burst, err)
		}
	}
	status, hdr, body, err := b.do("GET", "/v2/"+img.Repo+"/manifests/"+img.Tag, nil)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusTooManyRequests || specCode(body) != "TOOMANYREQUESTS" {
		t.Fatalf("past the burst: %d %s", status, body)
	}
	if ra, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || ra < 900 || ra > 1000 {
		t.Errorf("Retry-After %q, want about 1000 (s until a token at 0.001/s)", hdr.Get("Retry-After"))
	}
	var e struct {
		Errors []struct{ Code, Message string }
	}
	if json.Unmarshal(body, &e) != nil || len(e.Errors) != 1 {
		t.Errorf("429 body is not the spec's error JSON: %s", body)
	}

	// Client a, from another address, is unaffected.
	a := &pusher{c: clientFrom("127.0.0.1"), base: base}
	if err := a.verify(img); err != nil {
		t.Fatalf("another client while b is limited: %v", err)
	}

	log, err := os.ReadFile(s.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, "not configuration keys") {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) != 1 {
		t.Fatalf("%d warnings about unknown variables, want 1:\n%s", len(warnings), strings.Join(warnings, "\n"))
	}
	// The variables, sorted, and only the unknown ones (text or JSON log).
	const vars = "BERTH_PORT,BERTH_PORT_5000_TCP,BERTH_PORT_5000_TCP_ADDR,BERTH_SERVICE_HOST,BERTH_SERVICE_PORT"
	if !strings.Contains(warnings[0], "vars="+vars) && !strings.Contains(warnings[0], `"vars":"`+vars+`"`) {
		t.Errorf("the warning does not list exactly %s: %s", vars, warnings[0])
	}
	if strings.Contains(string(log), "10.0.0.1") {
		t.Errorf("the log carries a variable's value (10.0.0.1):\n%s", log)
	}
}
