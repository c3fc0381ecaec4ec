package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"github.com/berth-dev/berth/server"
)

// listen returns the socket systemd passed (socket activation, see
// packaging/berth.socket), or else a new listener on addr.
func listen(addr string, logger *slog.Logger) (net.Listener, error) {
	lns, err := server.ActivationListeners(os.Getenv, os.Unsetenv, os.Getpid())
	if err != nil {
		return nil, err
	}
	switch len(lns) {
	case 0:
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		return ln, nil
	case 1:
		logger.Info("socket activation: serving on the socket systemd passed; http.addr is not used", "addr", lns[0].Addr().String())
		return lns[0], nil
	default:
		for _, ln := range lns {
			ln.Close()
		}
		return nil, fmt.Errorf("socket activation: %d sockets passed; Berth serves one (one ListenStream= in the .socket unit)", len(lns))
	}
}

// notifySystemd tells systemd (Type=notify) that Berth is ready, pings its
// watchdog while the stores answer, and says STOPPING=1 when ctx ends.
// Outside systemd it does nothing. The returned func stops the watchdog;
// call it before the stores close.
func notifySystemd(ctx context.Context, srv *server.Server, ln net.Listener, logger *slog.Logger) (stop func()) {
	n, err := server.NotifierFromEnv(os.Getenv)
	if err != nil {
		logger.Warn("systemd notification disabled", "err", err)
		return func() {}
	}
	if n == nil {
		return func() {}
	}
	// The listener is open and the stores answered when New opened them.
	if err := n.Notify("READY=1", "STATUS=serving on "+ln.Addr().String()); err != nil {
		logger.Warn("systemd: READY=1 not sent", "err", err)
	}
	wd, err := server.WatchdogInterval(os.Getenv, os.Getpid())
	if err != nil {
		logger.Warn("systemd watchdog disabled", "err", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if wd > 0 {
		logger.Info("systemd watchdog: pinging while the stores answer", "timeout", wd)
		wg.Go(func() { n.RunWatchdog(wctx, wd, srv.WatchdogCheck, logger) })
	}
	stopping := func() {
		if err := n.Notify("STOPPING=1", "STATUS=shutting down"); err != nil {
			logger.Warn("systemd: STOPPING=1 not sent", "err", err)
		}
	}
	// The graceful shutdown starts when ctx ends (SIGTERM).
	unregister := context.AfterFunc(ctx, stopping)
	return func() {
		cancel()
		wg.Wait()
		if unregister() {
			stopping() // Serve returned on its own (an error)
		}
	}
}
