package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// authClientsPolicy: team/** needs credentials for everything; apps/** is
// public to pull (a public Flatpak remote), pushing needs credentials.
const authClientsPolicy = `
  access:
    - repositories: ["team/**", "apps/**"]
      users:
        writer: [pull, push, overwrite, delete]
        reader: [pull]
    - repositories: ["apps/**"]
      anonymous: [pull]
`

// startAuthServer runs berth with authClientsPolicy over htpasswd users
// writer and reader, with Berth's token service on or off.
func startAuthServer(t *testing.T, bearer bool) *server {
	t.Helper()
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	writeHtpasswd(t, htpasswd, "writer", "reader")
	cfg := "auth:\n  htpasswd: " + htpasswd + "\n" + authClientsPolicy
	if bearer {
		cfg += "  token:\n    enabled: true\n"
	}
	return startServerWith(t, serverOptions{Config: cfg})
}

// TestAuthClients: the real clients log in and push and pull with
// credentials, through the token flow and with Basic auth; without
// credentials, or as a reader, they cannot push.
func TestAuthClients(t *testing.T) {
	for _, mode := range []string{"bearer", "basic"} {
		t.Run(mode, func(t *testing.T) {
			srv := startAuthServer(t, mode == "bearer")
			tools := newToolRunner(t)
			tools.need(t, "crane", "skopeo", "oras", "regctl")
			work := t.TempDir()
			addr := srv.Addr
			files := map[string][]byte{"etc/hello.txt": []byte("hello " + mode + "\n"), "data.bin": randomBytes(t, 600<<10)}
			tarPath := writeLayerTar(t, work, "layer.tar", files)

			// Nobody can push anonymously, and a reader cannot push.
			out := tools.mustFail(t, "crane", "append", "--insecure", "--oci-empty-base", "-f", tarPath, "-t", addr+"/team/anon:1")
			if !strings.Contains(strings.ToLower(out), "unauthorized") && !strings.Contains(out, "401") {
				t.Errorf("anonymous crane push failed, but not for want of authentication:\n%s", out)
			}

			// crane: auth login, then push and pull.
			tools.run(t, "crane", "auth", "login", addr, "-u", "writer", "-p", password("writer"))
			tools.run(t, "crane", "append", "--insecure", "--oci-empty-base", "-f", tarPath, "-t", addr+"/team/app:1")
			dg := strings.TrimSpace(string(tools.run(t, "crane", "digest", "--insecure", addr+"/team/app:1").Stdout))
			manifest := tools.run(t, "crane", "manifest", "--insecure", addr+"/team/app:1").Stdout
			if digest.FromBytes(manifest).String() != dg {
				t.Fatalf("crane manifest does not hash to crane digest %s", dg)
			}
			m := parseManifest(t, manifest)
			layer := tools.run(t, "crane", "blob", "--insecure", addr+"/team/app@"+string(m.Layers[0].Digest)).Stdout
			verifyBytes(t, "layer pulled by crane", m.Layers[0], layer)
			assertFiles(t, "crane", readTar(t, m.Layers[0].MediaType, bytes.NewReader(layer)), files)

			// skopeo: login into its own auth file, copy out and back in
			// under another name, inspect; as reader, a push is refused.
			authfile := filepath.Join(work, "auth.json")
			tools.run(t, "skopeo", "login", "--tls-verify=false", "--authfile", authfile, "-u", "writer", "-p", password("writer"), addr)
			tools.run(t, "skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false", "--authfile", authfile,
				"docker://"+addr+"/team/app:1", "oci:"+filepath.Join(work, "oci")+":app")
			tools.run(t, "skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false", "--authfile", authfile,
				"oci:"+filepath.Join(work, "oci")+":app", "docker://"+addr+"/apps/app:skopeo")
			insp := tools.run(t, "skopeo", "inspect", "--tls-verify=false", "--authfile", authfile, "--raw", "docker://"+addr+"/apps/app:skopeo").Stdout
			if digest.FromBytes(insp).String() != dg {
				t.Errorf("skopeo copied a different manifest: %s, want %s", digest.FromBytes(insp), dg)
			}
			readerAuth := filepath.Join(work, "reader.json")
			tools.run(t, "skopeo", "login", "--tls-verify=false", "--authfile", readerAuth, "-u", "reader", "-p", password("reader"), addr)
			tools.run(t, "skopeo", "inspect", "--tls-verify=false", "--authfile", readerAuth, "--raw", "docker://"+addr+"/team/app:1")
			tools.mustFail(t, "skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--authfile", readerAuth,
				"oci:"+filepath.Join(work, "oci")+":app", "docker://"+addr+"/team/app:by-reader")
			// A wrong password is refused at login.
			tools.mustFail(t, "skopeo", "login", "--tls-verify=false", "--authfile", filepath.Join(work, "bad.json"), "-u", "writer", "-p", "wrong", addr)
			// Anonymous pull of a public repository works without login (a
			// client with its own HOME: crane's login above is in this one's
			// docker config, which skopeo would read).
			anon := newToolRunner(t)
			anon.run(t, "skopeo", "inspect", "--tls-verify=false", "--raw", "docker://"+addr+"/apps/app:skopeo")
			anon.mustFail(t, "skopeo", "inspect", "--tls-verify=false", "--raw", "docker://"+addr+"/team/app:1")

			// oras: login, push an artifact, attach a referrer, discover, pull.
			tools.run(t, "oras", "login", "--plain-http", "-u", "writer", "-p", password("writer"), addr)
			art := filepath.Join(work, "artifact.txt")
			if err := os.WriteFile(art, []byte("an artifact\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			tools.runIn(t, work, "oras", "push", "--plain-http", addr+"/team/art:v1", "artifact.txt:text/plain")
			tools.runIn(t, work, "oras", "attach", "--plain-http", "--artifact-type", "application/vnd.example.sbom", addr+"/team/art:v1", "artifact.txt:text/plain")
			disc := tools.run(t, "oras", "discover", "--plain-http", "--format", "json", addr+"/team/art:v1").Stdout
			if !bytes.Contains(disc, []byte("application/vnd.example.sbom")) {
				t.Errorf("oras discover does not show the attached referrer:\n%s", disc)
			}
			pulled := t.TempDir()
			tools.runIn(t, pulled, "oras", "pull", "--plain-http", addr+"/team/art:v1")
			if b, err := os.ReadFile(filepath.Join(pulled, "artifact.txt")); err != nil || string(b) != "an artifact\n" {
				t.Errorf("oras pull: %q, %v", b, err)
			}

			// regctl: login, copy, read the manifest digest back, delete a tag.
			tools.run(t, "regctl", "registry", "set", "--tls", "disabled", addr)
			tools.run(t, "regctl", "registry", "login", addr, "-u", "writer", "-p", password("writer"))
			tools.run(t, "regctl", "image", "copy", addr+"/team/app:1", addr+"/team/regctl:copy")
			if got := strings.TrimSpace(string(tools.run(t, "regctl", "image", "digest", addr+"/team/regctl:copy").Stdout)); got != dg {
				t.Errorf("regctl copy: digest %s, want %s", got, dg)
			}
			tools.run(t, "regctl", "tag", "delete", addr+"/team/regctl:copy")
			tools.mustFail(t, "regctl", "image", "digest", addr+"/team/regctl:copy")

			// podman: login, pull, push under a new name.
			if findToolOptional(t, "podman") {
				// podman refuses a runroot longer than 50 characters.
				short, err := os.MkdirTemp("", "pm")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.RemoveAll(short) })
				store := []string{"--root", filepath.Join(short, "root"), "--runroot", filepath.Join(short, "run"),
					"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}
				pm := func(args ...string) result {
					return tools.run(t, "podman", append(append([]string{}, store...), args...)...)
				}
				pauth := filepath.Join(work, "podman-auth.json")
				pm("login", "--tls-verify=false", "--authfile", pauth, "-u", "writer", "-p", password("writer"), addr)
				pm("pull", "--tls-verify=false", "--authfile", pauth, addr+"/team/app:1")
				pm("tag", addr+"/team/app:1", addr+"/team/podman:1")
				pm("push", "--tls-verify=false", "--authfile", pauth, "--format", "oci", addr+"/team/podman:1")
				raw := tools.run(t, "crane", "config", "--insecure", addr+"/team/podman:1").Stdout
				if !json.Valid(raw) {
					t.Errorf("podman push: config is not JSON: %s", raw)
				}
			}
		})
	}
}

// findToolOptional reports whether an optional tool is present; in strict
// mode a missing one still fails the test.
func findToolOptional(t *testing.T, name string) bool {
	t.Helper()
	return findTool(t, name) != ""
}

// TestAuthFlatpakAnonymous: flatpak installs anonymously from a registry
// where pushing needs credentials, and sees only the public apps.
func TestAuthFlatpakAnonymous(t *testing.T) {
	tools := newToolRunner(t)
	tools.need(t, "skopeo")
	flatpakBin := findTool(t, "flatpak")
	dbusDaemon := findTool(t, "dbus-daemon")
	fixtures, fx := makeFlatpakFixtures(t)
	srv := startAuthServer(t, true)
	base := "http://" + srv.Addr

	push := func(name, repo, creds string) result {
		return tools.try(t, "", "skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", creds,
			"oci:"+filepath.Join(fixtures, fx[name].Path), "docker://"+srv.Addr+"/"+repo+":latest")
	}
	if res := push("org.berth.Hello", "apps/hello", "nobody:nothing"); res.Err == nil {
		t.Fatalf("a push with unknown credentials succeeded:\n%s", res)
	}
	for name, repo := range map[string]string{"org.berth.Platform": "apps/platform", "org.berth.Hello": "apps/hello", "org.berth.Bare": "team/bare"} {
		if res := push(name, repo, "writer:"+password("writer")); res.Err != nil {
			t.Fatalf("push %s:\n%s", name, res)
		}
	}

	u := newFlatpakUser(t, flatpakBin, dbusDaemon)
	u.flatpak(t, "remote-add", "--no-gpg-verify", "berthtest", "oci+"+base)
	out := u.flatpak(t, "remote-ls", "--columns=ref", "berthtest")
	assertRefs(t, "anonymous remote-ls", out, []string{fx["org.berth.Hello"].Ref, fx["org.berth.Platform"].Ref}, []string{fx["org.berth.Bare"].Ref})
	u.flatpak(t, "install", "-y", "--noninteractive", "berthtest", "org.berth.Hello")
	assertRefs(t, "list after anonymous install", u.flatpak(t, "list", "--columns=ref"),
		[]string{fx["org.berth.Hello"].Ref, fx["org.berth.Platform"].Ref}, nil)
	// The private app cannot be installed by ref, even knowing its name.
	if out, err := u.try("install", "-y", "--noninteractive", "berthtest", "org.berth.Bare"); err == nil {
		t.Errorf("installed a private app anonymously:\n%s", out)
	}
	res, err := httpClient().Get(base + "/flatpakref/team/bare/latest.flatpakref")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("anonymous .flatpakref of a private app: %s, want 404", res.Status)
	}
}

// TestCosign: cosign signs an image in Berth with a key pair made here (no
// transparency log), verifies it, and the catalogue shows the signature.
func TestCosign(t *testing.T) {
	tools := newToolRunner(t)
	tools.need(t, "cosign", "crane")
	srv := startAuthServer(t, true)
	addr := srv.Addr
	work := t.TempDir()
	tarPath := writeLayerTar(t, work, "layer.tar", map[string][]byte{"hello": []byte("signed\n")})
	tools.run(t, "crane", "auth", "login", addr, "-u", "writer", "-p", password("writer"))
	tools.run(t, "crane", "append", "--insecure", "--oci-empty-base", "-f", tarPath, "-t", addr+"/team/signed:1")
	dg := strings.TrimSpace(string(tools.run(t, "crane", "digest", "--insecure", addr+"/team/signed:1").Stdout))
	ref := addr + "/team/signed@" + dg

	cosign := func(args ...string) result {
		t.Helper()
		res := tools.tryEnv(t, work, []string{"COSIGN_PASSWORD=test-key-password", "COSIGN_YES=true"}, "cosign", args...)
		if res.Err != nil {
			t.Fatalf("cosign failed:\n%s", res)
		}
		return res
	}
	cosign("generate-key-pair")
	cosign("sign", "--key", "cosign.key", "--tlog-upload=false", "--use-signing-config=false",
		"--allow-http-registry", "--allow-insecure-registry", ref)
	cosign("verify", "--key", "cosign.pub", "--insecure-ignore-tlog", "--allow-http-registry", "--allow-insecure-registry", ref)

	// A key that did not sign it does not verify.
	other := filepath.Join(work, "other")
	if err := os.MkdirAll(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if res := tools.tryEnv(t, other, []string{"COSIGN_PASSWORD=x", "COSIGN_YES=true"}, "cosign", "generate-key-pair"); res.Err != nil {
		t.Fatalf("%s", res)
	}
	if res := tools.tryEnv(t, work, nil, "cosign", "verify", "--key", filepath.Join(other, "cosign.pub"), "--insecure-ignore-tlog",
		"--allow-http-registry", "--allow-insecure-registry", ref); res.Err == nil {
		t.Errorf("verify with a key that did not sign succeeded:\n%s", res)
	}

	// The catalogue's manifest page lists the signature (as writer: the
	// repository is private).
	c := &authClient{t: t, base: "http://" + addr, user: "writer", c: httpClient()}
	a := c.send("GET", "/repositories/team/signed/-/manifests/"+dg, nil, c.basic())
	if a.Status != http.StatusOK {
		t.Fatalf("manifest page: %d", a.Status)
	}
	if !strings.Contains(string(a.Body), "Signature") && !strings.Contains(string(a.Body), "signature") {
		t.Errorf("the manifest page does not show the signature:\n%s", clip(a.Body, 3000))
	}
	if strings.Contains(string(a.Body), "No signatures, SBOMs or attestations refer to this manifest") {
		t.Errorf("the manifest page says nothing refers to the signed manifest")
	}
	// Anonymous visitors see nothing of it.
	if a := c.send("GET", "/repositories/team/signed/-/manifests/"+dg, nil, ""); a.Status != http.StatusNotFound {
		t.Errorf("anonymous manifest page of a private repository: %d, want 404", a.Status)
	}
}
