package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/config"
)

// notifyListener is systemd's side of NOTIFY_SOCKET: a unixgram socket
// whose datagrams the test reads in order.
func notifyListener(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn") // socket paths are short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}

// nextNotification reads one datagram (the deadline only keeps a broken
// test from hanging).
func nextNotification(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

// TestServeNotifiesSystemd runs serve as systemd would with Type=notify
// and WatchdogSec=: READY=1 once the listener answers, watchdog pings
// while it runs, STOPPING=1 when the shutdown starts.
func TestServeNotifiesSystemd(t *testing.T) {
	sock, path := notifyListener(t)
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "200000") // a ping every 100ms
	t.Setenv("WATCHDOG_PID", "")

	dir := t.TempDir()
	cfg := config.Default()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Storage.Dir = filepath.Join(dir, "data")
	addrFile := filepath.Join(dir, "addr")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, addrFile, slog.New(slog.DiscardHandler)) }()

	ready := nextNotification(t, sock)
	if !strings.HasPrefix(ready, "READY=1\nSTATUS=serving on 127.0.0.1:") {
		t.Fatalf("first notification %q, want READY=1", ready)
	}
	// Ready means ready: the address is written and /v2/ answers.
	b, err := os.ReadFile(addrFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimSpace(string(b))
	if !strings.HasSuffix(ready, addr) {
		t.Errorf("READY names %q, serving on %s", ready, addr)
	}
	res, err := http.Get("http://" + addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("/v2/ after READY=1: %d", res.StatusCode)
	}
	for i := 0; i < 2; i++ {
		if got := nextNotification(t, sock); got != "WATCHDOG=1" {
			t.Fatalf("watchdog: got %q", got)
		}
	}
	cancel()
	// Pings already in flight may come first; STOPPING=1 must come.
	for {
		got := nextNotification(t, sock)
		if got == "WATCHDOG=1" {
			continue
		}
		if got != "STOPPING=1\nSTATUS=shutting down" {
			t.Fatalf("at shutdown: got %q", got)
		}
		break
	}
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// TestServeSocketActivation starts the real binary as systemd does for a
// .socket unit: the listening socket as fd 3, LISTEN_FDS=1 and LISTEN_PID
// set to the process's own pid (sh sets it, then execs berth in place).
// http.addr names an address no one can bind, so an answer proves the
// passed socket is the one served.
func TestServeSocketActivation(t *testing.T) {
	bin := buildBerth(t, "-buildvcs=false")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close() // f keeps the socket open and listening

	sock, path := notifyListener(t)
	dir := t.TempDir()
	cmd := exec.Command("sh", "-c", `LISTEN_PID=$$ exec "$0" serve --data "$1"`, bin, filepath.Join(dir, "data"))
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES=berth", "NOTIFY_SOCKET="+path,
		"BERTH_HTTP_ADDR=192.0.2.1:5000") // TEST-NET-1: not an address of this machine
	cmd.ExtraFiles = []*os.File{f} // fd 3 in the child
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()

	if got := nextNotification(t, sock); got != "READY=1\nSTATUS=serving on "+addr {
		t.Fatalf("notification %q; want READY=1 on %s\n%s", got, addr, logs.String())
	}
	res, err := http.Get("http://" + addr + "/v2/")
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("/v2/: %d", res.StatusCode)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := nextNotification(t, sock); got != "STOPPING=1\nSTATUS=shutting down" {
		t.Fatalf("at SIGTERM: %q", got)
	}
	if err := <-exited; err != nil {
		t.Fatalf("berth exited with %v\n%s", err, logs.String())
	}
	exited <- nil // for the deferred cleanup
	if !strings.Contains(logs.String(), "socket activation") {
		t.Errorf("log does not say the passed socket is served:\n%s", logs.String())
	}
}
