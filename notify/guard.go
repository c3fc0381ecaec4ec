package notify

import (
	"fmt"
	"net/netip"
	"syscall"
)

// RefusedError is the error of a connection refused because its address
// is not public and the endpoint does not allow private targets.
type RefusedError struct {
	Addr netip.Addr
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused to connect to %s: not a public address (the endpoint's allow_private is off)", e.Addr)
}

// nonPublic lists the ranges a webhook may not reach without
// allow_private: loopback, RFC 1918 and unique-local, link-local,
// multicast, unspecified, shared (CGNAT), benchmarking and reserved
// space, and the IPv6 forms that embed an IPv4 address (checked on the
// embedded address too).
var nonPublic = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15",
		"224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8",
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// Prefixes whose addresses embed an IPv4 address: NAT64 (64:ff9b::/96,
// the last 32 bits) and 6to4 (2002::/16, bits 16–48).
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// public reports whether a may be reached without allow_private.
func public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.Zone() != "" {
		return false // a zone only makes sense on a link-local address
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64.Contains(a):
			return public(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(a):
			return public(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	return true
}

// refusePrivate is a net.Dialer Control function: it runs on the address
// actually being connected to, after name resolution, so a name that
// resolves (or re-resolves: DNS rebinding) to a private address is
// refused too.
func refusePrivate(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refused to connect to %q: not an IP address and port", address)
	}
	if !public(ap.Addr()) {
		return &RefusedError{Addr: ap.Addr()}
	}
	return nil
}
