#!/usr/bin/env python3
"""How aigw's costs grow: with the keys and routes it holds, with a conversation's history, and
with the memory store's size. Starts a fixed-answer nginx upstream and the gateway itself, stops
everything it started, and prints one markdown table per part.

    python3 bench/growth.py --aigw target/release/aigw --plugins dist/plugins keys
    python3 bench/growth.py --aigw target/release/aigw --plugins dist/plugins history
    python3 bench/growth.py --aigw target/release/aigw --plugins dist/plugins store

(docs/performance.md's tables: `--aigw /work/ab/base/aigw --plugins /work/ab/base/plugins`.)

- `keys` (`--sizes 1,10,100,1000,10000`): for each n, a config with n routes (`r0` … `r<n-1>`,
  each one target `mock/m<i>`), every bundled provider and tool plugin loaded (as
  `bench/anchors/aigw.sh` does; compile cache on and warm, so start times are not compile
  times), authentication on, and n virtual keys in the store (made through the admin API before
  the timing; the first has every limit, as aigw.sh's, the others none). Timed: `aigw check` of
  the config (config parse + build of the served state), the start (spawn to `listening on`,
  which includes opening the store and loading the key directory), then wrk (`--latency`)
  with the limited key on the last route: 1 connection for p50/p99, 16 for the gateway's CPU
  per request; and again rotating over every key and route (request i uses key i mod n and
  route i mod n). RSS idle after the start, after the fixed load and after the rotating one.
- `history` (`--sizes 10,100,1000,10000`): one conversation of n items per size
  (alternating user/assistant messages of ~10 words), the gateway restarted with
  `[memory] session_max_items = n` (and `session_max_tokens` at its maximum) so each turn is
  sent exactly n items however many turns were appended. Timed, sequential on one keep-alive
  connection: a chat turn naming the conversation (`x-aigw-conversation`), the same request
  with the n messages inline and no header (what the store adds), the Conversations API's first
  page of items (`GET …/items?limit=100`) and the whole conversation paged by 100.
- `store` (`--sizes 10000,100000,1000000`): conversation items appended through the
  Conversations API (conversations of 1,000 items, one request each, 3 concurrent writers) and
  key-value entries put under `/v1/store/` (one request each, 8 concurrent writers), in
  namespace `bench`; each item/entry holds 8 filler words, a unique word `u<i>`, a word
  `m<i mod 1000>` (0.1 % of them) and every 11th `oslo` (9 %). At each size (filling is not
  timed) the timed part: a one-item append to a small conversation, full-text searches of a
  unique word, of an `m` word and of `oslo` (limit 10), `oslo` again from a namespace that holds
  only 100 items, and for entries a put of a new key, a get, and the same searches.
  `--entries-max` stops the entries at a smaller size (their fill is one request per entry).

Every timed part runs under `flock` of `--lock` (default /tmp/bench.lock, shared with other
benchmarks on the machine) and waits first until no `rustc` runs; the untimed filling holds
`--fill-lock` (default /tmp/growth-fill.lock), which timed parts take too, so parts run side by
side never fill while another measures. Ports: `--port` (the
gateway) and `--port + 1` (nginx); default 9320. Latencies are medians (and p99) over the
stated sample counts; wrk figures are the median of `--rounds` rounds.
"""

import argparse
import fcntl
import http.client
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

HOST = "127.0.0.1"
ADMIN = "growth-admin-0123456789abcdef"
MOCK_ANSWER = (
    '{"id":"chatcmpl-mock","object":"chat.completion","created":1700000000,"model":"mock",'
    '"system_fingerprint":null,"choices":[{"index":0,"message":{"role":"assistant",'
    '"content":"Hello from the mock."},"logprobs":null,"finish_reason":"stop"}],'
    '"usage":{"prompt_tokens":8,"completion_tokens":5,"total_tokens":13}}'
)
PROVIDERS = ["groq", "openrouter", "gemini", "huggingface", "novita", "cerebras", "replicate"]
TOOLS = ["weather", "stocks", "news", "search"]


# ---------------------------------------------------------------- processes and measuring


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid):
    """The process's CPU time so far: the sum of its threads' schedstat (ns resolution; the
    /proc/<pid>/stat total counts 10 ms ticks), and that total, which also keeps what threads
    that exited used. `cpu_delta` takes the finer one unless a thread's exit made it short."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
                total += int(stat.read().split()[0])
        except OSError:
            pass
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total / 1e9, ticks


def cpu_delta(before, after):
    fine, coarse = after[0] - before[0], after[1] - before[1]
    return coarse if coarse > fine + 0.03 else max(fine, 0.0)


def compiling():
    out = subprocess.run(["pgrep", "-c", "rustc"], capture_output=True, text=True).stdout.strip()
    return int(out or 0)


@contextmanager
def filling(args):
    """This script's untimed heavy work (filling the store, making keys) holds `--fill-lock`,
    which a timed section takes too: two runs of it never fill while the other measures."""
    with open(args.fill_lock, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def timed_section(args, what):
    """The machine's shared bench lock, taken once no compile runs."""
    with filling(args), bench_lock(args, what):
        yield


@contextmanager
def bench_lock(args, what):
    while compiling():
        print(f"  (waiting: rustc is running, before {what})", file=sys.stderr)
        time.sleep(30)
    with open(args.lock, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # A compile may have started while we waited for the lock.
        while compiling():
            fcntl.flock(lock, fcntl.LOCK_UN)
            print(f"  (waiting: rustc is running, before {what})", file=sys.stderr)
            time.sleep(30)
            fcntl.flock(lock, fcntl.LOCK_EX)
        started = time.monotonic()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            print(f"  [{what}: {time.monotonic() - started:.0f} s locked]", file=sys.stderr)


class Mock:
    """A fixed-answer nginx upstream (the chat answer of bench/anchors' mock)."""

    def __init__(self, workdir, port):
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_max_body_size 64m;
    client_body_buffer_size 64m;
    client_body_temp_path {self.dir}/tmp/body;
    proxy_temp_path {self.dir}/tmp/proxy;
    fastcgi_temp_path {self.dir}/tmp/fastcgi;
    uwsgi_temp_path {self.dir}/tmp/uwsgi;
    scgi_temp_path {self.dir}/tmp/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen {HOST}:{port};
        location / {{
            default_type application/json;
            return 200 '{MOCK_ANSWER}';
        }}
    }}
}}
""")
        self.proc = subprocess.Popen(
            ["/usr/sbin/nginx", "-p", self.dir, "-c", conf],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.url = f"http://{HOST}:{port}/v1"
        for _ in range(100):
            try:
                c = http.client.HTTPConnection(HOST, port, timeout=1)
                c.request("POST", "/v1/chat/completions", "{}")
                c.getresponse().read()
                return
            except OSError:
                time.sleep(0.05)
        sys.exit("nginx did not start")

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGQUIT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


class Gateway:
    def __init__(self, args, config_path, log_path):
        started = time.perf_counter()
        self.log = open(log_path, "a")
        self.proc = subprocess.Popen(
            [args.aigw, "serve", "--config", config_path],
            stdout=subprocess.PIPE, stderr=self.log, text=True, start_new_session=True,
            env={**os.environ, "AIGW_LOG": args.log},
        )
        line = self.proc.stdout.readline()
        self.start_s = time.perf_counter() - started
        found = re.search(r"listening on (\S+)", line)
        if not found:
            self.proc.wait(timeout=10)
            sys.exit(f"the gateway did not start: see {log_path}")
        host, port = found.group(1).rsplit(":", 1)
        self.port = int(port)
        self.pid = self.proc.pid
        LIVE.append(self)

    def stop(self):
        if self in LIVE:
            LIVE.remove(self)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port, headers=None):
        self.port = port
        self.headers = {"content-type": "application/json", **(headers or {})}
        self.conn = http.client.HTTPConnection(HOST, port, timeout=120)

    def call(self, method, path, body=None, headers=None, expect=(200, 204)):
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        try:
            self.conn.request(method, path, data, {**self.headers, **(headers or {})})
            response = self.conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The gateway closed the idle connection (idle_timeout_ms) while a part waited for
            # the lock: a new one.
            self.conn.close()
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=120)
            self.conn.request(method, path, data, {**self.headers, **(headers or {})})
            response = self.conn.getresponse()
        answer = response.read()
        if response.status not in expect:
            raise RuntimeError(f"{method} {path}: {response.status} {answer[:300]!r}")
        return response, answer

    def timed(self, method, path, body=None, headers=None):
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        started = time.perf_counter()
        response, answer = self.call(method, path, data, headers)
        return (time.perf_counter() - started) * 1000, response, answer


def sample(gateway, count, one):
    """`count` sequential calls of `one()` (each returns its ms): median, p99, gateway CPU µs/call."""
    cpu0 = cpu_seconds(gateway.pid)
    times = sorted(one() for _ in range(count))
    cpu = cpu_delta(cpu0, cpu_seconds(gateway.pid)) / count * 1e6
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return statistics.median(times), p99, cpu


def ms(value):
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


# ---------------------------------------------------------------- text of items and entries

SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


def text_of(i, rng):
    words = [rng.choice(SYLLABLES) + rng.choice(SYLLABLES) for _ in range(8)]
    words += [f"u{i}", f"m{i % 1000}"]
    if i % 11 == 0:
        words.append("oslo")
    rng.shuffle(words)
    return " ".join(words)


# ---------------------------------------------------------------- part (a): keys and routes

WRK_LUA = r"""
-- growth.py: POST a small chat request; one key and route, or rotating over all of them.
local keys = {}
for line in io.lines(os.getenv("GROWTH_KEYS")) do keys[#keys + 1] = line end
local n = tonumber(os.getenv("GROWTH_N"))
local rotate = os.getenv("GROWTH_ROTATE") == "1"
local fixed = nil
local i = 0
local function build(k)
  return wrk.format("POST", "/v1/chat/completions",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. keys[k + 1]},
    '{"model":"r' .. (rotate and k or (n - 1)) .. '","messages":[{"role":"user","content":"hi"}]}')
end
function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
  i = math.random(0, n - 1)
  if not rotate then fixed = build(0) end
end
function request()
  if fixed then return fixed end
  i = (i + 1) % n
  return build(i)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCHLINE requests=%d duration_us=%d p50_us=%d p99_us=%d errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def keys_config(workdir, mock, n, port):
    lines = [
        f'[server]\nlisten = "{HOST}:{port}"\ndrain_delay_ms = 0\n',
        f'[auth]\nadmin_key = "{ADMIN}"\n',
        f'[plugins]\ndir = "{os.path.abspath(ARGS.plugins)}"\ncache_dir = "{workdir}/compiled"\n',
        f'[memory]\npath = "{workdir}/aigw.db"\n',
    ]
    for p in PROVIDERS:
        lines.append(f'[providers.{p}]\nplugin = "{p}"\nbase_url = "{mock.url}"\napi_key = "x"\n')
    lines.append(f'[providers.mock]\nplugin = "openai-compatible"\nbase_url = "{mock.url}"\napi_key = "x"\n')
    for t in TOOLS:
        lines.append(f"[tools.{t}]\n")
    lines += [f'[models.r{i}]\ntargets = ["mock/m{i}"]\n' for i in range(n)]
    path = os.path.join(workdir, f"aigw-{n}.toml")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def make_keys(port, secrets, n):
    """Adds keys until there are n (the first with every limit, as bench/anchors/aigw.sh's)."""
    todo = list(range(len(secrets), n))
    if not todo:
        return
    secrets.extend([None] * len(todo))

    def make(chunk):
        c = Client(port, {"authorization": f"Bearer {ADMIN}"})
        for i in chunk:
            spec = {"name": f"k{i}"}
            if i == 0:
                spec.update(rpm_limit=1_000_000_000, tpm_limit=1_000_000_000_000,
                            max_parallel_requests=100_000)
            _, answer = c.call("POST", "/admin/keys", spec, expect=(200, 201))
            secrets[i] = json.loads(answer)["key"]

    workers = min(16, len(todo))
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(make, [todo[w::workers] for w in range(workers)]))


def wrk(port, keys_file, n, rotate, connections, seconds, lua):
    env = {**os.environ, "GROWTH_KEYS": keys_file, "GROWTH_N": str(n),
           "GROWTH_ROTATE": "1" if rotate else "0"}
    threads = 1 if connections == 1 else 2
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
         "--latency", "-s", lua, f"http://{HOST}:{port}/v1/chat/completions"],
        capture_output=True, text=True, env=env,
    ).stdout
    line = re.search(r"BENCHLINE (.*)", out)
    if not line:
        raise RuntimeError(f"wrk gave no result: {out}")
    fields = dict(kv.split("=") for kv in line.group(1).split())
    if int(fields["errors"]):
        raise RuntimeError(f"wrk: {fields['errors']} errors: {out}")
    return {k: int(v) for k, v in fields.items()}


def part_keys(args, workdir, mock):
    sizes = [int(s) for s in (args.sizes or "1,10,100,1000,10000").split(",")]
    port = args.port
    lua = os.path.join(workdir, "growth.lua")
    with open(lua, "w") as f:
        f.write(WRK_LUA)
    secrets = []
    rows = []
    for n in sizes:
        config = keys_config(workdir, mock, n, port)
        log = os.path.join(workdir, "aigw.log")
        # Untimed: the keys made, the compile cache warmed.
        with filling(args):
            g = Gateway(args, config, log)
            make_keys(g.port, secrets, n)
            g.stop()
        keys_file = os.path.join(workdir, "keys.txt")
        with open(keys_file, "w") as f:
            f.write("\n".join(secrets[:n]) + "\n")
        with timed_section(args, f"keys n={n}"):
            checks = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                subprocess.run([args.aigw, "check", "--config", config], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "AIGW_LOG": "warn"})
                checks.append(time.perf_counter() - started)
            starts = []
            for _ in range(args.rounds - 1):
                g = Gateway(args, config, log)
                starts.append(g.start_s)
                g.stop()
            g = Gateway(args, config, log)
            starts.append(g.start_s)
            idle = rss_mib(g.pid)
            wrk(g.port, keys_file, n, False, 16, 2, lua)  # warm-up
            fixed1, fixed16, rot1, rot16 = [], [], [], []
            for _ in range(args.rounds):
                fixed1.append(wrk(g.port, keys_file, n, False, 1, args.duration, lua))
                cpu0 = cpu_seconds(g.pid)
                r = wrk(g.port, keys_file, n, False, 16, args.duration, lua)
                fixed16.append((cpu_delta(cpu0, cpu_seconds(g.pid)) / r["requests"] * 1e6, r))
            rss_fixed = rss_mib(g.pid)
            for _ in range(args.rounds):
                rot1.append(wrk(g.port, keys_file, n, True, 1, args.duration, lua))
                cpu0 = cpu_seconds(g.pid)
                r = wrk(g.port, keys_file, n, True, 16, args.duration, lua)
                rot16.append((cpu_delta(cpu0, cpu_seconds(g.pid)) / r["requests"] * 1e6, r))
            rss_rot = rss_mib(g.pid)
            g.stop()
        med = statistics.median
        row = {
            "n": n,
            "check_s": med(checks),
            "start_s": med(starts),
            "p50": med(r["p50_us"] for r in fixed1) / 1000,
            "p99": med(r["p99_us"] for r in fixed1) / 1000,
            "cpu": med(c for c, _ in fixed16),
            "rps": med(r["requests"] / r["duration_us"] * 1e6 for _, r in fixed16),
            "rot_p50": med(r["p50_us"] for r in rot1) / 1000,
            "rot_p99": med(r["p99_us"] for r in rot1) / 1000,
            "rot_cpu": med(c for c, _ in rot16),
            "rss_idle": idle, "rss_fixed": rss_fixed, "rss_rot": rss_rot,
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    print(f"\nkeys and routes: {args.rounds} rounds of {args.duration} s per wrk figure (medians)\n")
    print("| keys = routes | `aigw check` | start to listening | p50 / p99, 1 conn | CPU per request, 16 conns | req/s, 16 conns | rotating: p50 / p99, 1 conn | rotating: CPU per request | RSS idle → fixed load → rotating |")
    print("|---:|---:|---:|---|---:|---:|---|---:|---|")
    for r in rows:
        print(f"| {r['n']:,} | {r['check_s'] * 1000:.0f} ms | {r['start_s'] * 1000:.0f} ms "
              f"| {r['p50']:.3f} / {r['p99']:.3f} ms | {r['cpu']:.0f} µs | {r['rps']:,.0f} "
              f"| {r['rot_p50']:.3f} / {r['rot_p99']:.3f} ms | {r['rot_cpu']:.0f} µs "
              f"| {r['rss_idle']:.1f} → {r['rss_fixed']:.1f} → {r['rss_rot']:.1f} MiB |")


# ---------------------------------------------------------------- part (b): history


def plain_config(workdir, mock, port, extra=""):
    path = os.path.join(workdir, "aigw.toml")
    with open(path, "w") as f:
        f.write(
            f'[server]\nlisten = "{HOST}:{port}"\ndrain_delay_ms = 0\n\n'
            f'[plugins]\ndir = "{os.path.abspath(ARGS.plugins)}"\ncache_dir = "{workdir}/compiled"\n\n'
            f'[memory]\npath = "{workdir}/aigw.db"\n{extra}\n\n'
            f'[providers.mock]\nplugin = "openai-compatible"\nbase_url = "{mock.url}"\napi_key = "x"\n\n'
            f'[models.mock]\ntargets = ["mock/mock"]\n'
        )
    return path


def part_history(args, workdir, mock):
    sizes = [int(s) for s in (args.sizes or "10,100,1000,10000").split(",")]
    port = args.port
    rng = random.Random(15)
    log = os.path.join(workdir, "aigw.log")
    # Untimed: one conversation of n items per size.
    conversations, histories = {}, {}
    with filling(args):
        g = Gateway(args, plain_config(workdir, mock, port), log)
        c = Client(g.port)
        for n in sizes:
            _, answer = c.call("POST", "/v1/conversations", {"metadata": {"n": str(n)}})
            conv = json.loads(answer)["id"]
            messages = [{"role": "user" if i % 2 == 0 else "assistant",
                         "content": text_of(i, rng)} for i in range(n)]
            for at in range(0, n, 1000):
                c.call("POST", f"/v1/conversations/{conv}/items",
                       {"items": messages[at:at + 1000]})
            conversations[n], histories[n] = conv, messages
        g.stop()
    turn = {"model": "mock", "messages": [{"role": "user", "content": "and what next?"}]}
    rows = []
    for n in sizes:
        samples = args.samples if n < 10000 else max(10, args.samples // 2)
        config = plain_config(workdir, mock, port,
                              f"session_max_items = {n}\nsession_max_tokens = 10000000")
        conv = conversations[n]
        inline = json.dumps({"model": "mock",
                             "messages": histories[n] + turn["messages"]}).encode()
        with timed_section(args, f"history n={n}"):
            g = Gateway(args, config, log)
            c = Client(g.port)
            session = {"x-aigw-conversation": conv}
            for _ in range(3):
                c.call("POST", "/v1/chat/completions", turn, session)
                c.call("POST", "/v1/chat/completions", inline)
            turned = sample(g, samples,
                            lambda: c.timed("POST", "/v1/chat/completions", turn, session)[0])
            inlined = sample(g, samples,
                             lambda: c.timed("POST", "/v1/chat/completions", inline)[0])
            first = sample(g, args.samples,
                           lambda: c.timed("GET", f"/v1/conversations/{conv}/items?limit=100")[0])

            def whole():
                total, after, pages = 0.0, None, 0
                while True:
                    path = f"/v1/conversations/{conv}/items?order=asc&limit=100"
                    if after:
                        path += f"&after={after}"
                    took, _, answer = c.timed("GET", path)
                    total += took
                    pages += 1
                    page = json.loads(answer)
                    if not page["has_more"]:
                        return total
                    after = page["last_id"]

            paged = sample(g, 5, whole)
            rss = rss_mib(g.pid)
            g.stop()
        row = {"n": n, "samples": samples, "turn": turned, "inline": inlined,
               "first": first, "whole": paged, "rss": rss, "bytes": len(inline)}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    print(f"\nconversation history: sequential calls on one connection; turns: {args.samples} samples "
          f"({max(10, args.samples // 2)} at 10,000), first page {args.samples}, whole conversation 5\n")
    print("| history sent | upstream body | turn p50 / p99 | gateway CPU per turn | same messages inline, no header: p50 / CPU | first page (100 items) p50 | whole conversation (pages of 100) p50 | RSS after |")
    print("|---:|---:|---|---:|---|---:|---:|---:|")
    for r in rows:
        t, i, f, w = r["turn"], r["inline"], r["first"], r["whole"]
        print(f"| {r['n']:,} items | {r['bytes'] / 1024:,.0f} KiB | {ms(t[0])} / {ms(t[1])} "
              f"| {t[2]:,.0f} µs | {ms(i[0])} / {i[2]:,.0f} µs | {ms(f[0])} | {ms(w[0])} "
              f"| {r['rss']:.1f} MiB |")


# ---------------------------------------------------------------- part (c): the store


def fill_items(port, start, stop, rng_seed):
    """Conversations of 1,000 items (one create each), items start..stop, 3 writers."""
    chunks = list(range(start, stop, 1000))

    def make(at):
        rng = random.Random(rng_seed + at)
        c = Client(port, {"x-aigw-namespace": "bench"})
        items = [{"role": "user" if i % 2 == 0 else "assistant", "content": text_of(i, rng)}
                 for i in range(at, min(at + 1000, stop))]
        c.call("POST", "/v1/conversations", {"items": items})

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(make, chunks))


def fill_entries(port, start, stop, rng_seed):
    """One put per entry, entries start..stop, 8 writers."""
    workers = 8

    def make(w):
        rng = random.Random(rng_seed + w)
        c = Client(port, {"x-aigw-namespace": "bench"})
        for i in range(start + w, stop, workers):
            body = {"namespace": ["docs", str(i // 1000)], "key": f"k{i}",
                    "value": {"text": text_of(i, rng)}}
            c.call("PUT", "/v1/store/items", body)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(make, range(workers)))


def db_mib(workdir):
    return sum(os.path.getsize(os.path.join(workdir, f)) for f in os.listdir(workdir)
               if f.startswith("aigw.db")) / 2**20


def part_store(args, workdir, mock):
    sizes = [int(s) for s in (args.sizes or "10000,100000,1000000").split(",")]
    entries_max = args.entries_max or sizes[-1]
    log = os.path.join(workdir, "aigw.log")
    g = Gateway(args, plain_config(workdir, mock, args.port), log)
    rng = random.Random(1015)
    bench = Client(g.port, {"x-aigw-namespace": "bench"})
    small = Client(g.port, {"x-aigw-namespace": "small"})
    # The small namespace: 100 items (one in 11 says oslo); the probe conversation for appends.
    small.call("POST", "/v1/conversations",
               {"items": [{"role": "user", "content": text_of(i, rng)} for i in range(100)]})
    _, answer = bench.call("POST", "/v1/conversations", {"metadata": {"probe": "1"}})
    probe = json.loads(answer)["id"]
    items_rows, entry_rows = [], []
    have_items = have_entries = 0
    for n in sizes:
        with filling(args):
            started = time.perf_counter()
            fill_items(g.port, have_items, n, 7)
            item_rate = (n - have_items) / (time.perf_counter() - started)
            have_items = n
            entry_rate = None
            if n <= entries_max:
                started = time.perf_counter()
                fill_entries(g.port, have_entries, n, 11)
                entry_rate = (n - have_entries) / (time.perf_counter() - started)
                have_entries = n
        print(f"  filled {n:,}: items {item_rate:,.0f}/s, entries "
              f"{'-' if entry_rate is None else f'{entry_rate:,.0f}/s'} (untimed)", file=sys.stderr)
        k = args.samples
        with timed_section(args, f"store n={n}"):
            appended = sample(g, 4 * k, lambda: bench.timed(
                "POST", f"/v1/conversations/{probe}/items",
                {"items": [{"role": "user", "content": text_of(0, rng)}]})[0])

            def search(client, query):
                return lambda: client.timed("POST", "/v1/conversations/search",
                                            {"query": query(), "limit": 10})[0]

            unique = sample(g, k, search(bench, lambda: f"u{rng.randrange(n)}"))
            mword = sample(g, k, search(bench, lambda: f"m{rng.randrange(1000)}"))
            oslo = sample(g, max(5, k // 3), search(bench, lambda: "oslo"))
            oslo_small = sample(g, max(5, k // 3), search(small, lambda: "oslo"))
            items_rows.append({
                "n": n, "rate": item_rate, "append": appended, "unique": unique,
                "m": mword, "oslo": oslo, "oslo_small": oslo_small,
                "rss": rss_mib(g.pid), "db": db_mib(workdir),
            })
            print(json.dumps(items_rows[-1]), file=sys.stderr)
            if entry_rate is not None:
                fresh = iter(range(10**9, 2 * 10**9))
                put = sample(g, 4 * k, lambda: bench.timed(
                    "PUT", "/v1/store/items",
                    {"namespace": ["probe"], "key": f"p{next(fresh)}",
                     "value": {"text": text_of(0, rng)}})[0])
                got = sample(g, 4 * k, lambda: bench.timed(
                    "GET", f"/v1/store/items?namespace=docs.{(i := rng.randrange(n)) // 1000}"
                    f"&key=k{i}")[0])

                def esearch(client, query):
                    return lambda: client.timed("POST", "/v1/store/items/search",
                                                {"namespace_prefix": [], "query": query(),
                                                 "limit": 10})[0]

                eunique = sample(g, k, esearch(bench, lambda: f"u{rng.randrange(n)}"))
                em = sample(g, k, esearch(bench, lambda: f"m{rng.randrange(1000)}"))
                eoslo = sample(g, max(5, k // 3), esearch(bench, lambda: "oslo"))
                eoslo_small = sample(g, max(5, k // 3), esearch(small, lambda: "oslo"))
                entry_rows.append({
                    "n": n, "rate": entry_rate, "put": put, "get": got, "unique": eunique,
                    "m": em, "oslo": eoslo, "oslo_small": eoslo_small,
                })
                print(json.dumps(entry_rows[-1]), file=sys.stderr)
    g.stop()
    k = args.samples
    print(f"\nconversation items: append {4 * k} samples, unique and m-word searches {k}, "
          f"oslo searches {max(5, k // 3)}; sequential on one connection\n")
    print("| items in store | fill rate (untimed, 3 writers × 1,000 items) | append 1 item p50 / p99 | search, unique word (1 match) | search, `m` word (0.1 %) | search `oslo` (9 %) | `oslo` from a namespace of 100 items | DB files | RSS |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in items_rows:
        n = r["n"]
        print(f"| {n:,} | {r['rate']:,.0f} items/s | {ms(r['append'][0])} / {ms(r['append'][1])} "
              f"| {ms(r['unique'][0])} | {ms(r['m'][0])} ({n // 1000:,} matches) "
              f"| {ms(r['oslo'][0])} ({(n + 10) // 11:,}) | {ms(r['oslo_small'][0])} "
              f"| {r['db']:,.0f} MiB | {r['rss']:.1f} MiB |")
    if entry_rows:
        print(f"\nentries under /v1/store/: put and get {4 * k} samples, searches as above\n")
        print("| entries in store | fill rate (untimed, 8 writers, 1 per request) | put p50 / p99 | get p50 | search, unique word | search, `m` word (0.1 %) | search `oslo` (9 %) | `oslo` from a namespace without entries |")
        print("|---:|---:|---|---:|---:|---:|---:|---:|")
        for r in entry_rows:
            print(f"| {r['n']:,} | {r['rate']:,.0f} /s | {ms(r['put'][0])} / {ms(r['put'][1])} "
                  f"| {ms(r['get'][0])} | {ms(r['unique'][0])} | {ms(r['m'][0])} "
                  f"| {ms(r['oslo'][0])} | {ms(r['oslo_small'][0])} |")


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["keys", "history", "store"])
    parser.add_argument("--aigw", required=True)
    parser.add_argument("--plugins", required=True)
    parser.add_argument("--sizes", help="comma-separated sizes (defaults: see the header)")
    parser.add_argument("--entries-max", type=int, help="store: the largest entries size")
    parser.add_argument("--port", type=int, default=9320)
    parser.add_argument("--rounds", type=int, default=3, help="keys: wrk rounds per figure")
    parser.add_argument("--duration", type=int, default=5, help="keys: seconds per wrk run")
    parser.add_argument("--samples", type=int, default=30, help="history/store: calls per figure")
    parser.add_argument("--lock", default="/tmp/bench.lock")
    parser.add_argument("--fill-lock", default="/tmp/growth-fill.lock")
    parser.add_argument("--log", default="info", help="the gateway's AIGW_LOG")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    ARGS = args = parser.parse_args()
    args.aigw = os.path.abspath(args.aigw)
    workdir = tempfile.mkdtemp(prefix=f"aigw-growth-{args.part}-")
    print(f"work directory: {workdir}", file=sys.stderr)
    mock = Mock(workdir, args.port + 1)
    try:
        {"keys": part_keys, "history": part_history, "store": part_store}[args.part](
            args, workdir, mock)
    finally:
        for gateway in list(LIVE):
            gateway.stop()
        mock.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


ARGS = None
LIVE = []

if __name__ == "__main__":
    main()
