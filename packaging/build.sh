#!/usr/bin/env bash
# packaging/build.sh: build Berth's .deb and .rpm with nfpm.
#
#   packaging/build.sh [OUT]        (default: dist/)
#
# Builds the static binary with its version stamped (scripts/build.sh),
# generates the shell completions with `berth completion`, then packages
# packaging/nfpm.yaml for each packager. Prints the packages' paths, one a
# line, last.
#
# Environment:
#   ARCH         GOARCH to package (default: this machine's)
#   PKG_VERSION  the package version (default: from git, below)
#   VERSION      the version `berth version` prints (default: git describe)
#   PACKAGERS    default "deb rpm"
#   NFPM         the nfpm binary (default: nfpm on PATH, else .tools/bin/nfpm,
#                which scripts/install-deps.sh builds)
#
# Package versions sort as releases should, in dpkg and rpm alike:
#   tag v1.2.3                     → 1.2.3
#   5 commits after v1.2.3         → 1.2.3+5.g<commit>
#   tag v1.3.0-rc.1                → 1.3.0~rc.1 (before 1.3.0)
#   no tag yet                     → 0.0.0+git<commit time>.g<commit>
#   uncommitted changes            → … .dirty
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=${1:-$ROOT/dist}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
ARCH=${ARCH:-$(go env GOARCH)}
PACKAGERS=${PACKAGERS:-deb rpm}

NFPM=${NFPM:-$(command -v nfpm || echo "$ROOT/.tools/bin/nfpm")}
if [ ! -x "$NFPM" ]; then
	echo "packaging/build.sh: nfpm not found; run scripts/install-deps.sh" >&2
	exit 1
fi

git_() { git -C "$ROOT" "$@" 2>/dev/null; }

rpm_arch() {
	case "$1" in
	amd64) echo x86_64 ;;
	arm64) echo aarch64 ;;
	*) echo "$1" ;;
	esac
}

pkg_version() {
	local describe short ver tag n
	describe=$(git_ describe --tags --always --dirty --match 'v[0-9]*') || {
		echo "packaging/build.sh: no git repository; set PKG_VERSION and VERSION" >&2
		return 1
	}
	short=$(git_ rev-parse --short=12 HEAD)
	if tag=$(git_ describe --tags --abbrev=0 --match 'v[0-9]*'); then
		ver=${tag#v}
		ver=${ver//-/\~}
		n=$(git_ rev-list --count "$tag..HEAD")
		if [ "$n" -gt 0 ]; then
			ver="$ver+$n.g$short"
		fi
	else
		ver="0.0.0+git$(TZ=UTC git_ log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S).g$short"
	fi
	case "$describe" in *-dirty) ver="$ver.dirty" ;; esac
	printf '%s\n' "$ver"
}

export VERSION=${VERSION:-$(git_ describe --tags --always --dirty --match 'v[0-9]*' || true)}
PKG_VERSION=${PKG_VERSION:-$(pkg_version)}

stage="$OUT/stage-linux-$ARCH"
rm -rf "$stage"
mkdir -p "$stage/completions"
GOOS=linux GOARCH=$ARCH "$ROOT/scripts/build.sh" "$stage/berth" >&2

# The completions come from a binary this machine can run.
gen="$stage/berth"
if [ "$(go env GOHOSTOS)/$(go env GOHOSTARCH)" != "linux/$ARCH" ]; then
	gen="$OUT/stage-host/berth"
	GOOS= GOARCH= "$ROOT/scripts/build.sh" "$gen" >&2
fi
"$gen" completion bash >"$stage/completions/berth.bash"
"$gen" completion zsh >"$stage/completions/_berth"
"$gen" completion fish >"$stage/completions/berth.fish"

export BERTH_PKG_VERSION=$PKG_VERSION BERTH_ARCH=$ARCH BERTH_DIST=$stage
# nfpm dates the entries it makes itself (directories, control files)
# with SOURCE_DATE_EPOCH: the commit time, not the build's.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git_ log -1 --format=%ct || date +%s)}
for p in $PACKAGERS; do
	case "$p" in
	deb) target="$OUT/berth_${PKG_VERSION}_${ARCH}.deb" ;;
	rpm) target="$OUT/berth-${PKG_VERSION}-1.$(rpm_arch "$ARCH").rpm" ;;
	*) target="$OUT/berth_${PKG_VERSION}_${ARCH}.$p" ;;
	esac
	rm -f "$target"
	"$NFPM" package --config packaging/nfpm.yaml --packager "$p" --target "$target" >&2
	printf '%s\n' "$target"
done
