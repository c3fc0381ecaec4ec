#!/usr/bin/env bash
# bench.sh: Berth side by side with CNCF distribution and zot (issue 11).
#
#   1. builds berth and berth-bench; go-installs distribution v3.1.2 into
#      .tools/bench/ (once); takes zot from ZOT_BIN, else .tools/bench/zot
#      (see docs/performance.md for building zot v2.1.20), else leaves it out
#   2. REPS times: measures the machine's limits (sha256, ServeContent
#      loopback, a plain upload server on loopback, fdatasync'd writes, small
#      fsyncs), then starts each registry
#      on fresh storage on a free 127.0.0.1 port and runs the same scenarios
#      against it (the order of the registries rotates every repetition)
#      then, on a machine of 2 CPUs or more, runs PINNED_SCENARIOS again
#      against a fresh server pinned to CPU 0 with the load tool pinned to
#      CPU 1 (taskset), so that the latencies are the server's and not the
#      two processes sharing cores; the table reports these apart
#   3. times `berth serve` to ready with READY_MANIFESTS manifests stored
#   4. prints one markdown table: medians, min–max, Berth's ratio to each,
#      Berth against the limits
#
# Not part of scripts/test.sh. Results (JSON per run, logs, table.md) go to
# test-output/bench/<time>/. The whole run takes about 30 minutes on 2 cores.
#
# Environment:
#   REPS              repetitions (default 3)
#   REGISTRIES        which to run (default "berth distribution zot zot-commit";
#                     zot-commit is zot with "commit": true, which fsyncs
#                     what it acknowledges as Berth does; zot's default does not)
#   ZOT_BIN           a zot binary (default .tools/bench/zot when present)
#   BENCH_FLAGS       extra `berth-bench run` flags: sizes, e.g.
#                     "-blob-mib 64 -duration 3s" (berth-bench run -h lists them)
#   SCENARIOS         scenarios for Berth (default all); the others run those
#                     of them any registry can run
#   READY_MANIFESTS   manifests stored for the ready time (default 100000; 0 skips)
#   PINNED_SCENARIOS  scenarios of the pinned runs (default
#                     "manifest-get,blob-head"; empty skips them)
#   BENCH_OUT         output directory
#   DROP_CACHES       1 (the default when /proc/sys/vm/drop_caches is
#                     writable, as root): before the limits and before each
#                     server starts, sync and drop the kernel's clean caches,
#                     so that no run pays for what the run before it deleted
#                     (docs/performance.md, "Since run 11"); 0 leaves them
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

REPS=${REPS:-3}
REGISTRIES=${REGISTRIES:-berth distribution zot zot-commit}
READY_MANIFESTS=${READY_MANIFESTS:-100000}
PINNED_SCENARIOS=${PINNED_SCENARIOS-manifest-get,blob-head}
if [ "$(nproc)" -lt 2 ]; then
	PINNED_SCENARIOS=
fi
BENCH_FLAGS=${BENCH_FLAGS:-}
TOOLS="$ROOT/.tools/bench"
OUT=${BENCH_OUT:-$ROOT/test-output/bench/$(date -u +%Y%m%dT%H%M%SZ)}
DISTRIBUTION_VERSION=v3.1.2

mkdir -p "$OUT/bin" "$OUT/work" "$TOOLS"
# Fetch modules while any proxy settings still apply; then loopback only.
echo "==> building berth and berth-bench"
go build -o "$OUT/bin/berth" ./cmd/berth
go build -o "$OUT/bin/berth-bench" ./cmd/berth-bench
BERTH="$OUT/bin/berth"
BB="$OUT/bin/berth-bench"

if [[ " $REGISTRIES " == *" distribution "* ]]; then
	if [ ! -x "$TOOLS/registry" ] || [ "$(cat "$TOOLS/registry.version" 2>/dev/null)" != "$DISTRIBUTION_VERSION" ]; then
		echo "==> go install distribution $DISTRIBUTION_VERSION into $TOOLS (about 8 minutes the first time)"
		GOBIN="$TOOLS" go install "github.com/distribution/distribution/v3/cmd/registry@$DISTRIBUTION_VERSION"
		echo "$DISTRIBUTION_VERSION" >"$TOOLS/registry.version"
	fi
fi
ZOT=${ZOT_BIN:-}
if [ -z "$ZOT" ] && [ -x "$TOOLS/zot" ]; then
	ZOT="$TOOLS/zot"
fi
read -r -a REGS <<<"$REGISTRIES"
if [ -z "$ZOT" ] && [[ " ${REGS[*]} " == *" zot"* ]]; then
	echo "==> no zot (set ZOT_BIN, or build it into $TOOLS/zot: docs/performance.md); leaving it out" >&2
	read -r -a REGS <<<"$(printf '%s\n' "${REGS[@]}" | grep -v '^zot' | paste -sd' ')"
fi

unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

SERVER_PID=
cleanup() {
	if [ -n "$SERVER_PID" ]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
}
trap cleanup EXIT

# wait_up URL: until URL/v2/ answers 200 (60 s at most).
wait_up() {
	for _ in $(seq 600); do
		if [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/v2/")" = 200 ]; then
			return 0
		fi
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then
			echo "the server exited; its log:" >&2
			tail -n 20 "$2" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "$1 did not come up" >&2
	return 1
}

DROP_CACHES=${DROP_CACHES:-$([ -w /proc/sys/vm/drop_caches ] && echo 1 || echo 0)}

# settle: writes back what is dirty and, with DROP_CACHES=1, drops the
# clean page, dentry and inode caches. On a file system without a journal
# (this project's machines), ext4 skips inodes freed in the last minutes
# while their inode table block is cached, and creating a file then scans
# past every inode the last run's rm -rf freed: 19% of Berth's CPU in
# small pushes measured so. Dropping the cache puts every registry's run
# in the same state.
settle() {
	sync
	if [ "$DROP_CACHES" = 1 ]; then
		echo 3 >/proc/sys/vm/drop_caches
	fi
}

# PIN: the command prefix start puts before a server (taskset for the
# pinned runs).
PIN=()

# start REGISTRY DIR: starts it on fresh storage under DIR; sets SERVER_PID, URL.
start() {
	local reg=$1 dir=$2 port
	port=$("$BB" freeport)
	URL="http://127.0.0.1:$port"
	case "$reg" in
	berth)
		# The embedded default (filesystem blobs, SQLite metadata, fsync on).
		"${PIN[@]}" "$BERTH" serve --addr "127.0.0.1:$port" --data "$dir/data" >"$dir/log" 2>&1 &
		;;
	distribution)
		cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
YAML
		OTEL_TRACES_EXPORTER=none "${PIN[@]}" "$TOOLS/registry" serve "$dir/config.yml" >"$dir/log" 2>&1 &
		;;
	zot | zot-commit)
		local commit=false
		if [ "$reg" = zot-commit ]; then
			commit=true
		fi
		cat >"$dir/config.json" <<JSON
{
  "distSpecVersion": "1.1.1",
  "storage": {"rootDirectory": "$dir/data", "gc": true, "commit": $commit},
  "http": {"address": "127.0.0.1", "port": "$port"},
  "log": {"level": "info"}
}
JSON
		"${PIN[@]}" "$ZOT" serve "$dir/config.json" >"$dir/log" 2>&1 &
		;;
	esac
	SERVER_PID=$!
	wait_up "$URL" "$dir/log"
}

stop() {
	kill "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
}

all=${SCENARIOS:-$("$BB" scenarios)}
registry_only=$("$BB" scenarios -registry-only)
peer_scenarios=$(tr ',' '\n' <<<"$all" | grep -Fx -f <(tr ',' '\n' <<<"$registry_only") | paste -sd, -)

limits=()
runs=()
n=${#REGS[@]}
for rep in $(seq "$REPS"); do
	echo "==> repetition $rep of $REPS: machine limits"
	settle
	"$BB" limits -dir "$OUT/work" -json "$OUT/limits-$rep.json"
	limits+=(-limits "$OUT/limits-$rep.json")
	for k in $(seq 0 $((n - 1))); do
		reg=${REGS[$(((k + rep - 1) % n))]}
		dir=$(mktemp -d "$OUT/work/$reg-$rep-XXXX")
		echo "==> repetition $rep of $REPS: $reg"
		settle
		start "$reg" "$dir"
		list=$all
		[ "$reg" = berth ] || list=$peer_scenarios
		# shellcheck disable=SC2086 # BENCH_FLAGS is a list of flags
		"$BB" run -registry "$reg" -url "$URL" -pid "$SERVER_PID" -scenarios "$list" \
			-json "$OUT/run-$reg-$rep.json" $BENCH_FLAGS 2>"$dir/bench.log" || {
			echo "berth-bench against $reg failed:" >&2
			tail -n 20 "$dir/bench.log" >&2
		}
		stop
		cp "$dir/log" "$OUT/$reg-$rep.log"
		rm -rf "$dir"
		[ -f "$OUT/run-$reg-$rep.json" ] && runs+=("$OUT/run-$reg-$rep.json")
	done
	[ -n "$PINNED_SCENARIOS" ] || continue
	for k in $(seq 0 $((n - 1))); do
		reg=${REGS[$(((k + rep - 1) % n))]}
		dir=$(mktemp -d "$OUT/work/$reg-$rep-pinned-XXXX")
		echo "==> repetition $rep of $REPS: $reg, server on CPU 0, load tool on CPU 1"
		settle
		PIN=(taskset -c 0)
		start "$reg" "$dir"
		PIN=()
		# shellcheck disable=SC2086 # BENCH_FLAGS is a list of flags
		taskset -c 1 "$BB" run -registry "$reg" -variant pinned -url "$URL" -pid "$SERVER_PID" -scenarios "$PINNED_SCENARIOS" \
			-json "$OUT/run-$reg-$rep-pinned.json" $BENCH_FLAGS 2>"$dir/bench.log" || {
			echo "berth-bench against $reg (pinned) failed:" >&2
			tail -n 20 "$dir/bench.log" >&2
		}
		stop
		rm -rf "$dir"
		[ -f "$OUT/run-$reg-$rep-pinned.json" ] && runs+=("$OUT/run-$reg-$rep-pinned.json")
	done
done

ready=()
if [ "$READY_MANIFESTS" -gt 0 ] && [[ " ${REGS[*]} " == *" berth "* ]]; then
	echo "==> berth serve ready time with $READY_MANIFESTS manifests stored"
	dir=$(mktemp -d "$OUT/work/ready-XXXX")
	settle
	start berth "$dir"
	"$BB" seed -url "$URL" -n "$READY_MANIFESTS" 2>"$dir/seed.log"
	stop
	port=$("$BB" freeport)
	"$BB" ready -url "http://127.0.0.1:$port" -n "$READY_MANIFESTS" -json "$OUT/ready.json" -- \
		"$BERTH" serve --addr "127.0.0.1:$port" --data "$dir/data"
	ready+=(-ready "$OUT/ready.json")
	rm -rf "$dir"
fi

echo "==> table (also in $OUT/table.md)"
"$BB" table "${limits[@]}" "${ready[@]}" "${runs[@]}" | tee "$OUT/table.md"
