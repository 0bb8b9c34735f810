#!/usr/bin/env bash
# callgrind.sh: instructions per request through aigw, counted by valgrind's callgrind: counts
# that repeat run after run on a shared machine where timings do not, so a small change's A/B is
# read off them (instructions are not time: a copy or a cache miss costs unlike an add; confirm a
# gain with aigw.sh). The bench config of aigw.sh (every plugin, keys on), a mock nginx
# upstream, one keep-alive connection; N requests counted after WARM uncounted ones. The
# gateway runs with AIGW_WASM_PROFILER=valgrind (instances allocated on demand: valgrind cannot
# reserve the pooling allocator's address space), its compile cache warmed natively first.
#
# Run from anywhere (release binary and plugins built first, valgrind and nginx installed):
#   bash bench/anchors/callgrind.sh                    # JSON, then the 53-chunk stream
#   MODES=json AIGW_B=/tmp/old-aigw bash bench/anchors/callgrind.sh   # an A/B of two builds
# Knobs: AIGW [target/release/aigw]  AIGW_B  a second build, counted after the first
#   PLUGINS [dist/plugins]  AIGW_B_PLUGINS [PLUGINS] the second build's plugins (an A/B of
#   plugin builds: AIGW_B=$AIGW AIGW_B_PLUGINS=/tmp/old-plugins)  MODES ["json stream"]  N [1000]  WARM [200]  CHUNKS [53]
#   ROUTE_TARGETS ['"mock/mock"'] (gateway.sh)  AIGW_LOG [info]  PORT [9190]  MOCK_PORT [9191]  KEEP: leave the run's directory (the
#   callgrind.out files, for callgrind_annotate --inclusive=yes) instead of removing it
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=gateway.sh
. "$HERE/gateway.sh"
AIGW=${AIGW:-$ROOT/target/release/aigw}
AIGW_B=${AIGW_B:-}
PLUGINS=${PLUGINS:-$ROOT/dist/plugins}
AIGW_B_PLUGINS=${AIGW_B_PLUGINS:-$PLUGINS}
MODES=${MODES:-json stream}
N=${N:-1000}
WARM=${WARM:-200}
CHUNKS=${CHUNKS:-53}
PORT=${PORT:-9190}
MOCK_PORT=${MOCK_PORT:-9191}
for tool in valgrind callgrind_control nginx curl python3; do
  command -v "$tool" >/dev/null || { echo "callgrind.sh needs $tool (apt-get install valgrind nginx-light curl)"; exit 1; }
done
gateway_check "$PLUGINS" "$AIGW" ${AIGW_B:+"$AIGW_B"}
# Each gateway runs in a directory of its own: the paths given must hold from there.
AIGW=$(realpath "$AIGW"); PLUGINS=$(realpath "$PLUGINS"); AIGW_B_PLUGINS=$(realpath "$AIGW_B_PLUGINS")
[ -z "$AIGW_B" ] || AIGW_B=$(realpath "$AIGW_B")
[ "$AIGW_B_PLUGINS" = "$PLUGINS" ] || gateway_check "$AIGW_B_PLUGINS" "$AIGW"

RUN=$(mktemp -d /tmp/aigw-callgrind.XXXXXX)
chmod 755 "$RUN"   # nginx's workers (another user when started by root) read the stream file
ADMIN=$(gateway_admin)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$RUN"
}
trap cleanup EXIT

# The mock: bench-anchors.sh's, answering JSON at /v1 and the stream at /stream/v1.
mkdir -p "$RUN/mock-nginx/tmp"
python3 "$HERE/bench/sse.py" "$CHUNKS" "$RUN/stream.sse"
sed -e "s#@RUN@#$RUN#g" "$HERE/bench/stream-location.conf.tmpl" >"$RUN/stream-location.conf"
sed -e "s#@RUN@#$RUN#g" -e "s#@MOCK_PORT@#$MOCK_PORT#g" -e "s#@NGINX_WORKERS@#1#g" \
  "$HERE/bench/mock-nginx.conf.tmpl" >"$RUN/mock-nginx.conf"
nginx -c "$RUN/mock-nginx.conf" -p "$RUN/mock-nginx/" -e "$RUN/mock-nginx/error.log" \
  </dev/null >"$RUN/mock.log" 2>&1 &
PIDS+=("$!")

up() {
  local _
  for _ in $(seq 600); do curl -s -o /dev/null "$1" && return 0; sleep 0.2; done
  return 1
}
up "http://127.0.0.1:$MOCK_PORT/v1/models" || { echo "the mock did not start"; exit 1; }

taken() { curl -s -o /dev/null "http://127.0.0.1:$1/"; }

# count BIN MODE PLUGINS SIDE: prints "BIN MODE instructions-per-request"
count() {
  local bin=$1 mode=$2 plugins=$3 dir base=/v1 pid key
  dir=$RUN/$4-$(basename "$1")-$2
  [ "$mode" = stream ] && base=/stream/v1
  mkdir -p "$dir"
  ! taken "$PORT" || { echo "port $PORT is taken (a gateway left running?): set PORT"; exit 1; }
  gateway_config "$PORT" "$plugins" "http://127.0.0.1:$MOCK_PORT$base" "$ADMIN" "" \
    "compile_cache = true"$'\n'"cache_dir = \"$RUN/cache\"" >"$dir/aigw.toml"
  # The compile cache warmed natively, with the same engine settings.
  (cd "$dir" && AIGW_WASM_PROFILER=valgrind exec "$bin" serve --config aigw.toml \
    </dev/null >warm.log 2>&1) &
  pid=$!
  up "http://127.0.0.1:$PORT/healthz" || { echo "$bin did not start:"; cat "$dir/warm.log"; exit 1; }
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  while taken "$PORT"; do sleep 0.1; done
  rm -f "$dir"/aigw.db*
  (cd "$dir" && AIGW_WASM_PROFILER=valgrind AIGW_LOG=${AIGW_LOG:-info} exec valgrind \
    --tool=callgrind --instr-atstart=no --callgrind-out-file="$dir/callgrind.out" \
    "$bin" serve --config aigw.toml </dev/null >valgrind.log 2>&1) &
  pid=$!
  PIDS+=("$pid")
  up "http://127.0.0.1:$PORT/healthz" || { echo "$bin did not start under valgrind:"; tail "$dir/valgrind.log"; exit 1; }
  key=$(gateway_key "$PORT" "$ADMIN")
  python3 - "$PORT" "$key" "$mode" "$WARM" "$N" <<'PY'
import http.client, json, subprocess, sys
port, key, mode, warm, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
body = {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}
if mode == "stream":
    body["stream"] = True
body = json.dumps(body)
headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
conn = http.client.HTTPConnection("127.0.0.1", int(port))
def send(count):
    for _ in range(count):
        conn.request("POST", "/v1/chat/completions", body, headers)
        answer = conn.getresponse()
        data = answer.read()
        if answer.status != 200:
            sys.exit(f"status {answer.status}: {data[:300]!r}")
send(warm)
subprocess.run(["callgrind_control", "-i", "on"], check=True, capture_output=True)
send(n)
subprocess.run(["callgrind_control", "-i", "off"], check=True, capture_output=True)
PY
  callgrind_control -d >/dev/null
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  while taken "$PORT"; do sleep 0.1; done
  local total
  # The dump (callgrind_control -d) holds what was counted; its totals line is the sum.
  total=$(cat "$dir"/callgrind.out* | awk '/^totals:/ { s += $2 } END { printf "%.0f", s }')
  printf '%s %-40s %-7s %10d instructions per request (plugins: %s)\n' "$4" "$bin" "$mode" \
    $((total / N)) "$plugins"
}

for mode in $MODES; do
  count "$AIGW" "$mode" "$PLUGINS" a
  [ -z "$AIGW_B" ] || count "$AIGW_B" "$mode" "$AIGW_B_PLUGINS" b
done
[ -z "${KEEP:-}" ] || echo "callgrind files: $RUN"
