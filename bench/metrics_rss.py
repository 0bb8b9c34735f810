#!/usr/bin/env python3
"""What metrics with 10,000 distinct keys x 3 routes cost a gateway process in memory: makes
10,000 keys through /admin/keys, sends one chat completion per key and route (30,000), and
reads the process's VmRSS (/proc/<pid>/status) before and after the requests. Run it with
metrics on and off to tell the metrics' part from the rest (the keys' directory is in memory
in both runs, before the first reading):

    python3 bench/metrics_rss.py . true [release]
    python3 bench/metrics_rss.py . false [release]

Uses ROOT/target/PROFILE/{aigw,mock-upstream} (PROFILE: the third argument, debug by default)
and ROOT/dist/plugins.
"""
import http.client, json, os, subprocess, sys, tempfile, threading, time

root, enabled = sys.argv[1], sys.argv[2]
profile = sys.argv[3] if len(sys.argv) > 3 else "debug"
ADMIN = "admin-rss-measure-0123456789abcdef"
KEYS, ROUTES = 10_000, ["fast", "smart", "cheap"]

mock = subprocess.Popen([f"{root}/target/{profile}/mock-upstream", "--flavor", "openai", "--no-record"], stdout=subprocess.PIPE, text=True)
addr = mock.stdout.readline().split()[-1]
tmp = tempfile.mkdtemp()
routes = "".join(f'[models.{r}]\ntargets = ["local/ok"]\n\n' for r in ROUTES)
config = f'''[server]
listen = "127.0.0.1:0"
[plugins]
dir = "{root}/dist/plugins"
[providers.local]
plugin = "openai-compatible"
base_url = "http://{addr}/v1"
[memory]
path = "{tmp}/aigw.db"
[auth]
admin_key = "{ADMIN}"
[metrics]
enabled = {enabled}
max_series_per_metric = 100000
{routes}'''
open(f"{tmp}/aigw.toml", "w").write(config)
gw = subprocess.Popen([f"{root}/target/{profile}/aigw", "serve", "--config", f"{tmp}/aigw.toml"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
line = gw.stdout.readline()
host, port = line.split()[-1].rsplit(":", 1)

def rss():
    for l in open(f"/proc/{gw.pid}/status"):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])

def call(conn, method, path, body, key):
    conn.request(method, path, json.dumps(body), {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    r = conn.getresponse(); data = r.read()
    return r.status, data

# Keys first (their directory is in memory too: measured apart from the metrics).
secrets = [None] * KEYS
def make(lo, hi):
    c = http.client.HTTPConnection(host, int(port))
    for i in range(lo, hi):
        s, d = call(c, "POST", "/admin/keys", {"name": f"k{i}"}, ADMIN)
        assert s == 201, d
        secrets[i] = json.loads(d)["key"]
threads = [threading.Thread(target=make, args=(i * KEYS // 4, (i + 1) * KEYS // 4)) for i in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
time.sleep(3)  # the directory's refresh picks them up
c = http.client.HTTPConnection(host, int(port))
for _ in range(50):
    s, _ = call(c, "POST", "/v1/chat/completions", {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}, secrets[0])
    if s == 200: break
    time.sleep(0.2)
before = rss()
started = time.time()
def send(lo, hi):
    c = http.client.HTTPConnection(host, int(port))
    for i in range(lo, hi):
        for r in ROUTES:
            s, d = call(c, "POST", "/v1/chat/completions", {"model": r, "messages": [{"role": "user", "content": "hi"}]}, secrets[i])
            assert s == 200, d
threads = [threading.Thread(target=send, args=(i * KEYS // 4, (i + 1) * KEYS // 4)) for i in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
took = time.time() - started
after = rss()
s, body = call(c, "GET", "/metrics", None, ADMIN)
print(f"metrics enabled={enabled}: {KEYS * len(ROUTES)} requests from {KEYS} keys x {len(ROUTES)} routes in {took:.0f} s; "
      f"VmRSS {before} KiB -> {after} KiB (+{after - before} KiB); /metrics {s}, {len(body)} bytes")
gw.terminate(); mock.terminate(); gw.wait(); mock.wait()
