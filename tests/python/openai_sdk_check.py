"""The gateway as the official OpenAI Python SDK sees it.

Run by tests/tests/openai_sdk.rs against a live gateway:
  AIGW_BASE_URL  the gateway's /v1 URL
  AIGW_MODEL     a model answering "mock reply to: <last user message>"
  AIGW_TOOL_MODEL a model that calls the first tool, then answers "tool said: <result>"
Prints one `ok ...` line per check; any failure exits non-zero.
"""

import json
import os
import sys

from openai import OpenAI

BASE_URL = os.environ["AIGW_BASE_URL"]
MODEL = os.environ.get("AIGW_MODEL", "fast")
TOOL_MODEL = os.environ.get("AIGW_TOOL_MODEL", "local/tool-call")

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

client = OpenAI(base_url=BASE_URL, api_key="dummy-key-the-gateway-ignores", max_retries=0, timeout=30)


def non_stream():
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello sdk"}]
    )
    assert r.choices[0].message.content == "mock reply to: hello sdk", r
    assert r.choices[0].finish_reason == "stop", r
    assert r.usage is not None and r.usage.total_tokens > 0, r.usage
    print("ok non-stream")


def stream_with_usage():
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "stream sdk"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, usage, finish, chunks = [], None, None, 0
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            assert usage is None, "two usage chunks"
            assert chunk.choices == [], chunk
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                parts.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    text = "".join(parts)
    assert text == "mock reply to: stream sdk", text
    assert finish == "stop", finish
    assert usage is not None, "no usage chunk despite include_usage"
    assert usage.completion_tokens == len(text.split()), usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, usage
    assert chunks >= 4, chunks
    print("ok stream with include_usage")


def tool_round_trip():
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = client.chat.completions.create(model=TOOL_MODEL, messages=messages, tools=TOOLS)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather", call
    assert json.loads(call.function.arguments) == {"city": "Paris"}, call.function.arguments

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18C, sunny"})
    r = client.chat.completions.create(model=TOOL_MODEL, messages=messages, tools=TOOLS)
    assert r.choices[0].message.content == "tool said: 18C, sunny", r
    print("ok tool-call round trip")


def streamed_tool_call():
    stream = client.chat.completions.create(
        model=TOOL_MODEL,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=TOOLS,
        stream=True,
    )
    calls, finish = {}, None
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                if delta.id:
                    call["id"] += delta.id
                if delta.function and delta.function.name:
                    call["name"] += delta.function.name
                if delta.function and delta.function.arguments:
                    call["arguments"] += delta.function.arguments
            if choice.finish_reason:
                finish = choice.finish_reason
    assert finish == "tool_calls", finish
    assert list(calls) == [0], calls
    assert calls[0]["name"] == "get_weather", calls
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}, calls
    print("ok streamed tool call")


def models():
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids, ids
    print("ok models")


def main():
    for check in (non_stream, stream_with_usage, tool_round_trip, streamed_tool_call, models):
        try:
            check()
        except Exception as e:  # noqa: BLE001 - report which check failed, then fail
            print(f"FAILED {check.__name__}: {type(e).__name__}: {e}", file=sys.stderr)
            raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
