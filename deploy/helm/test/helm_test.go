package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/yaml"
)

const (
	release   = "berth"
	namespace = "registry"
)

// profiles are the chart's values profiles: the defaults alone, and the
// two complete examples under ci/.
var profiles = map[string][]string{
	"default":   nil,
	"single":    {"ci/single-values.yaml"},
	"scale-out": {"ci/scale-out-values.yaml"},
}

// repoRoot is the Berth checkout holding this module.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cmd", "berth")); err != nil {
		t.Fatalf("%s is not the Berth checkout: %v", dir, err)
	}
	return dir
}

func chartDir(t testing.TB) string { return filepath.Join(repoRoot(t), "deploy", "helm", "berth") }

// helmBin is the pinned helm in .tools/bin (scripts/install-deps.sh), else
// one on PATH. Missing helm fails: the chart must be checked.
func helmBin(t testing.TB) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), ".tools", "bin", "helm")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	t.Fatal("helm not found in .tools/bin or on PATH; run ./scripts/install-deps.sh")
	return ""
}

func helm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helmBin(t), args...)
	cmd.Dir = chartDir(t)
	// A private helm home: no repositories or plugins from the machine.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

func valuesArgs(files []string, set ...string) []string {
	var args []string
	for _, f := range files {
		args = append(args, "-f", f)
	}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return args
}

func TestLintStrict(t *testing.T) {
	for name, files := range profiles {
		t.Run(name, func(t *testing.T) {
			out, err := helm(t, append([]string{"lint", "--strict", "."}, valuesArgs(files)...)...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Fatalf("helm lint: %s", out)
			}
		})
	}
}

// serviceMonitor is the part of the Prometheus operator's CRD the chart
// sets, decoded strictly so a misspelt field fails.
type serviceMonitor struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Spec       struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// rendered is one profile's objects, by kind.
type rendered struct {
	Deployment     *appsv1.Deployment
	Service        *corev1.Service
	ConfigMap      *corev1.ConfigMap
	ServiceAccount *corev1.ServiceAccount
	PVC            *corev1.PersistentVolumeClaim
	PDB            *policyv1.PodDisruptionBudget
	Ingress        *networkingv1.Ingress
	ServiceMonitor *serviceMonitor
}

var (
	decoderOnce sync.Once
	decoder     runtime.Decoder
)

// strictDecoder is apimachinery's YAML serializer in strict mode: unknown
// and duplicate fields are errors, as the API server's strict field
// validation makes them.
func strictDecoder(t testing.TB) runtime.Decoder {
	decoderOnce.Do(func() {
		scheme := runtime.NewScheme()
		for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, networkingv1.AddToScheme, policyv1.AddToScheme} {
			if err := add(scheme); err != nil {
				t.Fatal(err)
			}
		}
		decoder = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme,
			kjson.SerializerOptions{Yaml: true, Strict: true})
	})
	return decoder
}

// splitDocs splits a YAML stream at its "---" lines, dropping documents
// that hold only comments.
func splitDocs(s string) []string {
	var docs []string
	var cur strings.Builder
	flush := func() {
		doc := cur.String()
		cur.Reset()
		for _, line := range strings.Split(doc, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				docs = append(docs, doc)
				return
			}
		}
	}
	for _, line := range strings.Split(s, "\n") {
		if strings.TrimRight(line, " ") == "---" {
			flush()
			continue
		}
		cur.WriteString(line + "\n")
	}
	flush()
	return docs
}

func render(t *testing.T, files []string, set ...string) *rendered {
	t.Helper()
	out, err := helm(t, append([]string{"template", release, ".", "--namespace", namespace}, valuesArgs(files, set...)...)...)
	if err != nil {
		t.Fatal(err)
	}
	r := &rendered{}
	for _, doc := range splitDocs(out) {
		var head struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		if head.Kind == "ServiceMonitor" {
			js, err := yaml.YAMLToJSON([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(js))
			dec.DisallowUnknownFields()
			var sm serviceMonitor
			if err := dec.Decode(&sm); err != nil || sm.APIVersion != "monitoring.coreos.com/v1" {
				t.Fatalf("ServiceMonitor: %v (%s)\n%s", err, sm.APIVersion, doc)
			}
			r.ServiceMonitor = &sm
			continue
		}
		obj, gvk, err := strictDecoder(t).Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("strict decode of %s %s: %v\n%s", head.APIVersion, head.Kind, err, doc)
		}
		var dup bool
		switch o := obj.(type) {
		case *appsv1.Deployment:
			dup, r.Deployment = r.Deployment != nil, o
		case *corev1.Service:
			dup, r.Service = r.Service != nil, o
		case *corev1.ConfigMap:
			dup, r.ConfigMap = r.ConfigMap != nil, o
		case *corev1.ServiceAccount:
			dup, r.ServiceAccount = r.ServiceAccount != nil, o
		case *corev1.PersistentVolumeClaim:
			dup, r.PVC = r.PVC != nil, o
		case *policyv1.PodDisruptionBudget:
			dup, r.PDB = r.PDB != nil, o
		case *networkingv1.Ingress:
			dup, r.Ingress = r.Ingress != nil, o
		default:
			t.Fatalf("the chart renders a %s the test does not know", gvk)
		}
		if dup {
			t.Fatalf("two %s objects", gvk.Kind)
		}
	}
	for name, missing := range map[string]bool{"Deployment": r.Deployment == nil, "Service": r.Service == nil, "ConfigMap": r.ConfigMap == nil} {
		if missing {
			t.Fatalf("no %s rendered", name)
		}
	}
	return r
}

func TestTemplateProfiles(t *testing.T) {
	for name, files := range profiles {
		t.Run(name, func(t *testing.T) {
			r := render(t, files)
			single := name != "scale-out"
			d := r.Deployment
			pod := d.Spec.Template.Spec
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers", len(pod.Containers))
			}
			c := pod.Containers[0]

			// Replicas and rollout.
			wantReplicas := int32(1)
			wantStrategy := appsv1.RecreateDeploymentStrategyType
			if !single {
				wantReplicas, wantStrategy = 3, appsv1.RollingUpdateDeploymentStrategyType
			}
			if d.Spec.Replicas == nil || *d.Spec.Replicas != wantReplicas || d.Spec.Strategy.Type != wantStrategy {
				t.Errorf("replicas %v strategy %s; want %d %s", d.Spec.Replicas, d.Spec.Strategy.Type, wantReplicas, wantStrategy)
			}

			// Security context: non-root 65532, read-only root, nothing extra.
			psc, sc := pod.SecurityContext, c.SecurityContext
			if psc == nil || sc == nil {
				t.Fatal("no security context")
			}
			if !isTrue(psc.RunAsNonRoot) || !is(psc.RunAsUser, 65532) || !is(psc.FSGroup, 65532) ||
				psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod security context: %+v", psc)
			}
			if !isTrue(sc.RunAsNonRoot) || !is(sc.RunAsUser, 65532) || !is(sc.RunAsGroup, 65532) ||
				!isTrue(sc.ReadOnlyRootFilesystem) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0 ||
				sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("container security context: %+v", sc)
			}
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Error("the service account token is mounted; Berth never uses it")
			}

			// Probes on /livez and /readyz at the registry port.
			for what, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
				want := "/livez"
				if what == "readiness" {
					want = "/readyz"
				}
				if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != want || p.HTTPGet.Port.String() != "http" {
					t.Errorf("%s probe: %+v; want GET %s on port http", what, p, want)
				}
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
				t.Errorf("no resource requests: %+v", c.Resources)
			}
			if !strings.HasPrefix(c.Image, "ghcr.io/berth-dev/berth:") {
				t.Errorf("image %q", c.Image)
			}
			if strings.Join(c.Args, " ") != "serve --config /etc/berth/config.yaml" || len(c.Command) != 0 {
				t.Errorf("command %q args %q; want the image's entrypoint with serve --config /etc/berth/config.yaml", c.Command, c.Args)
			}

			// Volumes: config from the ConfigMap, /tmp an emptyDir, data a
			// claim in single mode.
			mounts := map[string]corev1.VolumeMount{}
			for _, m := range c.VolumeMounts {
				mounts[m.MountPath] = m
			}
			vols := map[string]corev1.Volume{}
			for _, v := range pod.Volumes {
				vols[v.Name] = v
			}
			if m, ok := mounts["/etc/berth/config.yaml"]; !ok || m.SubPath != "config.yaml" || vols[m.Name].ConfigMap == nil || vols[m.Name].ConfigMap.Name != r.ConfigMap.Name {
				t.Errorf("config mount %+v", m)
			}
			if m, ok := mounts["/tmp"]; !ok || vols[m.Name].EmptyDir == nil {
				t.Errorf("/tmp is not an emptyDir: %+v", m)
			}
			data := vols[mounts["/var/lib/berth"].Name]
			if single {
				if r.PVC == nil || data.PersistentVolumeClaim == nil || data.PersistentVolumeClaim.ClaimName != r.PVC.Name {
					t.Errorf("single mode: data volume %+v, claim %v", data, r.PVC)
				}
				if r.PVC != nil && r.PVC.Spec.Resources.Requests.Storage().IsZero() {
					t.Error("the claim requests no storage")
				}
			} else {
				if r.PVC != nil || data.EmptyDir == nil {
					t.Errorf("scale-out mode keeps no claim: data %+v, claim %v", data, r.PVC)
				}
			}
			// Every secret volume is mounted read-only.
			for _, m := range c.VolumeMounts {
				if v := vols[m.Name]; v.Secret != nil && !m.ReadOnly {
					t.Errorf("secret %s mounted writable", v.Secret.SecretName)
				}
			}

			// The Service selects the pods and names the container's ports.
			for k, v := range r.Service.Spec.Selector {
				if d.Spec.Template.Labels[k] != v {
					t.Errorf("Service selector %s=%s does not match the pod", k, v)
				}
			}
			if r.Service.Name != release || r.Service.Spec.Ports[0].Port != 5000 || r.Service.Spec.Ports[0].TargetPort.String() != "http" {
				t.Errorf("Service %s ports %+v", r.Service.Name, r.Service.Spec.Ports)
			}
			if r.PDB == nil {
				t.Error("no PodDisruptionBudget")
			}
			cfg := configOf(t, r)
			if cfg["storage"].(map[string]any)["dir"] != "/var/lib/berth" {
				t.Errorf("config storage: %v", cfg["storage"])
			}
			switch name {
			case "single":
				if r.Ingress == nil || r.ServiceMonitor == nil {
					t.Fatalf("profile single enables an Ingress and a ServiceMonitor: %v %v", r.Ingress, r.ServiceMonitor)
				}
				b := r.Ingress.Spec.Rules[0].HTTP.Paths[0].Backend.Service
				if b.Name != r.Service.Name || b.Port.Name != "http" {
					t.Errorf("Ingress backend %+v", b)
				}
				ep := r.ServiceMonitor.Spec.Endpoints
				if len(ep) != 1 || ep[0].Port != "metrics" || ep[0].Path != "/metrics" {
					t.Errorf("ServiceMonitor endpoints %+v", ep)
				}
				if !hasPort(r.Service, "metrics") {
					t.Error("the Service has no metrics port for the ServiceMonitor")
				}
			case "scale-out":
				if _, ok := cfg["metadata"].(map[string]any)["postgres"]; !ok {
					t.Errorf("scale-out config has no metadata.postgres: %v", cfg)
				}
				if _, ok := cfg["storage"].(map[string]any)["s3"]; !ok {
					t.Errorf("scale-out config has no storage.s3: %v", cfg)
				}
				if r.PDB.Spec.MinAvailable == nil || r.PDB.Spec.MinAvailable.IntValue() != 2 {
					t.Errorf("PDB %+v", r.PDB.Spec)
				}
				if pod.Containers[0].LivenessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS {
					t.Error("with TLS in Berth the probes must speak HTTPS")
				}
			}
		})
	}
}

func hasPort(s *corev1.Service, name string) bool {
	for _, p := range s.Spec.Ports {
		if p.Name == name {
			return true
		}
	}
	return false
}

func configOf(t *testing.T, r *rendered) map[string]any {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(r.ConfigMap.Data["config.yaml"]), &cfg); err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	return cfg
}

func isTrue(b *bool) bool          { return b != nil && *b }
func is(n *int64, want int64) bool { return n != nil && *n == want }

// TestRenderRefuses: values that cannot work fail the render with a message
// that says what to set.
func TestRenderRefuses(t *testing.T) {
	for name, c := range map[string]struct {
		set  []string
		want string
	}{
		"scale-out without stores": {[]string{"mode=scale-out", "replicaCount=3"}, "issue 10"},
		"scale-out without bucket": {[]string{"mode=scale-out", "replicaCount=3", "storage.s3.region=x", "metadata.postgres.existingSecret=pg"}, "storage.s3.bucket is required"},
		"scale-out without dsn":    {[]string{"mode=scale-out", "replicaCount=3", "storage.s3.bucket=b", "metadata.postgres.database=x"}, "metadata.postgres.existingSecret is required"},
		"scale-out, one replica":   {[]string{"mode=scale-out", "storage.s3.bucket=b", "metadata.postgres.existingSecret=pg"}, "replicaCount of 2 or more"},
		"scale-out token no key":   {[]string{"mode=scale-out", "replicaCount=2", "storage.s3.bucket=b", "metadata.postgres.existingSecret=pg", "auth.token.enabled=true"}, "same key"},
		"single, two replicas":     {[]string{"replicaCount=2"}, "exactly one replica"},
		"unknown mode":             {[]string{"mode=cluster"}, `not "cluster"`},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := helm(t, append([]string{"template", release, "."}, valuesArgs(nil, c.set...)...)...)
			if err == nil {
				t.Fatalf("rendered:\n%s", out)
			}
			if !strings.Contains(out, c.want) {
				t.Fatalf("message lacks %q:\n%s", c.want, out)
			}
		})
	}
}
