package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// This file speaks the two systemd protocols a service uses, without a
// dependency (both are a few lines; see sd_notify(3), sd_listen_fds(3)):
//
//   - notification: datagrams such as "READY=1" to the unix socket named by
//     $NOTIFY_SOCKET, which is how a Type=notify unit says it is up, that it
//     is stopping, and (with WatchdogSec=) that it is still healthy;
//   - socket activation: listening sockets passed as file descriptors 3…
//     with $LISTEN_FDS and $LISTEN_PID.
//
// Outside systemd neither variable is set and both are no-ops.

// Notifier sends service notifications to systemd. A nil *Notifier (no
// $NOTIFY_SOCKET) sends nothing.
type Notifier struct {
	addr *net.UnixAddr
}

// NotifierFromEnv returns the Notifier for $NOTIFY_SOCKET, nil when it is
// unset, or an error when it names something that is not a unix socket
// path ("/run/…") or an abstract one ("@…"): vsock addresses, which
// systemd also knows, are for virtual machines and not supported here.
func NotifierFromEnv(getenv func(string) string) (*Notifier, error) {
	name := getenv("NOTIFY_SOCKET")
	switch {
	case name == "":
		return nil, nil
	case name[0] == '@':
		// Abstract namespace: the name starts with a NUL byte, which
		// the environment cannot carry, so systemd writes '@'.
		name = "\x00" + name[1:]
	case name[0] == '/':
	default:
		return nil, fmt.Errorf("NOTIFY_SOCKET=%q: not a unix socket path or an abstract socket (@name)", name)
	}
	return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}, nil
}

// Notify sends one datagram with the given states, one per line (e.g.
// "READY=1", "STATUS=serving"). A socket opened per message keeps nothing
// open between messages and survives systemd re-creating the socket
// (daemon-reexec).
func (n *Notifier) Notify(states ...string) error {
	if n == nil {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(states, "\n"))); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// WatchdogInterval is the watchdog timeout systemd asks this process to
// honour ($WATCHDOG_USEC, set when the unit has WatchdogSec=), or 0 when
// there is none or it is meant for another process ($WATCHDOG_PID).
func WatchdogInterval(getenv func(string) string, pid int) (time.Duration, error) {
	usec := getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, nil
	}
	if p := getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(pid) {
		return 0, nil
	}
	v, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("WATCHDOG_USEC=%q: not a positive number of microseconds", usec)
	}
	if v > uint64(time.Duration(1<<63-1)/time.Microsecond) {
		return 0, fmt.Errorf("WATCHDOG_USEC=%q: too large", usec)
	}
	return time.Duration(v) * time.Microsecond, nil
}

// RunWatchdog sends "WATCHDOG=1" every timeout/2 for as long as check
// passes, until ctx ends. check gets timeout/4 to answer; one that fails,
// answers late or hangs sends no ping, so systemd restarts a server
// whose stores stopped answering instead of one whose process died only.
func (n *Notifier) RunWatchdog(ctx context.Context, timeout time.Duration, check func(context.Context) error, logger *slog.Logger) {
	if n == nil || timeout <= 0 {
		return
	}
	t := time.NewTicker(timeout / 2)
	defer t.Stop()
	n.watchdog(ctx, t.C, timeout/4, check, logger)
}

// watchdog is RunWatchdog's loop on a given tick source (tests drive it
// tick by tick). The check runs in the loop: while it hangs, no tick is
// taken and no ping goes out, which is the point.
func (n *Notifier) watchdog(ctx context.Context, ticks <-chan time.Time, checkTimeout time.Duration, check func(context.Context) error, logger *slog.Logger) {
	healthy := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		err := check(cctx)
		if err == nil {
			err = cctx.Err() // answered, but too late
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if healthy {
				logger.Error("watchdog: the stores do not answer; not telling systemd we are alive", "err", err)
			}
			healthy = false
			continue
		}
		if !healthy {
			logger.Info("watchdog: the stores answer again")
			healthy = true
		}
		if err := n.Notify("WATCHDOG=1"); err != nil {
			logger.Warn("watchdog: ping not sent", "err", err)
		}
	}
}

// WatchdogCheck is what the systemd watchdog asks before each ping: the
// checks /readyz runs (the metadata store answers a query, the blob store
// a stat), and the storage directory is still there.
func (s *Server) WatchdogCheck(ctx context.Context) error {
	if s.ready != nil {
		for _, c := range s.ready.checks {
			if err := c.fn(ctx); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
		}
	}
	if _, err := os.Stat(s.cfg.Storage.Dir); err != nil {
		return fmt.Errorf("storage dir: %w", err)
	}
	return nil
}

// listenFDsStart is the first file descriptor systemd passes
// (SD_LISTEN_FDS_START).
const listenFDsStart = 3

// ActivationListeners returns the listening sockets systemd passed to
// this process (socket activation: $LISTEN_FDS for $LISTEN_PID), or none
// when the variables are absent or meant for another process. It unsets
// the variables, so a child never takes the sockets for its own.
func ActivationListeners(getenv func(string) string, unsetenv func(string) error, pid int) ([]net.Listener, error) {
	return activationListeners(getenv, unsetenv, pid, listenFDsStart)
}

func activationListeners(getenv func(string) string, unsetenv func(string) error, pid, start int) ([]net.Listener, error) {
	fds, lpid := getenv("LISTEN_FDS"), getenv("LISTEN_PID")
	if fds == "" || lpid == "" {
		return nil, nil
	}
	if lpid != strconv.Itoa(pid) {
		return nil, nil
	}
	for _, k := range []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} {
		_ = unsetenv(k)
	}
	n, err := strconv.Atoi(fds)
	if err != nil || n < 0 || n > 64 {
		return nil, fmt.Errorf("LISTEN_FDS=%q: not a small count of file descriptors", fds)
	}
	var lns []net.Listener
	for fd := start; fd < start+n; fd++ {
		syscall.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "LISTEN_FD_"+strconv.Itoa(fd))
		ln, err := net.FileListener(f) // dups fd
		f.Close()
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("socket activation: fd %d: %w", fd, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}
