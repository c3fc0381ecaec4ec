// Package s3test gives tests a real S3 server: MinIO, started once per
// test process on 127.0.0.1 from the binary scripts/install-deps.sh builds
// (<repo>/.tools/bin/minio, or minio on PATH), and a fresh bucket per
// test. A test binary that uses it calls Main from its TestMain, which
// stops MinIO when the tests end.
//
// BERTH_TEST_S3_ENDPOINT (with BERTH_TEST_S3_ACCESS_KEY and
// BERTH_TEST_S3_SECRET_KEY), when set, names a server to use instead.
// When neither works the test is skipped, or fails when CI=true or
// BERTH_E2E=1.
package s3test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Server is an S3 endpoint and its credentials.
type Server struct {
	Endpoint  string // http://127.0.0.1:port
	AccessKey string
	SecretKey string
}

var (
	once     sync.Once
	server   Server
	proc     *exec.Cmd
	procDone chan error // proc's Wait
	dir      string
	initErr  error
)

func strict() bool { return os.Getenv("CI") == "true" || os.Getenv("BERTH_E2E") == "1" }

// Main runs the tests and stops MinIO, if one was started.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops MinIO, if one was started (for a TestMain of its own).
func Stop() {
	if proc != nil {
		proc.Process.Kill()
		<-procDone
		os.RemoveAll(dir)
	}
}

// Bucket returns the server and the name of a new, empty bucket on it,
// emptied and removed when the test ends.
func Bucket(t testing.TB) (Server, string) {
	t.Helper()
	once.Do(func() { server, initErr = start() })
	if initErr != nil {
		if strict() {
			t.Fatalf("S3 server for tests: %v", initErr)
		}
		t.Skipf("S3 server for tests: %v", initErr)
	}
	c, err := Client(server)
	if err != nil {
		t.Fatal(err)
	}
	name := "t-" + strings.ToLower(rand.Text()[:20])
	if err := c.MakeBucket(context.Background(), name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		objs := c.ListObjects(ctx, name, minio.ListObjectsOptions{Recursive: true})
		for e := range c.RemoveObjects(ctx, name, objs, minio.RemoveObjectsOptions{}) {
			t.Logf("s3test: emptying %s: %v", name, e.Err)
		}
		for mu := range c.ListIncompleteUploads(ctx, name, "", true) {
			_ = c.RemoveIncompleteUpload(ctx, name, mu.Key)
		}
		if err := c.RemoveBucket(ctx, name); err != nil {
			t.Logf("s3test: removing bucket %s: %v", name, err)
		}
	})
	return server, name
}

// Client returns an SDK client of srv (path-style).
func Client(srv Server) (*minio.Client, error) {
	u, err := url.Parse(srv.Endpoint)
	if err != nil {
		return nil, err
	}
	return minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""),
		Secure:       u.Scheme == "https",
		Region:       "us-east-1",
		BucketLookup: minio.BucketLookupPath,
	})
}

func start() (Server, error) {
	if ep := os.Getenv("BERTH_TEST_S3_ENDPOINT"); ep != "" {
		return Server{Endpoint: ep, AccessKey: os.Getenv("BERTH_TEST_S3_ACCESS_KEY"), SecretKey: os.Getenv("BERTH_TEST_S3_SECRET_KEY")}, nil
	}
	bin, err := findMinio()
	if err != nil {
		return Server{}, err
	}
	dir, err = os.MkdirTemp("", "berth-minio-")
	if err != nil {
		return Server{}, err
	}
	// freePort's port is free when it answers, not necessarily when
	// MinIO binds it (other test binaries listen too): a MinIO that exits
	// before it is ready is started again on another port.
	for attempt := 1; ; attempt++ {
		srv, exited, err := startMinio(bin, dir)
		if err == nil || !exited || attempt == 5 {
			return srv, err
		}
	}
}

// startMinio starts MinIO on a free port and waits until it is ready;
// exited says it stopped before that.
func startMinio(bin, dir string) (srv Server, exited bool, err error) {
	port, err := freePort()
	if err != nil {
		return Server{}, false, err
	}
	srv = Server{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), AccessKey: "berthtest", SecretKey: "berthtestsecret"}
	cmd := exec.Command(bin, "server", "--quiet", "--address", fmt.Sprintf("127.0.0.1:%d", port),
		"--console-address", "127.0.0.1:0", filepath.Join(dir, "data"))
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+srv.AccessKey, "MINIO_ROOT_PASSWORD="+srv.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	logf, err := os.Create(filepath.Join(dir, "minio.log"))
	if err != nil {
		return Server{}, false, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return Server{}, false, fmt.Errorf("start minio: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "minio.log"))
			return Server{}, true, fmt.Errorf("minio exited before it was ready (%v):\n%s", err, log)
		default:
		}
		resp, err := http.Get(srv.Endpoint + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				proc, procDone = cmd, done
				return srv, false, nil
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			log, _ := os.ReadFile(filepath.Join(dir, "minio.log"))
			return Server{}, false, fmt.Errorf("minio did not become ready in 60s:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// findMinio looks in the repository's .tools/bin, then on PATH.
func findMinio() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			p := filepath.Join(d, ".tools", "bin", "minio")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			break
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no minio binary in .tools/bin or on PATH (scripts/install-deps.sh builds it)")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
