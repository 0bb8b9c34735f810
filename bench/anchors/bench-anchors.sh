#!/usr/bin/env bash
# bench-anchors.sh: how much latency LLM gateways add over a direct call, side by side in one run.
#
# aigw's copy of ../shared/bench/bench-anchors.sh, with a streaming mode (MODE=stream: the mock
# serves a CHUNKS-chunk SSE answer as a static body, and every target is asked with
# "stream":true). bench/anchors/aigw.sh runs it with aigw as the extra target.
#
# Starts, all on 127.0.0.1: a fixed-answer mock OpenAI upstream (nginx, no think time), a
# reference nginx proxy in front of it ("physical limit"), Portkey gateway OSS (Node) and the
# LiteLLM proxy (Python), plus an optional extra gateway. Drives each with wrk (a small POST
# /v1/chat/completions), targets interleaved, ROUNDS rounds of two load shapes:
#   seq  - 1 connection, 1 thread, DURATION s: sequential latency p50/p90/p99
#   tput - TPUT_CONNS connections, TPUT_THREADS threads, DURATION s: req/s and p50/p99
# Reports the median over rounds, added p50 over the direct call, server CPU per request, the
# CPU that other programs used during each run (a noisy machine flags the run), and RSS of each
# server after the load. Stops everything it started, by the process-group ids it recorded.
# Load generator, mock and gateway share the machine's cores: compare numbers from one run.
#
# Run:   bash bench-anchors.sh                (installs what is missing on first use)
# Knobs (environment, defaults in brackets):
#   BENCH_WORK [/tmp/anchorbench]  installs (portkey/, litellm-venv/) and runs (run-<stamp>/)
#   ROUNDS [3] DURATION [10] (s) TPUT_CONNS [16] TPUT_THREADS [2] WARMUP [3] (s per target)
#   TARGETS ["direct nginx portkey litellm"]  which built-in targets, in round order
#   EXTRA_NAME [extra] EXTRA_URL  another gateway's chat-completions URL, added as a target
#   EXTRA_HEADERS   its request headers, '|'-separated, e.g. "Authorization: Bearer x"
#   EXTRA_BODY      its request body, if "model":"mock" will not do
#   EXTRA_CMD       a simple command that starts it (exec'd by bash -c in its own process group,
#                   environment plus MOCK_PORT and MOCK_URL=http://127.0.0.1:$MOCK_PORT/v1),
#                   waited for, measured and stopped; its output goes to run-*/extra.log
#   EXTRA_PID       or the pid of one already running (CPU and RSS of its process group; not stopped)
#   EXTRA2_NAME [extra2] EXTRA2_URL EXTRA2_HEADERS EXTRA2_PID
#                   a second extra gateway, already running (an A/B of two builds in one run)
#   EXTRA_READY_TIMEOUT [60] s
#   PORTKEY_VERSION [1.15.2]  LITELLM_VERSION [1.108.7] (never 1.82.7/1.82.8: malicious)
#   LITELLM_ARGS    extra arguments to the litellm command, e.g. "--num_workers 2" (default: none)
#   MOCK_PORT [9101] PROXY_PORT [9102] PORTKEY_PORT [8787] LITELLM_PORT [4000] NGINX_WORKERS [1]
#   MODE [json]     json: a small chat completion answered as JSON; stream: the same request
#                   with "stream":true, answered by the mock with a static SSE body of CHUNKS
#                   chunks (the built-in targets and MOCK_URL use its /stream/v1 location)
#   CHUNKS [53]     chunks of that SSE answer (53 is ~11 KB; role, content chunks, finish + usage)
#   BODY_BYTES      pad the request's user message so the body is about this many bytes (the
#                   cost of a large prompt; the mock and the nginx proxy take bodies up to 16 MB)
#   QUIET_WAIT [600] s, in all, to wait for other programs' CPU use to drop below QUIET_PCT [10] %
#   of a core before the first run (and before any run, if others are busy then); NOISY_PCT [20]:
#   a run where others used more is done again, up to RETRY_NOISY [2] times, then kept and flagged
set -euo pipefail

KIT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONF=$KIT/bench
WORK=${BENCH_WORK:-/tmp/anchorbench}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
TPUT_CONNS=${TPUT_CONNS:-16}
TPUT_THREADS=${TPUT_THREADS:-2}
WARMUP=${WARMUP:-3}
TARGETS=${TARGETS:-direct nginx portkey litellm}
PORTKEY_VERSION=${PORTKEY_VERSION:-1.15.2}
LITELLM_VERSION=${LITELLM_VERSION:-1.108.7}
LITELLM_ARGS=${LITELLM_ARGS:-}
MOCK_PORT=${MOCK_PORT:-9101}
PROXY_PORT=${PROXY_PORT:-9102}
PORTKEY_PORT=${PORTKEY_PORT:-8787}
LITELLM_PORT=${LITELLM_PORT:-4000}
NGINX_WORKERS=${NGINX_WORKERS:-1}
QUIET_WAIT=${QUIET_WAIT:-600}
QUIET_PCT=${QUIET_PCT:-10}
NOISY_PCT=${NOISY_PCT:-20}
RETRY_NOISY=${RETRY_NOISY:-2}
EXTRA_NAME=${EXTRA_NAME:-extra}
EXTRA_URL=${EXTRA_URL:-}
EXTRA_HEADERS=${EXTRA_HEADERS:-}
EXTRA_BODY=${EXTRA_BODY:-}
EXTRA_CMD=${EXTRA_CMD:-}
EXTRA_PID=${EXTRA_PID:-}
EXTRA_READY_TIMEOUT=${EXTRA_READY_TIMEOUT:-60}
EXTRA2_NAME=${EXTRA2_NAME:-extra2}
EXTRA2_URL=${EXTRA2_URL:-}
EXTRA2_HEADERS=${EXTRA2_HEADERS:-}
EXTRA2_PID=${EXTRA2_PID:-}
MODE=${MODE:-json}
CHUNKS=${CHUNKS:-53}
case "$MODE" in
  json)   BODY='{"model":"mock","messages":[{"role":"user","content":"hi"}]}'; BASE=/v1 ;;
  stream) BODY='{"model":"mock","messages":[{"role":"user","content":"hi"}],"stream":true}'; BASE=/stream/v1 ;;
  *) echo "MODE must be json or stream"; exit 2 ;;
esac
[[ "$CHUNKS" =~ ^[0-9]+$ ]] && [ "$CHUNKS" -ge 3 ] || { echo "CHUNKS must be a number >= 3"; exit 2; }
BODY_BYTES=${BODY_BYTES:-}
[ -z "$BODY_BYTES" ] || [[ "$BODY_BYTES" =~ ^[0-9]+$ ]] || { echo "BODY_BYTES must be a number"; exit 2; }
if [ -n "$BODY_BYTES" ]; then
  BODY=$(python3 -c 'import json,sys; b=json.loads(sys.argv[1]); pad=max(0,int(sys.argv[2])-len(sys.argv[1])); b["messages"][0]["content"]="hi "+"x"*pad; print(json.dumps(b,separators=(",",":")))' "$BODY" "$BODY_BYTES")
fi

case "$LITELLM_VERSION" in 1.82.7|1.82.8) echo "refusing litellm $LITELLM_VERSION: a malicious release"; exit 2;; esac
[ -z "$EXTRA_URL" ] || [[ "$EXTRA_URL" =~ ^http://(127\.[0-9.]+|localhost|\[::1\])[:/] ]] \
  || { echo "EXTRA_URL must be a loopback http URL"; exit 2; }
[ -z "$EXTRA2_URL" ] || { [[ "$EXTRA2_URL" =~ ^http://(127\.[0-9.]+|localhost|\[::1\])[:/] ]] && [ -n "$EXTRA2_PID" ]; } \
  || { echo "EXTRA2_URL must be a loopback http URL, with EXTRA2_PID"; exit 2; }
for t in $TARGETS; do case $t in direct|nginx|portkey|litellm) ;; *) echo "unknown target $t"; exit 2;; esac; done

STAMP=$(date +%Y%m%d-%H%M%S)
RUN=$WORK/run-$STAMP
mkdir -p "$RUN/wrk" "$RUN/home"
log() { printf '[%s] %s\n' "$(date +%T)" "$*" | tee -a "$RUN/bench.log" >&2; }
PROBLEMS=()
EXTRA_PGID_EXT=""   # process group of an already-running extra gateway (EXTRA_PID)
EXTRA2_PGID_EXT=""  # and of the second one (EXTRA2_PID)
problem() { PROBLEMS+=("$*"); log "PROBLEM: $*"; }

# ---------------------------------------------------------------- process bookkeeping
declare -A PGID=()      # name -> process-group id of a server this script started
STOP_ORDER=()
start_bg() {  # start_bg NAME CMD... : own session/process group; its id is recorded before exec
  local name=$1; shift
  rm -f "$RUN/$name.pid"
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$RUN/$name.pid" "$@" >"$RUN/$name.log" 2>&1 </dev/null &
  local i
  for i in $(seq 100); do [ -s "$RUN/$name.pid" ] && break; sleep 0.05; done
  PGID[$name]=$(cat "$RUN/$name.pid")
  STOP_ORDER+=("$name")
  echo "$name ${PGID[$name]}" >>"$RUN/pgids"
}
group_alive() { kill -0 -- "-$1" 2>/dev/null; }
stop_all() {
  local name g i
  for name in "${STOP_ORDER[@]}"; do
    g=${PGID[$name]}
    group_alive "$g" || continue
    kill -TERM -- "-$g" 2>/dev/null || true
  done
  for name in "${STOP_ORDER[@]}"; do
    g=${PGID[$name]}
    for i in $(seq 100); do group_alive "$g" || break; sleep 0.1; done
    if group_alive "$g"; then log "process group $g ($name) still there after 10 s: KILL"; kill -KILL -- "-$g" 2>/dev/null || true; fi
  done
  STOP_ORDER=()
}
trap 'stop_all' EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_http() {  # wait_http URL SECONDS NAME: until the URL answers anything, while NAME's group lives
  local url=$1 secs=$2 name=${3:-} i
  for i in $(seq $((secs * 10))); do
    curl -s -o /dev/null --max-time 2 "$url" && return 0
    if [ -n "$name" ] && [ -n "${PGID[$name]:-}" ] && ! group_alive "${PGID[$name]}"; then return 1; fi
    sleep 0.1
  done
  return 1
}

# CPU ticks and memory of process groups, read from /proc (fields after the last ") " in stat).
TICK=$(getconf CLK_TCK)
grp_ticks() {  # grp_ticks PGID... -> summed utime+stime ticks of live processes in those groups
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v g=" $* " '{s=$0; sub(/.*\) /,"",s); split(s,f," ");
    if (index(g, " " f[3] " ")) t += f[12] + f[13]} END {print t+0}'
}
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
grp_mem() {  # grp_mem PGID -> "rss_kib hwm_kib nprocs" summed over the group
  local p rss=0 hwm=0 n=0 r w
  for p in $(cat /proc/[0-9]*/stat 2>/dev/null | awk -v g="$1" '{s=$0; pid=$1; sub(/.*\) /,"",s); split(s,f," "); if (f[3]==g) print pid}'); do
    read -r r w < <(awk '/^VmRSS:/{r=$2} /^VmHWM:/{w=$2} END{print r+0, w+0}' "/proc/$p/status" 2>/dev/null || echo "0 0")
    rss=$((rss + r)); hwm=$((hwm + w)); n=$((n + 1))
  done
  echo "$rss $hwm $n"
}
all_groups() { local n; for n in "${!PGID[@]}"; do echo -n "${PGID[$n]} "; done; [ -n "$EXTRA_PGID_EXT" ] && echo -n "$EXTRA_PGID_EXT "; [ -n "$EXTRA2_PGID_EXT" ] && echo -n "$EXTRA2_PGID_EXT"; echo; }
foreign_pct() {  # foreign_pct SECONDS: % of one core used by programs other than ours
  local secs=$1 b0 o0 b1 o1 g
  g=$(all_groups)
  b0=$(busy_ticks); o0=$(grp_ticks $g)
  sleep "$secs"
  b1=$(busy_ticks); o1=$(grp_ticks $g)
  awk -v b=$((b1 - b0)) -v o=$((o1 - o0)) -v s="$secs" -v t="$TICK" 'BEGIN{x=(b-o)/t/s*100; if (x<0) x=0; printf "%.0f", x}'
}
top_others() {  # the three busiest processes of the last second that are not ours
  top -b -n 2 -d 1 -w 200 2>/dev/null | awk -v g=" $(all_groups) " '/^top -/ {n++; next}
    n == 2 && $1 ~ /^[0-9]+$/ {cmd = "ps -o pgid= -p " $1; cmd | getline pg; close(cmd); gsub(/ /, "", pg);
      if (!index(g, " " pg " ") && $9 + 0 > 0 && k < 3) {printf "%s%s %s%%", (k ? "; " : ""), $12, $9; k++}}'
}
WAITED=0   # seconds spent waiting for quiet in this run, all waits together (capped by QUIET_WAIT)
wait_quiet() {  # wait_quiet: until others use at most QUIET_PCT % of a core (2 s samples); sets QUIET_F
  while :; do
    QUIET_F=$(foreign_pct 2)
    [ "$QUIET_F" -le "$QUIET_PCT" ] && return 0
    [ "$WAITED" -ge "$QUIET_WAIT" ] && return 1
    [ $((WAITED % 60)) -eq 0 ] && log "others use $QUIET_F% of a core ($(top_others)); waiting for quiet"
    WAITED=$((WAITED + 2))
  done
}

# ---------------------------------------------------------------- tools and installs
need_apt=()
command -v nginx >/dev/null || need_apt+=(nginx)
command -v wrk >/dev/null || need_apt+=(wrk)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]} from Debian"
  apt-get update >"$RUN/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_apt[@]}" >>"$RUN/apt.log" 2>&1 \
    || { log "apt-get failed, see $RUN/apt.log"; exit 1; }
fi
NGINX=$(command -v nginx)

has() { case " $TARGETS " in *" $1 "*) return 0;; esac; return 1; }
drop_target() { TARGETS=$(echo " $TARGETS " | sed "s/ $1 / /" | xargs); }

PORTKEY_DIR=$WORK/portkey
PORTKEY_JS=$PORTKEY_DIR/node_modules/@portkey-ai/gateway/build/start-server.js
if has portkey; then
  have=$(node -p "require('$PORTKEY_DIR/node_modules/@portkey-ai/gateway/package.json').version" 2>/dev/null || true)
  if [ "$have" != "$PORTKEY_VERSION" ]; then
    log "installing @portkey-ai/gateway@$PORTKEY_VERSION into $PORTKEY_DIR"
    mkdir -p "$PORTKEY_DIR"; [ -f "$PORTKEY_DIR/package.json" ] || echo '{"private":true}' >"$PORTKEY_DIR/package.json"
    (cd "$PORTKEY_DIR" && npm install --no-audit --no-fund "@portkey-ai/gateway@$PORTKEY_VERSION") >"$RUN/npm.log" 2>&1 \
      || { problem "npm install @portkey-ai/gateway@$PORTKEY_VERSION failed (see npm.log)"; drop_target portkey; }
  fi
fi

VENV=$WORK/litellm-venv
if has litellm; then
  have=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null || true)
  if [ "$have" != "$LITELLM_VERSION" ]; then
    log "installing litellm[proxy]==$LITELLM_VERSION into $VENV (a minute or two)"
    rm -rf "$VENV"
    { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION"; } >"$RUN/pip.log" 2>&1 \
      || { problem "pip install litellm[proxy]==$LITELLM_VERSION failed (see pip.log)"; drop_target litellm; }
  fi
  # the 1.82.8 payload shipped a .pth file that runs at every Python start: refuse any unexpected one
  if has litellm; then
    odd=$(find "$VENV"/lib/python*/site-packages -maxdepth 1 -name '*.pth' ! -name 'distutils-precedence.pth' ! -name '_virtualenv.pth' 2>/dev/null || true)
    [ -z "$odd" ] || { problem "unexpected .pth files in the LiteLLM venv: $odd -- not running it"; drop_target litellm; }
  fi
fi

# ---------------------------------------------------------------- start servers
for p in $MOCK_PORT $PROXY_PORT $(has portkey && echo "$PORTKEY_PORT") $(has litellm && echo "$LITELLM_PORT"); do
  port_free "$p" || { log "port $p on 127.0.0.1 is taken: set the *_PORT knobs"; exit 1; }
done

render() { sed -e "s#@RUN@#$RUN#g" -e "s#@MOCK_PORT@#$MOCK_PORT#g" -e "s#@BASE@#$BASE#g" -e "s#@PROXY_PORT@#$PROXY_PORT#g" -e "s#@NGINX_WORKERS@#$NGINX_WORKERS#g" "$1"; }
# The streamed answer: one role chunk, CHUNKS-2 content chunks, one with finish_reason and usage,
# then [DONE], as a static file the mock serves (stream-location.conf.tmpl says how).
python3 "$CONF/sse.py" "$CHUNKS" "$RUN/stream.sse"
render "$CONF/stream-location.conf.tmpl" >"$RUN/stream-location.conf"
for role in mock proxy; do
  mkdir -p "$RUN/$role-nginx/tmp"
  render "$CONF/$role-nginx.conf.tmpl" >"$RUN/$role-nginx.conf"
  "$NGINX" -t -q -c "$RUN/$role-nginx.conf" -p "$RUN/$role-nginx/" -e "$RUN/$role-nginx/error.log" 2>>"$RUN/bench.log" \
    || { log "nginx config for $role does not load"; exit 1; }
done
MOCK_URL=http://127.0.0.1:$MOCK_PORT$BASE
start_bg mock "$NGINX" -c "$RUN/mock-nginx.conf" -p "$RUN/mock-nginx/" -e "$RUN/mock-nginx/error.log"
wait_http "$MOCK_URL/models" 10 mock || { log "mock did not come up (see mock.log)"; exit 1; }
start_bg nginx "$NGINX" -c "$RUN/proxy-nginx.conf" -p "$RUN/proxy-nginx/" -e "$RUN/proxy-nginx/error.log"
wait_http "http://127.0.0.1:$PROXY_PORT/v1/models" 10 nginx || { log "nginx proxy did not come up (see nginx.log)"; exit 1; }

NODE_BIN=$(command -v node || true)
if has portkey; then
  log "starting Portkey gateway $PORTKEY_VERSION on 127.0.0.1:$PORTKEY_PORT"
  # env -i: no credentials reach the gateway. The preload makes its listen() bind to loopback only.
  start_bg portkey env -i PATH="$(dirname "$NODE_BIN"):/usr/bin:/bin" HOME="$RUN/home" LANG=C.UTF-8 \
    "$NODE_BIN" --import "$CONF/localhost-only.mjs" "$PORTKEY_JS" --port="$PORTKEY_PORT" --headless
  wait_http "http://127.0.0.1:$PORTKEY_PORT/" 60 portkey || { problem "Portkey did not come up (see portkey.log)"; drop_target portkey; }
fi

LITELLM_KEY=sk-bench-$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
if has litellm; then
  log "starting LiteLLM proxy $LITELLM_VERSION on 127.0.0.1:$LITELLM_PORT"
  render "$CONF/litellm.yaml.tmpl" >"$RUN/litellm.yaml"
  # env -i: no credentials in its environment; local cost map (no pricing fetch); a master key
  # because recent releases refuse to start without one.
  start_bg litellm env -i PATH="$VENV/bin:/usr/bin:/bin" HOME="$RUN/home" LANG=C.UTF-8 \
    LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_MASTER_KEY="$LITELLM_KEY" \
    "$VENV/bin/litellm" --config "$RUN/litellm.yaml" --host 127.0.0.1 --port "$LITELLM_PORT" $LITELLM_ARGS
  wait_http "http://127.0.0.1:$LITELLM_PORT/health/liveliness" 120 litellm || { problem "LiteLLM did not come up (see litellm.log)"; drop_target litellm; }
fi

if [ -n "$EXTRA_URL" ]; then
  if [ -n "$EXTRA_CMD" ]; then
    log "starting $EXTRA_NAME: $EXTRA_CMD"
    start_bg extra bash -c "export MOCK_PORT=$MOCK_PORT MOCK_URL=$MOCK_URL; exec $EXTRA_CMD"
  elif [ -n "$EXTRA_PID" ]; then
    EXTRA_PGID_EXT=$(ps -o pgid= -p "$EXTRA_PID" | tr -d ' ')
    [ -n "$EXTRA_PGID_EXT" ] || { log "EXTRA_PID $EXTRA_PID is not running"; exit 1; }
  fi
  for i in $(seq $((EXTRA_READY_TIMEOUT * 10))); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$EXTRA_URL" || true)
    [ "$code" != "000" ] && break
    [ -n "$EXTRA_CMD" ] && ! group_alive "${PGID[extra]}" && break
    sleep 0.1
  done
  [ "${code:-000}" != "000" ] || { log "$EXTRA_NAME does not answer at $EXTRA_URL (see extra.log)"; exit 1; }
fi

# ---------------------------------------------------------------- targets
declare -A URL=() HDRS=() CPUGRP=() BODIES=()
ORDER=()
for t in $TARGETS; do
  case $t in
    direct)  URL[$t]=$MOCK_URL/chat/completions; HDRS[$t]="Authorization: Bearer x"; CPUGRP[$t]=${PGID[mock]} ;;
    nginx)   URL[$t]=http://127.0.0.1:$PROXY_PORT$BASE/chat/completions; HDRS[$t]="Authorization: Bearer x"; CPUGRP[$t]=${PGID[nginx]} ;;
    portkey) URL[$t]=http://127.0.0.1:$PORTKEY_PORT/v1/chat/completions
             HDRS[$t]="Authorization: Bearer x|x-portkey-provider: openai|x-portkey-custom-host: $MOCK_URL"; CPUGRP[$t]=${PGID[portkey]} ;;
    litellm) URL[$t]=http://127.0.0.1:$LITELLM_PORT/v1/chat/completions; HDRS[$t]="Authorization: Bearer $LITELLM_KEY"; CPUGRP[$t]=${PGID[litellm]} ;;
  esac
  BODIES[$t]=$BODY
  ORDER+=("$t")
done
if [ -n "$EXTRA_URL" ]; then
  URL[$EXTRA_NAME]=$EXTRA_URL; HDRS[$EXTRA_NAME]=$EXTRA_HEADERS
  CPUGRP[$EXTRA_NAME]=${PGID[extra]:-$EXTRA_PGID_EXT}
  BODIES[$EXTRA_NAME]=${EXTRA_BODY:-$BODY}
  ORDER+=("$EXTRA_NAME")
fi
if [ -n "$EXTRA2_URL" ]; then
  EXTRA2_PGID_EXT=$(ps -o pgid= -p "$EXTRA2_PID" | tr -d ' ')
  [ -n "$EXTRA2_PGID_EXT" ] || { log "EXTRA2_PID $EXTRA2_PID is not running"; exit 1; }
  URL[$EXTRA2_NAME]=$EXTRA2_URL; HDRS[$EXTRA2_NAME]=$EXTRA2_HEADERS
  CPUGRP[$EXTRA2_NAME]=$EXTRA2_PGID_EXT
  BODIES[$EXTRA2_NAME]=${EXTRA_BODY:-$BODY}
  ORDER+=("$EXTRA2_NAME")
fi

body_file() {  # body_file TARGET -> a file holding its request body
  local f=$RUN/body-$1.json
  [ -f "$f" ] || printf '%s' "${BODIES[$1]}" >"$f"
  echo "$f"
}
hdr_args() { local IFS='|'; local h; for h in $1; do [ -n "$h" ] && printf '%s\0' "$h"; done; }
verify() {  # one request through the target must return the mock's answer
  local t=$1 args=() h code
  while IFS= read -r -d '' h; do args+=(-H "$h"); done < <(hdr_args "${HDRS[$t]}")
  code=$(curl -s -o "$RUN/verify-$t.json" -w '%{http_code}' --max-time 30 -X POST "${URL[$t]}" \
    -H 'Content-Type: application/json' "${args[@]}" --data-binary "@$(body_file "$t")" || echo 000)
  local object='"chat.completion"'
  [ "$MODE" = stream ] && object='"chat.completion.chunk"'
  if [ "$code" = 200 ] && grep -q "$object" "$RUN/verify-$t.json" && grep -q 'Hello from the mock.' "$RUN/verify-$t.json" \
     && { [ "$MODE" = json ] || grep -q 'data: \[DONE\]' "$RUN/verify-$t.json"; }; then
    log "verified $t: HTTP 200, mock answer came back"
    return 0
  fi
  problem "$t: verification request got HTTP $code: $(head -c 300 "$RUN/verify-$t.json")"
  return 1
}
KEEP=()
for t in "${ORDER[@]}"; do verify "$t" && KEEP+=("$t"); done
ORDER=("${KEEP[@]}")
[ ${#ORDER[@]} -gt 0 ] || { log "no target works"; exit 1; }

wrk_run() {  # wrk_run TARGET CONNS THREADS SECONDS OUTFILE -> appends nothing; caller parses
  local t=$1 c=$2 th=$3 s=$4 out=$5 args=() h
  while IFS= read -r -d '' h; do args+=("$h"); done < <(hdr_args "${HDRS[$t]}")
  BENCH_BODY_FILE=$(body_file "$t") wrk -t"$th" -c"$c" -d"${s}s" --timeout 10s --latency -s "$CONF/chat.lua" "${URL[$t]}" -- "${args[@]}" >"$out" 2>&1
}

# ---------------------------------------------------------------- quiet machine, warm-up
log "waiting for a quiet machine (other programs under $QUIET_PCT% of a core; up to $QUIET_WAIT s)"
if wait_quiet; then log "quiet: others at $QUIET_F% of a core"
else problem "machine still busy after $QUIET_WAIT s (others at $QUIET_F% of a core); measuring anyway, noisy runs are flagged"; fi

log "warm-up: $WARMUP s at $TPUT_CONNS connections per target"
for t in "${ORDER[@]}"; do wrk_run "$t" "$TPUT_CONNS" "$TPUT_THREADS" "$WARMUP" "$RUN/wrk/warmup-$t.txt"; done

# ---------------------------------------------------------------- measured rounds
RES=$RUN/results.tsv
printf 'round\tshape\ttarget\trequests\trps\tp50_us\tp90_us\tp99_us\tmean_us\tmax_us\terrors\tnon2xx\tserver_cpu_us_per_req\twrk_cpu_pct\tothers_pct\ttries\n' >"$RES"
TIMEFORMAT='%R %U %S'
measure() {  # measure ROUND SHAPE TARGET CONNS THREADS TRY -> sets ROW (tab-separated metrics) and OTHERS
  local r=$1 shape=$2 t=$3 c=$4 th=$5 try=$6 out g b0 o0 s0 b1 o1 s1 line wall wu ws errs
  out=$RUN/wrk/r$r-$shape-$t-try$try.txt
  g=$(all_groups)
  b0=$(busy_ticks); o0=$(grp_ticks $g); s0=$(grp_ticks "${CPUGRP[$t]}")
  { time wrk_run "$t" "$c" "$th" "$DURATION" "$out"; } 2>"$out.time"
  b1=$(busy_ticks); o1=$(grp_ticks $g); s1=$(grp_ticks "${CPUGRP[$t]}")
  line=$(grep '^BENCHLINE' "$out" || true)
  [ -n "$line" ] || { problem "r$r $shape $t: wrk gave no result (see wrk/$(basename "$out"))"; ROW=""; OTHERS=0; return 1; }
  read -r wall wu ws <"$out.time"
  eval "$(echo "$line" | tr ' ' '\n' | grep '=' | sed 's/^/W_/')"
  local extra
  extra=$(awk -v b=$((b1 - b0)) -v o=$((o1 - o0)) -v s=$((s1 - s0)) -v tk="$TICK" -v wall="$wall" -v wu="$wu" -v ws="$ws" -v n="$W_requests" '
    BEGIN { wrk = wu + ws; others = (b / tk - o / tk - wrk) / wall * 100; if (others < 0) others = 0;
            printf "%.1f\t%.0f\t%.0f", (n > 0 ? s / tk / n * 1e6 : 0), wrk / wall * 100, others }')
  OTHERS=$(echo "$extra" | cut -f3)
  errs=$((W_err_connect + W_err_read + W_err_write + W_err_timeout))
  ROW=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$r" "$shape" "$t" "$W_requests" "$W_rps" \
    "$W_p50_us" "$W_p90_us" "$W_p99_us" "$W_mean_us" "$W_max_us" "$errs" "$W_err_status" "$extra")
  log "r$r $shape $(printf '%-8s' "$t") $(printf '%9.1f' "$W_rps") req/s  p50 $(awk -v x="$W_p50_us" 'BEGIN{printf "%.3f", x/1000}') ms  p99 $(awk -v x="$W_p99_us" 'BEGIN{printf "%.3f", x/1000}') ms  others ${OTHERS}%$( [ "$try" -gt 1 ] && echo " (try $try)")"
}
for r in $(seq "$ROUNDS"); do
  for shape in seq tput; do
    if [ "$shape" = seq ]; then c=1; th=1; else c=$TPUT_CONNS; th=$TPUT_THREADS; fi
    for t in "${ORDER[@]}"; do
      try=1
      while :; do
        f=$(foreign_pct 1)  # the pause between runs doubles as a check for other load
        [ "$f" -le "$QUIET_PCT" ] || wait_quiet || true
        measure "$r" "$shape" "$t" "$c" "$th" "$try" || break
        if [ "$OTHERS" -gt "$NOISY_PCT" ] && [ "$try" -le "$RETRY_NOISY" ]; then
          log "others used ${OTHERS}% of a core during that run: again"; try=$((try + 1)); continue
        fi
        printf '%s\t%s\n' "$ROW" "$try" >>"$RES"
        break
      done
    done
  done
done

# ---------------------------------------------------------------- memory after the load, versions
MEM=$RUN/mem.tsv
printf 'target\trss_kib\thwm_kib\tprocs\n' >"$MEM"
for t in "${ORDER[@]}"; do
  printf '%s\t%s\n' "$t" "$(grp_mem "${CPUGRP[$t]}" | tr ' ' '\t')" >>"$MEM"
done

{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "machine: $(nproc) cores ($(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)), $(uname -sr)"
  echo "nginx: $("$NGINX" -v 2>&1 | sed 's/.*version: //')"
  echo "wrk: $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
  has portkey && echo "portkey: @portkey-ai/gateway $(node -p "require('$PORTKEY_DIR/node_modules/@portkey-ai/gateway/package.json').version"), node $(node --version)"
  has litellm && echo "litellm: $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))'), python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())')${LITELLM_ARGS:+, args: $LITELLM_ARGS}"
  [ -n "$EXTRA_URL" ] && echo "extra: $EXTRA_NAME at $EXTRA_URL${EXTRA_CMD:+ (started with: $EXTRA_CMD)}"
  [ -n "$EXTRA2_URL" ] && echo "extra2: $EXTRA2_NAME at $EXTRA2_URL"
  echo "shapes: seq = 1 connection 1 thread; tput = $TPUT_CONNS connections $TPUT_THREADS threads; ${DURATION} s each; $ROUNDS rounds, targets interleaved"
  echo "mode: $MODE$([ "$MODE" = stream ] && echo ", $CHUNKS chunks ($(grep -c "^data: " "$RUN/stream.sse") events with [DONE], $(wc -c <"$RUN/stream.sse") bytes)")"
  [ -n "$BODY_BYTES" ] && echo "request body: $(wc -c <"$(body_file "${ORDER[0]}")") bytes"
  echo "nginx workers: $NGINX_WORKERS"
  for p in "${PROBLEMS[@]}"; do echo "problem: $p"; done
} >"$RUN/meta.txt"

stop_all
python3 "$CONF/summarize.py" "$RUN" | tee "$RUN/summary.md"
log "all files of this run: $RUN"
