#!/usr/bin/env bash
# install-deps.sh: install what Berth's tests use, idempotently.
#
#   apt:  skopeo, podman (best effort), ca-certificates, git, jq, curl,
#         chromium, flatpak, dbus, busybox-static (the Flatpak fixtures and
#         e2e/flatpak_test.go), rpm (packaging/: rpm -qpl on the built .rpm),
#         postgresql (meta/postgres's tests start throwaway clusters with its
#         binaries; the packaged cluster is never used)
#   Go:   pinned tools built into <repo>/.tools/bin, one version stamp per
#         tool in <repo>/.tools/stamps, so a machine that keeps its disk
#         builds each tool once.
#
# Fast when everything is present: apt-get update runs only when a package
# is missing, and a tool is rebuilt only when its stamp does not match.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
STAMPS="$TOOLS/stamps"

# name  module@version (the binary is named after the last path element)
GO_TOOLS=(
	"conformance github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111"
	"crane github.com/google/go-containerregistry/cmd/crane@v0.22.1"
	"oras oras.land/oras/cmd/oras@v1.3.6"
	"regctl github.com/regclient/regclient/cmd/regctl@v0.11.7"
	"gotestsum gotest.tools/gotestsum@v1.13.0"
	"cosign github.com/sigstore/cosign/v3/cmd/cosign@v3.1.3"
	"nfpm github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0"
	"helm helm.sh/helm/v3/cmd/helm@v3.21.4"
	# The S3 server of blob/s3's tests and the replica tests (no release
	# tags on the proxy: a pinned pseudo-version; ~5 min cold build).
	"minio github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"
)

APT_REQUIRED=(ca-certificates git jq curl skopeo chromium flatpak dbus busybox-static rpm postgresql)
APT_OPTIONAL=(podman)

log() { printf 'install-deps: %s\n' "$*"; }

# --- apt -------------------------------------------------------------------

missing_pkgs() {
	local p
	for p in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			printf '%s\n' "$p"
		fi
	done
}

SUDO=()
apt_usable() {
	command -v apt-get >/dev/null 2>&1 || return 1
	if [ "$(id -u)" -eq 0 ]; then
		return 0
	fi
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		SUDO=(sudo -n)
		return 0
	fi
	return 1
}

APT_UPDATED=0
apt_install() {
	if [ "$APT_UPDATED" -eq 0 ]; then
		log "apt-get update"
		mkdir -p "$TOOLS/logs"
		if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
			apt-get -o DPkg::Lock::Timeout=600 update -q >"$TOOLS/logs/apt.log" 2>&1; then
			tail -n 30 "$TOOLS/logs/apt.log" >&2
			return 1
		fi
		APT_UPDATED=1
	fi
	log "apt-get install $* (log: $TOOLS/logs/apt.log)"
	mkdir -p "$TOOLS/logs"
	if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$@" \
		>>"$TOOLS/logs/apt.log" 2>&1; then
		tail -n 30 "$TOOLS/logs/apt.log" >&2
		return 1
	fi
}

install_apt() {
	local req opt
	mapfile -t req < <(missing_pkgs "${APT_REQUIRED[@]}")
	mapfile -t opt < <(missing_pkgs "${APT_OPTIONAL[@]}")
	if [ "${#req[@]}" -eq 0 ] && [ "${#opt[@]}" -eq 0 ]; then
		log "apt packages present: ${APT_REQUIRED[*]} ${APT_OPTIONAL[*]}"
		return 0
	fi
	if ! apt_usable; then
		log "WARNING: missing apt packages (${req[*]} ${opt[*]}) and no root/sudo to install them"
		return 0
	fi
	if [ "${#req[@]}" -gt 0 ]; then
		apt_install "${req[@]}"
	fi
	if [ "${#opt[@]}" -gt 0 ]; then
		# podman is best effort: the tests that need it say so when it is absent.
		apt_install "${opt[@]}" || log "WARNING: could not install ${opt[*]}; continuing"
	fi
}

# --- Go tools --------------------------------------------------------------

install_go_tools() {
	mkdir -p "$BIN" "$STAMPS" "$TOOLS/logs"
	local goversion entry name modver want have
	goversion=$(go env GOVERSION)
	for entry in "${GO_TOOLS[@]}"; do
		name=${entry%% *}
		modver=${entry#* }
		want="$modver $goversion"
		have=$(cat "$STAMPS/$name" 2>/dev/null || true)
		if [ "$have" = "$want" ] && [ -x "$BIN/$name" ]; then
			log "$name: $modver (cached)"
			continue
		fi
		log "$name: building $modver"
		local start=$SECONDS
		# Static binaries; the tools need no cgo. The test suite's GOFLAGS
		# (e.g. -race) must not leak into tool builds.
		if ! GOBIN="$BIN" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install "$modver" \
			>"$TOOLS/logs/$name.log" 2>&1; then
			cat "$TOOLS/logs/$name.log" >&2
			log "ERROR: building $name failed"
			exit 1
		fi
		printf '%s\n' "$want" >"$STAMPS/$name"
		log "$name: built in $((SECONDS - start))s"
	done
}

main() {
	if ! command -v go >/dev/null 2>&1; then
		log "ERROR: go is not on PATH"
		exit 1
	fi
	install_apt
	install_go_tools
	log "done; tools in $BIN"
}

main "$@"
