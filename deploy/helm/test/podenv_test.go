package test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var berthBuild struct {
	once sync.Once
	path string
	err  error
}

// berthBinary builds ./cmd/berth as the image does (static, no race
// detector) once per test binary.
func berthBinary(t *testing.T) string {
	t.Helper()
	berthBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "berth-helm-test-")
		if err != nil {
			berthBuild.err = err
			return
		}
		berthBuild.path = filepath.Join(dir, "berth")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", berthBuild.path, "./cmd/berth")
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			berthBuild.err = fmt.Errorf("go build ./cmd/berth: %v\n%s", err, out)
		}
	})
	if berthBuild.err != nil {
		t.Fatal(berthBuild.err)
	}
	return berthBuild.path
}

// serviceEnv is what the kubelet puts in a container's environment for a
// Service (pkg/kubelet/envvars): NAME_SERVICE_HOST and _PORT, a
// _SERVICE_PORT_<PORTNAME> per named port, and the Docker-link style
// NAME_PORT, NAME_PORT_<port>_<PROTO>{,_PROTO,_PORT,_ADDR}.
func serviceEnv(name, ip string, ports []corev1.ServicePort) []string {
	n := strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	env := []string{
		n + "_SERVICE_HOST=" + ip,
		n + "_SERVICE_PORT=" + strconv.Itoa(int(ports[0].Port)),
	}
	for _, p := range ports {
		if p.Name != "" {
			env = append(env, n+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_"))+"="+strconv.Itoa(int(p.Port)))
		}
	}
	first := ports[0]
	env = append(env, fmt.Sprintf("%s_PORT=%s://%s:%d", n, strings.ToLower(string(protocol(first))), ip, first.Port))
	for _, p := range ports {
		proto := strings.ToLower(string(protocol(p)))
		pre := fmt.Sprintf("%s_PORT_%d_%s", n, p.Port, strings.ToUpper(proto))
		env = append(env,
			fmt.Sprintf("%s=%s://%s:%d", pre, proto, ip, p.Port),
			pre+"_PROTO="+proto,
			fmt.Sprintf("%s_PORT=%d", pre, p.Port),
			pre+"_ADDR="+ip)
	}
	return env
}

func protocol(p corev1.ServicePort) corev1.Protocol {
	if p.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return p.Protocol
}

// podEnv is the container's whole environment as Kubernetes would start it:
// the image's PATH, HOSTNAME, HOME, the container's env (fieldRefs
// resolved), the kubernetes Service's variables and — with service links
// on, the default — those of the release's own Service.
func podEnv(t *testing.T, r *rendered, home string) []string {
	t.Helper()
	pod := r.Deployment.Spec.Template.Spec
	c := pod.Containers[0]
	env := []string{"PATH=/usr/bin:/bin", "HOSTNAME=" + release + "-5d8f7c9b4-x2k8q", "HOME=" + home}
	env = append(env, serviceEnv("kubernetes", "10.0.0.100", []corev1.ServicePort{{Name: "https", Port: 443}})...)
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		env = append(env, serviceEnv(r.Service.Name, "10.0.0.1", r.Service.Spec.Ports)...)
	}
	if len(c.EnvFrom) > 0 {
		t.Fatalf("envFrom is not modelled by this test: %+v", c.EnvFrom)
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil:
			v := map[string]string{"metadata.name": release + "-5d8f7c9b4-x2k8q", "metadata.namespace": namespace, "status.podIP": "10.1.2.3"}[e.ValueFrom.FieldRef.FieldPath]
			env = append(env, e.Name+"="+v)
		default:
			t.Fatalf("env %s: valueFrom %+v is not modelled by this test", e.Name, e.ValueFrom)
		}
	}
	return env
}

// rewritePaths moves every absolute path the config names under root, so
// the rendered config runs here as it would in the pod.
func rewritePaths(v any, root string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = rewritePaths(e, root)
		}
	case []any:
		for i, e := range x {
			x[i] = rewritePaths(e, root)
		}
	case string:
		if strings.HasPrefix(x, "/etc/berth/") || x == "/var/lib/berth" || strings.HasPrefix(x, "/var/lib/berth/") {
			return filepath.Join(root, x)
		}
	}
	return v
}

// secretFile makes a stand-in for a mounted Secret's file.
func secretFile(t *testing.T, path string) {
	t.Helper()
	var data []byte
	switch filepath.Base(path) {
	case "htpasswd":
		data = nil // no users yet: valid, and nobody can log in
	case "token-key.pem":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		data = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	default:
		t.Fatalf("no stand-in for the secret file %s", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o440); err != nil {
		t.Fatal(err)
	}
}

// TestPodEnvironmentStartsBerth runs the real berth binary with exactly the
// environment Kubernetes would give the rendered pod — BERTH_PORT=tcp://…,
// BERTH_SERVICE_HOST and the rest for the Service named after the release —
// and the rendered config.yaml, and checks that it serves what the probes
// and the ServiceMonitor ask for.
func TestPodEnvironmentStartsBerth(t *testing.T) {
	for _, name := range []string{"default", "single"} {
		t.Run(name, func(t *testing.T) {
			bin := berthBinary(t)
			r := render(t, profiles[name])
			if r.Service.Name != "berth" {
				t.Fatalf("release %q should make a Service named berth, got %q", release, r.Service.Name)
			}
			pod := r.Deployment.Spec.Template.Spec
			c := pod.Containers[0]
			root := t.TempDir()
			data := filepath.Join(root, "var/lib/berth")
			if err := os.MkdirAll(data, 0o750); err != nil {
				t.Fatal(err)
			}

			cfg := configOf(t, r)
			cfg = rewritePaths(cfg, root).(map[string]any)
			cfg["http"].(map[string]any)["addr"] = "127.0.0.1:0"
			// Port 0 (a port picked here could be taken before berth binds
			// it): the log says which one berth got.
			metrics := false
			if m, ok := cfg["metrics"].(map[string]any); ok && m["addr"] != nil {
				metrics = true
				m["addr"] = "127.0.0.1:0"
			}
			cfgYAML, err := yaml.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			cfgPath := filepath.Join(root, "etc/berth/config.yaml")
			if err := os.MkdirAll(filepath.Dir(cfgPath), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(cfgPath, cfgYAML, 0o644); err != nil {
				t.Fatal(err)
			}
			// The Secrets the pod mounts, as files.
			vols := map[string]corev1.Volume{}
			for _, v := range pod.Volumes {
				vols[v.Name] = v
			}
			for _, m := range c.VolumeMounts {
				if s := vols[m.Name].Secret; s != nil {
					for _, it := range s.Items {
						secretFile(t, filepath.Join(root, m.MountPath, it.Path))
					}
				}
			}

			args := append([]string(nil), c.Args...)
			for i, a := range args {
				if a == "/etc/berth/config.yaml" {
					args[i] = cfgPath
				}
			}
			addrFile := filepath.Join(root, "addr")
			args = append(args, "--addr-file", addrFile)
			env := podEnv(t, r, data)
			sort.Strings(env)
			t.Logf("environment:\n%s", strings.Join(env, "\n"))
			if !contains(env, "BERTH_PORT=tcp://10.0.0.1:5000") || !contains(env, "BERTH_PORT_5000_TCP_ADDR=10.0.0.1") || !contains(env, "BERTH_SERVICE_HOST=10.0.0.1") {
				t.Fatalf("the modelled environment lacks the service links: %v", env)
			}

			log := &lockedBuffer{}
			cmd := exec.Command(bin, args...)
			cmd.Env = env
			cmd.Dir = data
			cmd.Stdout, cmd.Stderr = log, log
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			stopped := false
			defer func() {
				if !stopped {
					cmd.Process.Kill()
					<-exited
				}
			}()

			addr := waitAddr(t, addrFile, exited, log)
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
			get := func(url string) (int, string) {
				resp, err := client.Get(url)
				if err != nil {
					t.Errorf("GET %s: %v", url, err)
					return 0, ""
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			if code, _ := get("http://" + addr + "/v2/"); code != 200 && code != 401 {
				t.Errorf("GET /v2/: %d", code)
			}
			for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
				if code, body := get("http://" + addr + p.HTTPGet.Path); code != 200 {
					t.Errorf("probe GET %s: %d %s", p.HTTPGet.Path, code, body)
				}
			}
			if metrics {
				if code, body := get("http://" + metricsAddr(t, log, exited) + "/metrics"); code != 200 || !strings.Contains(body, "# HELP") {
					t.Errorf("GET /metrics on the metrics port: %d %.200s", code, body)
				}
			}
			if !strings.Contains(log.String(), "BERTH_PORT") {
				t.Errorf("berth did not say it ignores BERTH_PORT:\n%s", log.String())
			}

			stopped = true
			cmd.Process.Signal(syscall.SIGTERM)
			if err := <-exited; err != nil {
				t.Errorf("berth did not exit cleanly on SIGTERM: %v\n%s", err, log.String())
			}
		})
	}
}

// metricsAddr waits for berth's "metrics and probes listening" log line
// and returns the address in it.
func metricsAddr(t *testing.T, log *lockedBuffer, exited chan error) string {
	t.Helper()
	re := regexp.MustCompile(`metrics and probes listening.*?(127\.0\.0\.1:[0-9]+)`)
	end := time.Now().Add(time.Minute)
	for time.Now().Before(end) {
		if m := re.FindStringSubmatch(log.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-exited:
			exited <- err // for the test's deferred clean-up
			t.Fatalf("berth exited before its metrics listener was up: %v\n%s", err, log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("no metrics listener in berth's log:\n%s", log.String())
	return ""
}

// lockedBuffer collects berth's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// waitAddr waits for berth to write its address, or to exit.
func waitAddr(t *testing.T, path string, exited chan error, log *lockedBuffer) string {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			return strings.TrimSpace(string(b))
		}
		select {
		case err := <-exited:
			exited <- err // for the test's deferred clean-up
			t.Fatalf("berth exited before serving (%v) with the pod's environment:\n%s", err, log.String())
		case <-deadline:
			t.Fatalf("berth did not start within 60s:\n%s", log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
