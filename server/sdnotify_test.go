package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// notifySocket listens like systemd does on a unixgram socket and
// returns it with the value NOTIFY_SOCKET would carry.
func notifySocket(t *testing.T, abstract bool) (*net.UnixConn, string) {
	t.Helper()
	var name, env string
	if abstract {
		env = "@berth-test-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		name = "\x00" + env[1:]
	} else {
		// Short: a socket path has room for 107 bytes, and t.TempDir
		// names can be longer.
		dir, err := os.MkdirTemp("", "sdn")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		name = filepath.Join(dir, "notify")
		env = name
	}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, env
}

// recv reads one datagram. The deadline only keeps a broken test from
// hanging; nothing here depends on timing.
func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotifierSendsToPathAndAbstractSockets(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		t.Run(map[bool]string{false: "path", true: "abstract"}[abstract], func(t *testing.T) {
			sock, env := notifySocket(t, abstract)
			n, err := NotifierFromEnv(envOf(map[string]string{"NOTIFY_SOCKET": env}))
			if err != nil || n == nil {
				t.Fatalf("NotifierFromEnv(%q): %v %v", env, n, err)
			}
			if err := n.Notify("READY=1", "STATUS=serving on 127.0.0.1:5000"); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, sock); got != "READY=1\nSTATUS=serving on 127.0.0.1:5000" {
				t.Fatalf("got %q", got)
			}
			if err := n.Notify("STOPPING=1"); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, sock); got != "STOPPING=1" {
				t.Fatalf("got %q", got)
			}
		})
	}
}

func TestNotifierFromEnv(t *testing.T) {
	n, err := NotifierFromEnv(envOf(nil))
	if n != nil || err != nil {
		t.Fatalf("unset: %v %v", n, err)
	}
	// Outside systemd every call is a no-op.
	if err := n.Notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	n.RunWatchdog(t.Context(), time.Second, nil, nil) // returns at once
	for _, bad := range []string{"relative/sock", "vsock:2:1234"} {
		if _, err := NotifierFromEnv(envOf(map[string]string{"NOTIFY_SOCKET": bad})); err == nil {
			t.Errorf("NOTIFY_SOCKET=%q accepted", bad)
		}
	}
	// A socket nobody listens on is an error the caller can log.
	n, err = NotifierFromEnv(envOf(map[string]string{"NOTIFY_SOCKET": filepath.Join(t.TempDir(), "absent")}))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify("READY=1"); err == nil {
		t.Fatal("notify to a missing socket succeeded")
	}
}

func TestWatchdogInterval(t *testing.T) {
	pid := 4242
	for _, tc := range []struct {
		env  map[string]string
		want time.Duration
		bad  bool
	}{
		{env: nil, want: 0},
		{env: map[string]string{"WATCHDOG_USEC": "30000000"}, want: 30 * time.Second},
		{env: map[string]string{"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "4242"}, want: 500 * time.Millisecond},
		{env: map[string]string{"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "1"}, want: 0}, // another process's
		{env: map[string]string{"WATCHDOG_USEC": "0"}, bad: true},
		{env: map[string]string{"WATCHDOG_USEC": "-5"}, bad: true},
		{env: map[string]string{"WATCHDOG_USEC": "ten"}, bad: true},
		{env: map[string]string{"WATCHDOG_USEC": "99999999999999999999"}, bad: true},
	} {
		got, err := WatchdogInterval(envOf(tc.env), pid)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("%v: got %v, %v; want %v (error %v)", tc.env, got, err, tc.want, tc.bad)
		}
	}
}

// TestWatchdogPingsOnlyWhileHealthy drives the watchdog tick by tick: a
// ping follows each tick whose check passes, and none follows a check
// that fails or hangs. A marker sent straight to the socket shows what
// was (not) sent before it: datagrams arrive in the order they were sent.
func TestWatchdogPingsOnlyWhileHealthy(t *testing.T) {
	sock, env := notifySocket(t, false)
	n, err := NotifierFromEnv(envOf(map[string]string{"NOTIFY_SOCKET": env}))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	marker := func(s string) {
		t.Helper()
		if err := n.Notify("STATUS=" + s); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, sock); got != "STATUS="+s {
			t.Fatalf("before marker %q: got %q", s, got)
		}
	}

	answers := make(chan error)
	called := make(chan struct{}, 1)
	check := func(ctx context.Context) error {
		called <- struct{}{}
		return <-answers
	}
	ticks := make(chan time.Time)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The check's deadline is far away: only the answers decide.
		n.watchdog(ctx, ticks, time.Hour, check, logger)
	}()
	step := func(answer error) {
		ticks <- time.Now()
		<-called
		answers <- answer
	}

	step(nil) // healthy: ping
	if got := recv(t, sock); got != "WATCHDOG=1" {
		t.Fatalf("healthy tick: got %q", got)
	}
	step(errors.New("database is locked")) // failing: no ping
	step(errors.New("disk I/O error"))
	marker("after-failures")

	// While a check hangs the loop takes no tick and sends nothing.
	ticks <- time.Now()
	<-called
	marker("while-hanging")
	answers <- nil // it answers at last: ping
	if got := recv(t, sock); got != "WATCHDOG=1" {
		t.Fatalf("recovered: got %q", got)
	}
	step(nil)
	if got := recv(t, sock); got != "WATCHDOG=1" {
		t.Fatalf("healthy again: got %q", got)
	}
	cancel()
	<-done
	marker("after-stop")

	// A check that answers only after its deadline counts as hung.
	late := func(ctx context.Context) error {
		<-ctx.Done()
		return nil
	}
	ctx, cancel = context.WithCancel(t.Context())
	done = make(chan struct{})
	go func() {
		defer close(done)
		n.watchdog(ctx, ticks, time.Millisecond, late, logger)
	}()
	ticks <- time.Now()
	ticks <- time.Now() // taken only once the first check returned
	cancel()
	<-done
	marker("after-late")
}

func TestWatchdogCheckAsksTheStores(t *testing.T) {
	cfg := testConfig(t)
	s, err := New(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WatchdogCheck(t.Context()); err != nil {
		t.Fatalf("fresh server: %v", err)
	}
	if err := os.RemoveAll(cfg.Storage.Dir); err != nil {
		t.Fatal(err)
	}
	if err := s.WatchdogCheck(t.Context()); err == nil || !strings.Contains(err.Error(), "storage dir") {
		t.Errorf("storage dir removed: %v", err)
	}
	s.Close()
	if err := s.WatchdogCheck(t.Context()); err == nil || !strings.Contains(err.Error(), "metadata") {
		t.Errorf("metadata closed: %v", err)
	}
}

func TestActivationListeners(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	// A raw descriptor no *os.File owns, as systemd hands one over.
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	ln.Close()

	pid := os.Getpid()
	unset := map[string]bool{}
	unsetenv := func(k string) error { unset[k] = true; return nil }

	// Meant for another process: ignored, and left in the environment.
	lns, err := activationListeners(envOf(map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": "1"}), unsetenv, pid, fd)
	if err != nil || lns != nil || len(unset) != 0 {
		t.Fatalf("other pid: %v %v %v", lns, err, unset)
	}
	if _, err := activationListeners(envOf(map[string]string{"LISTEN_FDS": "many", "LISTEN_PID": strconv.Itoa(pid)}), unsetenv, pid, fd); err == nil {
		t.Fatal("LISTEN_FDS=many accepted")
	}

	env := map[string]string{"LISTEN_FDS": "1", "LISTEN_PID": strconv.Itoa(pid), "LISTEN_FDNAMES": "berth"}
	lns, err = activationListeners(envOf(env), unsetenv, pid, fd)
	if err != nil || len(lns) != 1 {
		t.Fatalf("activation: %v %v", lns, err)
	}
	defer lns[0].Close()
	if !unset["LISTEN_FDS"] || !unset["LISTEN_PID"] || !unset["LISTEN_FDNAMES"] {
		t.Errorf("variables left for children: %v", unset)
	}
	if got := lns[0].Addr().String(); got != addr {
		t.Fatalf("listener on %s, want %s", got, addr)
	}
	go func() {
		c, err := lns[0].Accept()
		if err == nil {
			c.Write([]byte("hello"))
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "hello" {
		t.Fatalf("read %q %v", b, err)
	}
}

// FuzzSystemdEnv: whatever systemd (or anyone) puts in the variables,
// parsing them never panics, and a watchdog interval is either an error
// or a positive duration that round-trips to the microseconds given.
func FuzzSystemdEnv(f *testing.F) {
	for _, s := range []string{"30000000", "0", "-1", "", "@sock", "/run/systemd/notify", "vsock:2:3", "18446744073709551615", "1e6"} {
		f.Add(s, "4242")
	}
	f.Fuzz(func(t *testing.T, v, pid string) {
		env := envOf(map[string]string{"WATCHDOG_USEC": v, "WATCHDOG_PID": pid, "NOTIFY_SOCKET": v})
		d, err := WatchdogInterval(env, 4242)
		switch {
		case err != nil:
			if d != 0 {
				t.Fatalf("%q: error %v with interval %v", v, err, d)
			}
		case d < 0:
			t.Fatalf("%q: negative interval %v", v, d)
		case d > 0:
			if pid != "" && pid != "4242" {
				t.Fatalf("%q: interval for WATCHDOG_PID=%q", v, pid)
			}
			if u, perr := strconv.ParseUint(v, 10, 64); perr != nil || time.Duration(u)*time.Microsecond != d {
				t.Fatalf("%q: interval %v", v, d)
			}
		}
		n, err := NotifierFromEnv(env)
		if err == nil && v != "" && (n == nil || (v[0] != '/' && v[0] != '@')) {
			t.Fatalf("NOTIFY_SOCKET=%q accepted as %v", v, n)
		}
	})
}
