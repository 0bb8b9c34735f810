"""Answers from the response cache as the official OpenAI Python SDK sees them.

Run by tests/tests/response_cache.rs against a live gateway whose AIGW_MODEL route is cached:
  AIGW_BASE_URL  the gateway's /v1 URL
  AIGW_MODEL     a cached route answering "mock reply to: <last user message>"
The first request is a miss; the gateway keeps its answer beside the response, so the script asks
again (a bounded number of times) until the answer comes from the cache, then checks that the SDK
reads the hit as a normal answer. Prints one `ok ...` line per check; any failure exits non-zero.
"""

import os
import time

from openai import OpenAI

BASE_URL = os.environ["AIGW_BASE_URL"]
MODEL = os.environ.get("AIGW_MODEL", "fast")

client = OpenAI(base_url=BASE_URL, api_key="dummy-key-the-gateway-ignores", max_retries=0, timeout=30)


def until_hit(ask, misses=None):
    """Asks until the gateway says `x-aigw-cache: hit` (at most 100 times, 50 ms apart).

    The answer is stored after it is sent, so a request right behind the first can miss too;
    each further miss is parsed into `misses` (when given): it stores an answer of its own, and
    whichever store lands last is the one the hit repeats."""
    for _ in range(100):
        raw = ask()
        if raw.headers.get("x-aigw-cache") == "hit":
            return raw
        assert raw.headers.get("x-aigw-cache") == "miss", raw.headers
        if misses is not None:
            misses.append(raw.parse())
        time.sleep(0.05)
    raise AssertionError("never answered from the cache")


def non_stream():
    messages = [{"role": "user", "content": "cached sdk"}]
    ask = lambda: client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
    first = ask()
    assert first.headers.get("x-aigw-cache") == "miss", first.headers
    miss = first.parse()
    misses = [miss]
    hit = until_hit(ask, misses).parse()
    assert hit.choices[0].message.content == "mock reply to: cached sdk", hit
    assert hit.choices[0].message.content == miss.choices[0].message.content
    assert hit.choices[0].finish_reason == "stop", hit
    # The hit is a stored answer, id and all: one of the misses' (each miss is a new upstream
    # answer with an id of its own).
    assert hit.id in [m.id for m in misses], (hit.id, [m.id for m in misses])
    assert hit.usage is not None and hit.usage.total_tokens == miss.usage.total_tokens, hit.usage
    print("ok non-stream hit")


def stream():
    messages = [{"role": "user", "content": "cached sdk stream"}]

    def ask():
        return client.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )

    def read(raw):
        text, finish, usage = "", None, None
        for chunk in raw.parse():
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
        return text, finish, usage

    first = ask()
    assert first.headers.get("x-aigw-cache") == "miss", first.headers
    miss = read(first)
    hit = read(until_hit(ask))
    assert hit[0] == "mock reply to: cached sdk stream", hit
    assert hit[:2] == miss[:2], (hit, miss)
    assert hit[1] == "stop", hit
    assert hit[2] is not None and hit[2].total_tokens == miss[2].total_tokens, hit
    print("ok stream hit")


non_stream()
stream()
