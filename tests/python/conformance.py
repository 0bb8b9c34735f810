"""The provider conformance suite as the official OpenAI Python SDK sees it.

Run by tests/tests/conformance.rs once per provider plugin, against a live gateway whose
provider `p` sits in front of a mock of that provider (the model name picks the mock's
behaviour, see tests/src/mock.rs):
  AIGW_BASE_URL      the gateway's /v1 URL
  AIGW_TARGET        the target with `MODEL` where the behaviour goes: `p/MODEL`, `p/mock/MODEL`
  AIGW_TOOLS         `1` when the provider has function calling, `0` when the plugin must refuse tools
  AIGW_FILTER        `refuses` (content filter is a 400) or `finishes` (finish_reason content_filter)
  AIGW_CUT           `mid-stream` (a cut arrives as an error event) or `before-stream` (an error status)
  AIGW_SERVER_ERROR  the provider's 500 message
Prints one `ok <check>` line per check; the first failure exits non-zero with the reason.
"""

import json
import os
import sys

import openai
from openai import OpenAI

BASE_URL = os.environ["AIGW_BASE_URL"]
TARGET = os.environ["AIGW_TARGET"]
TOOLS_SUPPORTED = os.environ.get("AIGW_TOOLS", "1") == "1"
FILTER = os.environ.get("AIGW_FILTER", "finishes")
CUT = os.environ.get("AIGW_CUT", "mid-stream")
SERVER_ERROR = os.environ["AIGW_SERVER_ERROR"]

QUESTION = "hello there"
REPLY = "mock reply to: hello there"
FILTERED_TEXT = "I can tell you"

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]

client = OpenAI(base_url=BASE_URL, api_key="the-gateway-holds-the-keys", max_retries=0, timeout=30)


def model(behaviour):
    return TARGET.replace("MODEL", behaviour)


def ask(behaviour, **extra):
    return client.chat.completions.create(
        model=model(behaviour), messages=[{"role": "user", "content": QUESTION}], **extra
    )


def expect_error(error_type, call):
    """Runs `call`, which must raise `error_type`; returns the error."""
    try:
        result = call()
    except error_type as e:
        return e
    raise AssertionError(f"expected {error_type.__name__}, got {result!r}")


def read_stream(stream):
    """(text, finish_reason, usage chunks) of a chat completion stream."""
    parts, finish, usages = [], None, []
    for chunk in stream:
        if chunk.usage is not None:
            assert chunk.choices == [], chunk
            usages.append(chunk.usage)
        for choice in chunk.choices:
            if choice.delta.content:
                parts.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    return "".join(parts), finish, usages


def text():
    r = ask("ok")
    assert r.choices[0].message.content == REPLY, r
    assert r.choices[0].finish_reason == "stop", r
    assert r.usage.completion_tokens == len(REPLY.split()), r.usage
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, r.usage


def stream_usage():
    content, finish, usages = read_stream(
        ask("ok", stream=True, stream_options={"include_usage": True})
    )
    assert content == REPLY, content
    assert finish == "stop", finish
    assert len(usages) == 1, usages
    assert usages[0].completion_tokens == len(REPLY.split()), usages


def tool_call():
    messages = [{"role": "user", "content": "weather in Paris?"}]
    if not TOOLS_SUPPORTED:
        e = expect_error(
            openai.BadRequestError,
            lambda: client.chat.completions.create(
                model=model("tool-call"), messages=messages, tools=TOOLS
            ),
        )
        assert e.code == "invalid_request", e
        assert "tools" in e.message, e.message
        return
    r = client.chat.completions.create(model=model("tool-call"), messages=messages, tools=TOOLS)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather", call
    assert json.loads(call.function.arguments) == {"city": "Paris"}, call.function.arguments
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18C, sunny"})
    r = client.chat.completions.create(model=model("tool-call"), messages=messages, tools=TOOLS)
    assert r.choices[0].message.content == "tool said: 18C, sunny", r


def rate_limit():
    e = expect_error(openai.RateLimitError, lambda: ask("rate-limit"))
    assert e.status_code == 429, e
    assert e.code == "rate_limited", e
    # The upstream asks for 7 s. The HTTP cases before this one cooled the target down, so the
    # gateway may answer from that cooldown with the seconds left of it (OpenRouter's wait is
    # an epoch in ms, which a slow run may also see as 6).
    retry_after = int(e.response.headers.get("retry-after", "0"))
    assert 1 <= retry_after <= 7, e.response.headers


def bad_request():
    e = expect_error(openai.BadRequestError, lambda: ask("bad-request"))
    assert e.code == "invalid_request", e
    assert "(mock bad-request)" in e.message, e.message


def context_length():
    e = expect_error(openai.BadRequestError, lambda: ask("context-length"))
    assert e.code == "context_length_exceeded", e


def server_error():
    e = expect_error(openai.InternalServerError, lambda: ask("error-500"))
    assert e.status_code == 500, e
    assert SERVER_ERROR in e.message, e.message


def content_filter():
    if FILTER == "refuses":
        e = expect_error(openai.BadRequestError, lambda: ask("content-filter"))
        assert e.code == "content_filter", e
        return
    r = ask("content-filter")
    assert r.choices[0].finish_reason == "content_filter", r
    assert r.choices[0].message.content == FILTERED_TEXT, r


def cut_stream():
    if CUT == "before-stream":
        e = expect_error(
            openai.APIStatusError, lambda: read_stream(ask("cut-stream-1", stream=True))
        )
        assert e.status_code >= 500, e
        return
    stream = ask("cut-stream-1", stream=True)
    parts = []
    try:
        for chunk in stream:
            for choice in chunk.choices:
                parts.append(choice.delta.content or "")
    except openai.APIError as e:
        assert "".join(parts) == "mock", parts
        assert e.message, e
        return
    raise AssertionError(f"a cut stream ended without an error after {parts!r}")


CHECKS = (
    text,
    stream_usage,
    tool_call,
    rate_limit,
    bad_request,
    context_length,
    server_error,
    content_filter,
    cut_stream,
)


def main():
    for check in CHECKS:
        try:
            check()
        except Exception as e:  # noqa: BLE001 - name the failed check, then fail
            print(f"FAILED {check.__name__}: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        print(f"ok {check.__name__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
