"""The gateway's tool loop as the official OpenAI Python SDK sees it.

Run by tests/tests/tool_loop.rs against a live gateway:
  AIGW_BASE_URL   the gateway's /v1 URL
  AIGW_TOOL_MODEL a model that calls the first tool, then answers "tool said: <result>"
  AIGW_TOOL       the aigw tool to name (its result echoes its arguments)
Prints one `ok ...` line per check; any failure exits non-zero.
"""

import os

from openai import OpenAI

BASE_URL = os.environ["AIGW_BASE_URL"]
MODEL = os.environ.get("AIGW_TOOL_MODEL", "tools")
TOOL = os.environ.get("AIGW_TOOL", "echo")

client = OpenAI(base_url=BASE_URL, api_key="dummy-key-the-gateway-ignores", max_retries=0, timeout=30)

MESSAGES = [{"role": "user", "content": "use the tool"}]
# Not an OpenAI tool type: the SDK sends it as given, the gateway runs it.
AIGW_TOOLS = [{"type": "aigw_tool", "name": TOOL}]


def non_stream():
    r = client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=AIGW_TOOLS)
    choice = r.choices[0]
    assert choice.finish_reason == "stop", r
    assert choice.message.tool_calls in (None, []), r
    assert choice.message.content.startswith("tool said: "), r
    assert '"city"' in choice.message.content, r
    # Both steps' usage: the second step's prompt holds the first's call and result.
    assert r.usage is not None and r.usage.prompt_tokens > 16, r.usage
    print("ok tool loop non-stream")


def stream():
    chunks = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        tools=AIGW_TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    ids, text, finish, usage, calls = set(), [], None, None, 0
    for chunk in chunks:
        ids.add(chunk.id)
        if chunk.usage is not None:
            assert usage is None, "two usage chunks"
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                text.append(choice.delta.content)
            if choice.delta.tool_calls:
                calls += 1
            if choice.finish_reason is not None:
                assert finish is None, "two finish chunks"
                finish = choice.finish_reason
    answer = "".join(text)
    assert len(ids) == 1, ids
    assert finish == "stop", finish
    assert calls == 0, "the gateway's own tool calls reached the client"
    assert answer.startswith("tool said: ") and '"city"' in answer, answer
    assert usage is not None and usage.total_tokens > 0, usage
    print("ok tool loop stream")


non_stream()
stream()
