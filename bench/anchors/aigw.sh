#!/usr/bin/env bash
# aigw.sh: bench-anchors.sh with aigw as the extra target, the way the performance targets are
# measured: every bundled provider and tool plugin loaded, authentication on, and the load sent
# with a virtual key that has limits (so the limiter runs on every request).
#
# Run from anywhere (release binary and plugins built first: `cargo build --release -p aigw`,
# `cargo xtask plugins`):
#   bash bench/anchors/aigw.sh                      # JSON: direct, nginx, aigw
#   MODE=stream bash bench/anchors/aigw.sh          # the 53-chunk SSE answer
#   MODE=stream CHUNKS=500 bash bench/anchors/aigw.sh
# Knobs: everything bench-anchors.sh takes (TARGETS defaults to "direct nginx" here), plus
#   AIGW [target/release/aigw]  PLUGINS [dist/plugins]  AIGW_PORT [9180]
#   AIGW_LOG [the gateway's default, info]  its log filter (every request logs a line at info)
#   AIGW_CONFIG_EXTRA           TOML appended to the generated config (e.g. a [tracing] section)
#   ROUTE_TARGETS ['"mock/mock"']  the route's targets; '"mock/mock", "groq/mock"' for a route
#                               with a target to fail over to (never called: the first answers)
#   AIGW_NAME [aigw]            the target's name in the tables
#   AIGW_B, AIGW_B_NAME [aigw-b], AIGW_B_PORT [9181], AIGW_B_PLUGINS [PLUGINS]
#                               a second gateway binary measured in the same run, interleaved
#                               with the first (an A/B: the old build as AIGW_B)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=gateway.sh
. "$HERE/gateway.sh"
ROOT=$(cd "$HERE/../.." && pwd)
AIGW=${AIGW:-$ROOT/target/release/aigw}
PLUGINS=${PLUGINS:-$ROOT/dist/plugins}
AIGW_PORT=${AIGW_PORT:-9180}
AIGW_NAME=${AIGW_NAME:-aigw}
AIGW_B=${AIGW_B:-}
AIGW_B_NAME=${AIGW_B_NAME:-aigw-b}
AIGW_B_PORT=${AIGW_B_PORT:-9181}
AIGW_B_PLUGINS=${AIGW_B_PLUGINS:-$PLUGINS}
AIGW_LOG=${AIGW_LOG:-info}
MOCK_PORT=${MOCK_PORT:-9101}
MODE=${MODE:-json}
export TARGETS=${TARGETS:-direct nginx} MOCK_PORT MODE

# The configs live elsewhere: every path absolute.
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
AIGW=$(abs "$AIGW"); PLUGINS=$(abs "$PLUGINS"); AIGW_B_PLUGINS=$(abs "$AIGW_B_PLUGINS")
[ -z "$AIGW_B" ] || AIGW_B=$(abs "$AIGW_B")
gateway_check "$PLUGINS" "$AIGW" ${AIGW_B:+"$AIGW_B"}

WORK=$(mktemp -d /tmp/aigw-anchors.XXXXXX)
ADMIN=$(gateway_admin)
case "$MODE" in stream) BASE=/stream/v1 ;; *) BASE=/v1 ;; esac

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 -- "-$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$p" 2>/dev/null || true
  done
}
trap cleanup EXIT

# start NAME BINARY PORT PLUGINS: a gateway in its own process group; sets PID (its pgid), KEY
start() {
  local name=$1 bin=$2 port=$3 plugins=$4 dir=$WORK/$1
  mkdir -p "$dir"
  gateway_config "$port" "$plugins" "http://127.0.0.1:$MOCK_PORT$BASE" "$ADMIN" >"$dir/aigw.toml"
  setsid env AIGW_LOG="$AIGW_LOG" "$bin" serve --config "$dir/aigw.toml" >"$dir/aigw.log" 2>&1 </dev/null &
  local pid=$!
  PIDS+=("$pid")
  PID=$pid
  for _ in $(seq 300); do
    curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break
    kill -0 "$pid" 2>/dev/null || { echo "$name did not start:"; cat "$dir/aigw.log"; exit 1; }
    sleep 0.1
  done
  local key
  key=$(gateway_key "$port" "$ADMIN")
  [ -n "$key" ] || { echo "$name: could not create a key"; exit 1; }
  KEY=$key
}

start "$AIGW_NAME" "$AIGW" "$AIGW_PORT" "$PLUGINS"
export EXTRA_NAME=$AIGW_NAME EXTRA_URL=http://127.0.0.1:$AIGW_PORT/v1/chat/completions
export EXTRA_HEADERS="Authorization: Bearer $KEY" EXTRA_PID=$PID
if [ -n "$AIGW_B" ]; then
  start "$AIGW_B_NAME" "$AIGW_B" "$AIGW_B_PORT" "$AIGW_B_PLUGINS"
  export EXTRA2_NAME=$AIGW_B_NAME EXTRA2_URL=http://127.0.0.1:$AIGW_B_PORT/v1/chat/completions
  export EXTRA2_HEADERS="Authorization: Bearer $KEY" EXTRA2_PID=$PID
fi
echo "gateway configs and logs: $WORK"
bash "$HERE/bench-anchors.sh"
