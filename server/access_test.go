package server

import "testing"

// TestAddrClient: anonymous clients count by IPv4 address or by IPv6 /64
// (one host gets a whole /64), for the per-client upload cap.
func TestAddrClient(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":               "192.0.2.7",
		"::ffff:192.0.2.7":        "::ffff:192.0.2.7",
		"2001:db8:1:2:aaaa::1":    "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::9999": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":         "2001:db8:1:3::/64",
		"not-an-address":          "not-an-address",
	} {
		if got := addrClient(in); got != want {
			t.Errorf("addrClient(%q) = %q, want %q", in, got, want)
		}
	}
}
