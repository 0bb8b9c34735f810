"""aigw's key limits as the official OpenAI Python SDK sees them.

Run by tests/tests/quotas.rs against a live gateway:
  AIGW_BASE_URL    the gateway's /v1 URL
  AIGW_RPM_KEY     a virtual key with rpm_limit = 1 (unused this minute)
  AIGW_BUDGET_KEY  a virtual key with max_budget = 0
Prints one `ok ...` line per check; any failure exits non-zero.
"""

import os

import openai
from openai import OpenAI

BASE_URL = os.environ["AIGW_BASE_URL"]
MESSAGES = [{"role": "user", "content": "hello sdk"}]


def client(key):
    return OpenAI(base_url=BASE_URL, api_key=key, max_retries=0, timeout=30)


def headers_then_rate_limit():
    limited = client(os.environ["AIGW_RPM_KEY"])
    raw = limited.chat.completions.with_raw_response.create(model="local/ok", messages=MESSAGES)
    assert raw.headers["x-ratelimit-limit-requests"] == "1", raw.headers
    assert raw.headers["x-ratelimit-remaining-requests"] == "0", raw.headers
    assert raw.headers["x-ratelimit-reset-requests"].endswith("s"), raw.headers
    assert raw.parse().choices[0].message.content == "mock reply to: hello sdk"
    print("ok headers")
    try:
        limited.chat.completions.create(model="local/ok", messages=MESSAGES)
    except openai.RateLimitError as e:
        assert e.status_code == 429, e
        assert e.code == "rate_limit_exceeded", e.body
        assert e.type == "requests", e.body
        assert "aigw key limit: 1 request per minute reached for key key_" in e.message, e.message
        assert int(e.response.headers["retry-after"]) >= 1, e.response.headers
        assert int(e.response.headers["retry-after-ms"]) >= 0, e.response.headers
        print("ok rate_limit_exceeded")
    else:
        raise AssertionError("a second request in the minute was answered")


def budget():
    try:
        client(os.environ["AIGW_BUDGET_KEY"]).chat.completions.create(
            model="local/ok", messages=MESSAGES
        )
    except openai.RateLimitError as e:
        assert e.status_code == 429, e
        assert e.code == "insufficient_quota", e.body
        assert e.type == "insufficient_quota", e.body
        assert "aigw key limit: the budget of 0.00 USD" in e.message, e.message
        print("ok insufficient_quota")
    else:
        raise AssertionError("a key with no budget was answered")


headers_then_rate_limit()
budget()
