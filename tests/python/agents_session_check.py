"""Two agents of the OpenAI Agents SDK sharing one conversation through the gateway.

Run by tests/tests/agents_sdk.rs against a live gateway:
  AIGW_BASE_URL  the gateway's /v1 URL
  AIGW_MODEL     a model answering with the digest of the messages it received (the mock's
                 `echo-messages`: a JSON array of "<role>: <text>" strings)

Each agent uses the gateway twice: as its model (`OpenAIChatCompletionsModel`) and as its
session store (`OpenAIConversationsSession`, the Conversations API). Alice and Bob take turns
on one conversation; each must see the other's messages, both in what reached the model and in
the session's items. Tracing is off, so nothing leaves loopback. Prints one `ok ...` line per
check; any failure exits non-zero.
"""

import asyncio
import json
import os

from openai import AsyncOpenAI

from agents import Agent, OpenAIChatCompletionsModel, RunConfig, Runner, set_tracing_disabled
from agents.run_config import CallModelData, ModelInputData
from agents.memory import OpenAIConversationsSession
from agents.memory.openai_conversations_session import start_openai_conversations_session

BASE_URL = os.environ["AIGW_BASE_URL"]
MODEL = os.environ.get("AIGW_MODEL", "echo")


def client(agent: str) -> AsyncOpenAI:
    return AsyncOpenAI(
        base_url=BASE_URL,
        api_key="dummy-key-the-gateway-ignores",
        max_retries=0,
        timeout=30,
        default_headers={"x-aigw-agent": agent},
    )


def agent(name: str, openai_client: AsyncOpenAI) -> Agent:
    return Agent(
        name=name,
        instructions=f"You are {name}.",
        model=OpenAIChatCompletionsModel(model=MODEL, openai_client=openai_client),
    )


def replayable(data: CallModelData) -> ModelInputData:
    """The model input with history assistant messages in the easy form `{role, content}`.

    openai-agents 0.24 strips the `id` of the assistant messages it replays from an
    `OpenAIConversationsSession`, and its Chat Completions converter then reads none of them (an
    assistant `message` item needs an `id`; the easy form without one takes no `output_text`
    parts): `UserError: Unhandled item type or structure`, with any Conversations server, not
    only the gateway. This is the SDK's own hook for editing what a model call is sent.
    """
    items = []
    for item in data.model_data.input:
        if isinstance(item, dict) and item.get("role") == "assistant" and "id" not in item:
            item = {"role": "assistant", "content": text_of(item)}
        items.append(item)
    return ModelInputData(input=items, instructions=data.model_data.instructions)


RUN = RunConfig(call_model_input_filter=replayable)


def text_of(item: dict) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [])


async def main() -> None:
    set_tracing_disabled(True)
    alice_client, bob_client = client("alice"), client("bob")
    conversation = await start_openai_conversations_session(alice_client)
    assert conversation.startswith("conv_"), conversation
    alice = agent("Alice", alice_client)
    bob = agent("Bob", bob_client)
    alice_session = OpenAIConversationsSession(conversation_id=conversation, openai_client=alice_client)
    bob_session = OpenAIConversationsSession(conversation_id=conversation, openai_client=bob_client)

    first = await Runner.run(alice, "hello, I am Alice", session=alice_session, run_config=RUN)
    seen = json.loads(first.final_output)
    assert seen == ["system: You are Alice.", "user: hello, I am Alice"], seen
    print("ok alice's first turn")

    second = await Runner.run(bob, "Bob here: what did Alice say?", session=bob_session, run_config=RUN)
    seen = json.loads(second.final_output)
    assert seen == [
        "system: You are Bob.",
        "user: hello, I am Alice",
        f"assistant: {first.final_output}",
        "user: Bob here: what did Alice say?",
    ], seen
    print("ok bob sees alice's turn")

    third = await Runner.run(alice, "thanks Bob", session=alice_session, run_config=RUN)
    seen = json.loads(third.final_output)
    assert seen[0] == "system: You are Alice.", seen
    assert seen[3:] == [
        "user: Bob here: what did Alice say?",
        f"assistant: {second.final_output}",
        "user: thanks Bob",
    ], seen
    print("ok alice sees bob's turn")

    # Both sessions read the same six items in the same order, each naming its writer.
    for session in (alice_session, bob_session):
        items = await session.get_items()
        roles = [item.get("role") for item in items]
        assert roles == ["user", "assistant"] * 3, items
        texts = [text_of(item) for item in items]
        assert texts == [
            "hello, I am Alice",
            first.final_output,
            "Bob here: what did Alice say?",
            second.final_output,
            "thanks Bob",
            third.final_output,
        ], texts
        agents = [item.get("agent") for item in items]
        assert agents == ["alice", "alice", "bob", "bob", "alice", "alice"], agents
        assert len({item["id"] for item in items}) == 6, items
    print("ok both sessions read the shared history")

    last = await bob_session.get_items(limit=2)
    assert [text_of(item) for item in last] == ["thanks Bob", third.final_output], last
    print("ok a limited read gives the newest items in order")


if __name__ == "__main__":
    asyncio.run(main())
