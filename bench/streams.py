#!/usr/bin/env python3
"""Holds N concurrent streams open through a gateway on a stalling upstream, then measures what
the gateway costs (RSS, CPU) and what other clients see meanwhile.

    python3 bench/streams.py --aigw target/release/aigw --mock target/release/mock-upstream \
        --plugins dist/plugins --streams 9900 --clients 10

Each stream asks the mock for `stall-1` (one chunk, then 60 s of silence). Streams come from
`--clients` loopback source addresses (127.0.0.2, 127.0.0.3, ...) so no client exceeds the
default `server.max_streams_per_client`. While they are held, 50 ordinary requests (half of
them streamed, model `ok`) are timed. A gateway process needs two descriptors per stream
(client and upstream side): 10,000 streams need more than 20,000, so keep `--streams` under
the hard `ulimit -n` / 2.
"""

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def request(host, model, stream):
    body = json.dumps(
        {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def hold(host, port, source, model, held, failures):
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
        writer.write(request(f"{host}:{port}", model, True))
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            failures.append(status.decode(errors="replace").strip())
            writer.close()
            return
        while True:
            line = await reader.readline()
            if not line:
                failures.append("closed before the first chunk")
                return
            if line.startswith(b"data: "):
                break
        held.append(writer)
    except OSError as e:
        failures.append(str(e))


async def timed(host, port, model, stream):
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(request(f"{host}:{port}", model, stream).replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n", 1))
    await writer.drain()
    answer = await reader.read()
    writer.close()
    ok = answer.startswith(b"HTTP/1.1 200") and (not stream or b"[DONE]" in answer)
    return ok, (time.perf_counter() - started) * 1000, answer[:200]


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--aigw", required=True)
    parser.add_argument("--mock", required=True)
    parser.add_argument("--plugins", required=True)
    parser.add_argument("--streams", type=int, default=9900)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--extra-config", default="")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    mock = subprocess.Popen(
        [args.mock, "--listen", "127.0.0.1:0", "--flavor", "openai", "--no-record"],
        stdout=subprocess.PIPE, text=True,
    )
    mock_addr = re.search(r"listening on (\S+)", mock.stdout.readline()).group(1)
    workdir = tempfile.mkdtemp(prefix="aigw-streams-")
    config = os.path.join(workdir, "aigw.toml")
    with open(config, "w") as f:
        f.write(
            f'[server]\nlisten = "127.0.0.1:0"\n{args.extra_config}\n'
            f'[plugins]\ndir = "{os.path.abspath(args.plugins)}"\n'
            f'[providers.local]\nplugin = "openai-compatible"\nbase_url = "http://{mock_addr}/v1"\n'
        )
    gateway = subprocess.Popen(
        [args.aigw, "serve", "--config", config],
        stderr=subprocess.PIPE, text=True,
    )
    addr = None
    for line in gateway.stderr:
        found = re.search(r"address=(\S+)", re.sub(r"\x1b\[[0-9;]*m", "", line))
        if found:
            addr = found.group(1)
            break
    if addr is None:
        sys.exit("the gateway did not start")
    # Keep draining the gateway's log so it never blocks on a full pipe.
    loop = asyncio.get_running_loop()
    loop.run_in_executor(None, lambda: [None for _ in gateway.stderr])
    host, port = addr.rsplit(":", 1)
    port = int(port)

    idle = rss_mib(gateway.pid)
    cpu_before = cpu_seconds(gateway.pid)
    held, failures = [], []
    started = time.perf_counter()
    per_client = (args.streams + args.clients - 1) // args.clients
    batch = []
    for i in range(args.streams):
        source = f"127.0.0.{2 + i // per_client}"
        batch.append(hold(host, port, source, "local/stall-1", held, failures))
        if len(batch) == 500:
            await asyncio.gather(*batch)
            batch = []
    await asyncio.gather(*batch)
    opened = time.perf_counter() - started
    holding = rss_mib(gateway.pid)
    cpu_opening = cpu_seconds(gateway.pid) - cpu_before

    # What the held streams cost while nothing happens (the upstream is silent).
    cpu_held = cpu_seconds(gateway.pid)
    await asyncio.sleep(5)
    cpu_holding = (cpu_seconds(gateway.pid) - cpu_held) / 5

    results = [await timed(host, port, "local/ok", i % 2 == 1) for i in range(50)]
    served = [r for r in results if r[0]]
    latencies = sorted(r[1] for r in served)
    report = {
        "streams_asked": args.streams,
        "streams_held": len(held),
        "stream_failures": len(failures),
        "first_failures": failures[:3],
        "seconds_to_open": round(opened, 2),
        "gateway_rss_idle_mib": round(idle, 1),
        "gateway_rss_holding_mib": round(holding, 1),
        "rss_per_stream_kib": round((holding - idle) * 1024 / max(len(held), 1), 1),
        "gateway_cpu_s_opening": round(cpu_opening, 2),
        "gateway_cpu_while_holding": f"{cpu_holding:.0%} of a core",
        "others_served": f"{len(served)}/{len(results)}",
        "others_p50_ms": round(latencies[len(latencies) // 2], 2) if latencies else None,
        "others_max_ms": round(latencies[-1], 2) if latencies else None,
        "first_other_failure": next((r[2].decode(errors="replace") for r in results if not r[0]), None),
    }
    print(json.dumps(report, indent=2))
    for writer in held:
        writer.close()
    gateway.send_signal(signal.SIGTERM)
    mock.kill()
    try:
        gateway.wait(timeout=40)
    except subprocess.TimeoutExpired:
        gateway.kill()


asyncio.run(main())
