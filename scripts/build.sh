#!/usr/bin/env bash
# build.sh: build a release binary of berth, its version stamped in.
#
#   scripts/build.sh [OUT]          (default: dist/berth)
#
# The version is `git describe --tags --always --dirty` (a tag v1.2.3, or
# v1.2.3-4-gabcdef0 after it, or the short commit with no tag), the
# commit is HEAD and the date is now (or $SOURCE_DATE_EPOCH, for
# reproducible builds); `berth version` prints them. Set VERSION, COMMIT
# or BUILD_DATE to override (a build from a source tarball has no git).
#
# The binary is static (CGO_ENABLED=0) and built for GOOS/GOARCH from the
# environment (default: this machine). GOFLAGS is not inherited (a test
# run's -race, a machine's -buildvcs=false); BUILD_GOFLAGS is used instead.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$ROOT/dist/berth}

git_() { git -C "$ROOT" "$@" 2>/dev/null; }
version=${VERSION:-$(git_ describe --tags --always --dirty --match 'v[0-9]*' || echo "")}
commit=${COMMIT:-$(git_ rev-parse HEAD || echo "")}
if [ -n "${BUILD_DATE:-}" ]; then
	date=$BUILD_DATE
elif [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
	date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
else
	date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
fi

mkdir -p "$(dirname "$out")"
cd "$ROOT"
CGO_ENABLED=0 GOFLAGS="${BUILD_GOFLAGS:-}" go build -trimpath -buildvcs=auto \
	-ldflags "-s -w -X main.version=$version -X main.commit=$commit -X main.date=$date" \
	-o "$out" ./cmd/berth
echo "build: $out ($version, $(go env GOOS)/$(go env GOARCH))"
