// Package pgtest gives tests a real PostgreSQL: a throwaway cluster
// started once per test process on 127.0.0.1 (Debian's PostgreSQL 15
// binaries, run as the postgres user when the tests run as root), and a
// fresh database per test. A test binary that uses it calls Main from its
// TestMain, which stops the cluster when the tests end.
//
// BERTH_TEST_POSTGRES_DSN, when set, names a server to use instead (a DSN
// of a database whose user may CREATE DATABASE). When neither works the
// test is skipped, or fails when CI=true or BERTH_E2E=1.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// binDir holds Debian's PostgreSQL 15 server binaries.
const binDir = "/usr/lib/postgresql/15/bin"

var (
	once    sync.Once
	cluster *server
	initErr error
)

// server is the cluster of this process.
type server struct {
	admin  string // DSN of the postgres database, as a superuser
	dir    string // "" when not ours (BERTH_TEST_POSTGRES_DSN)
	asUser []string
}

func strict() bool { return os.Getenv("CI") == "true" || os.Getenv("BERTH_E2E") == "1" }

// Main runs the tests and stops the cluster, if one was started.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops the cluster, if one was started (for a TestMain of its own).
func Stop() {
	if cluster != nil && cluster.dir != "" {
		cluster.stop()
	}
}

// DSN returns the DSN of a new, empty database on the test server, dropped
// when the test ends (after the test's own cleanups).
func DSN(t testing.TB) string {
	t.Helper()
	once.Do(func() { cluster, initErr = start() })
	if initErr != nil {
		if strict() {
			t.Fatalf("PostgreSQL for tests: %v", initErr)
		}
		t.Skipf("PostgreSQL for tests: %v", initErr)
	}
	name := "t_" + strings.ToLower(rand.Text()[:16])
	db, err := sql.Open("pgx", cluster.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", cluster.admin)
		if err != nil {
			t.Error(err)
			return
		}
		defer db.Close()
		if _, err := db.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(cluster.admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// Admin returns the superuser DSN of the test server (for tests that cut
// connections or inspect the server).
func Admin(t testing.TB) string {
	t.Helper()
	DSN(t)
	return cluster.admin
}

func start() (*server, error) {
	if dsn := os.Getenv("BERTH_TEST_POSTGRES_DSN"); dsn != "" {
		return &server{admin: dsn}, nil
	}
	if _, err := os.Stat(filepath.Join(binDir, "initdb")); err != nil {
		return nil, fmt.Errorf("no PostgreSQL 15 server binaries in %s (apt install postgresql): %w", binDir, err)
	}
	reapLeftovers()
	dir, err := os.MkdirTemp("", "berth-pg-")
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir}
	if os.Geteuid() == 0 {
		// initdb and postgres refuse root: run them as postgres, in a
		// directory that user owns.
		pg, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, err
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		s.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	if out, err := s.run(filepath.Join(binDir, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	// freePort's port is free when it answers, not necessarily when the
	// server binds it (other test binaries listen too): a bind failure
	// is tried again on another port.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		logFile := filepath.Join(dir, "log")
		_ = os.Remove(logFile)
		opts := fmt.Sprintf("-h 127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c shared_preload_libraries=pg_stat_statements", port, dir)
		out, err := s.run(filepath.Join(binDir, "pg_ctl"), "-D", filepath.Join(dir, "data"), "-l", logFile,
			"-w", "-t", "60", "-o", opts, "start")
		if err == nil {
			s.admin = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
			return s, nil
		}
		log, _ := os.ReadFile(logFile)
		if attempt < 5 && (bytes.Contains(log, []byte("could not bind")) || bytes.Contains(log, []byte("Address already in use"))) {
			continue
		}
		return nil, fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

func (s *server) run(name string, args ...string) ([]byte, error) {
	argv := append(append([]string{}, s.asUser...), name)
	argv = append(argv, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = os.TempDir()
	return cmd.CombinedOutput()
}

func (s *server) stop() {
	s.run(filepath.Join(binDir, "pg_ctl"), "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "-t", "30", "stop")
	os.RemoveAll(s.dir)
}

// reapLeftovers stops the clusters of test processes that died without
// stopping theirs (killed), and removes their directories.
func reapLeftovers() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "berth-pg-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) == nil || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue // its owner lives (or cannot be told)
		}
		s := &server{dir: dir}
		if os.Geteuid() == 0 {
			s.asUser = []string{"runuser", "-u", "postgres", "--"}
		}
		s.stop()
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
