# shellcheck shell=bash
# gateway.sh: sourced by aigw.sh and callgrind.sh. The bench config of aigw (every bundled
# provider and tool plugin loaded, the route to the OpenAI-compatible one, auth on) and the key
# with limits the load is sent with.

# gateway_config PORT PLUGINS UPSTREAM ADMIN [SERVER_EXTRA] [PLUGINS_CACHE]: the config on
# stdout. UPSTREAM is the mock's base URL (http://127.0.0.1:9101/v1); SERVER_EXTRA, lines for
# [server]; PLUGINS_CACHE, the [plugins] lines on the compile cache (default: none);
# AIGW_CONFIG_EXTRA is appended. ROUTE_TARGETS ['"mock/mock"'] is the route's target list:
# '"mock/mock", "groq/mock"' measures a route with a target to fail over to (the relay then
# keeps what it would need to continue a broken stream elsewhere).
gateway_config() {
  local port=$1 plugins=$2 upstream=$3 admin=$4 p
  printf '[server]\nlisten = "127.0.0.1:%s"\ndrain_delay_ms = 0\n%s\n\n' "$port" "${5:-}"
  printf '[auth]\nadmin_key = "%s"\n\n' "$admin"
  printf '[plugins]\ndir = "%s"\n%s\n\n' "$plugins" "${6:-compile_cache = false}"
  # Every bundled provider plugin loaded; the route goes to the OpenAI-compatible one.
  for p in groq openrouter gemini huggingface novita cerebras replicate; do
    printf '[providers.%s]\nplugin = "%s"\nbase_url = "%s"\napi_key = "x"\n\n' "$p" "$p" "$upstream"
  done
  printf '[providers.mock]\nplugin = "openai-compatible"\nbase_url = "%s"\napi_key = "x"\n\n' "$upstream"
  printf '[models.mock]\ntargets = [%s]\n\n' "${ROUTE_TARGETS:-\"mock/mock\"}"
  # Every bundled tool plugin loaded (never called here).
  for p in weather stocks news search; do printf '[tools.%s]\n\n' "$p"; done
  printf '%s\n' "${AIGW_CONFIG_EXTRA:-}"
}

# gateway_key PORT ADMIN: a key with limits high enough never to refuse (the limiter's work is
# on every request), on stdout.
gateway_key() {
  curl -sf -X POST "http://127.0.0.1:$1/admin/keys" -H "Authorization: Bearer $2" \
    -H 'Content-Type: application/json' \
    -d '{"name":"bench","rpm_limit":1000000000,"tpm_limit":1000000000000,"max_parallel_requests":100000}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'
}

# gateway_check PLUGINS BINARY...: stops the script unless the binaries and plugins are built.
gateway_check() {
  local plugins=$1 f
  shift
  for f in "$@"; do
    [ -x "$f" ] || { echo "no gateway binary at $f (cargo build --release -p aigw)"; exit 1; }
  done
  [ -f "$plugins/openai-compatible.wasm" ] || { echo "no plugins in $plugins (cargo xtask plugins)"; exit 1; }
}

# A fresh admin key for the run.
gateway_admin() { echo "bench-admin-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"; }
