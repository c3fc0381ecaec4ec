// Package packaging holds Berth's operating-system packaging, checked by
// its tests: the hardened systemd unit (berth.service, berth.socket), the
// default configuration, the sysusers.d entry, the nfpm configuration
// and maintainer scripts for the .deb and .rpm, and build.sh, which
// builds both from a checkout. docs/install.md describes their use.
//
// The Go code is only the tests: systemd-analyze's verdict on the unit
// (verify, and security exposure at most 2.0), and the packages built
// from a clean checkout, the .deb installed with dpkg (and purged), the
// .rpm inspected with rpm.
package packaging
