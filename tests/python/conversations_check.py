"""The gateway's conversations as the official OpenAI Python SDK sees them.

Run by tests/tests/conversations.rs against a live gateway:
  AIGW_BASE_URL  the gateway's /v1 URL
Every `client.conversations.*` call, unmodified, and the OpenAI Agents SDK's
`OpenAIConversationsSession` over them (items as the SDK writes them: `__fake_id__` ids, output
text parts with annotations and logprobs, function calls and outputs); prints one `ok ...` line per check and exits
non-zero on any failure.
"""

import asyncio
import os

import openai
from agents.memory import OpenAIConversationsSession
from openai import AsyncOpenAI, OpenAI

BASE_URL = os.environ["AIGW_BASE_URL"]


def client(namespace, agent=None):
    headers = {"x-aigw-namespace": namespace}
    if agent:
        headers["x-aigw-agent"] = agent
    return OpenAI(
        base_url=BASE_URL,
        api_key="dummy-key-the-gateway-ignores",
        max_retries=0,
        timeout=30,
        default_headers=headers,
    )


planner = client("sdk-team", agent="planner")
other = client("sdk-other")


def expect_not_found(call, what):
    try:
        call()
    except openai.NotFoundError:
        return
    raise AssertionError(f"{what}: expected NotFoundError")


def main():
    conv = planner.conversations.create(
        items=[
            {"type": "message", "role": "user", "content": "hello from the sdk"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "hi there"}]},
        ],
        metadata={"topic": "demo"},
    )
    assert conv.object == "conversation", conv
    assert conv.id.startswith("conv_"), conv.id
    assert conv.metadata == {"topic": "demo"}, conv.metadata
    assert isinstance(conv.created_at, int)
    print("ok create with items and metadata")

    got = planner.conversations.retrieve(conv.id)
    assert got.id == conv.id and got.metadata == {"topic": "demo"}, got
    assert got.agent == "planner", got
    print("ok retrieve")

    updated = planner.conversations.update(conv.id, metadata={"topic": "changed", "k": "v"})
    assert updated.metadata == {"topic": "changed", "k": "v"}, updated.metadata
    assert planner.conversations.retrieve(conv.id).metadata == {"topic": "changed", "k": "v"}
    print("ok update")

    added = planner.conversations.items.create(
        conv.id,
        items=[
            {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{\"q\": 1}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "found"},
        ]
        + [{"type": "message", "role": "user", "content": f"turn {n}"} for n in range(5)],
    )
    assert added.object == "list" and len(added.data) == 7, added
    call = added.data[0]
    assert call.type == "function_call" and call.id.startswith("fc_"), call
    assert call.name == "lookup" and call.call_id == "call_1" and call.arguments == "{\"q\": 1}"
    assert added.data[1].type == "function_call_output" and added.data[1].output == "found"
    assert added.first_id == call.id and added.last_id == added.data[-1].id
    print("ok items.create")

    everything = [i.id for i in planner.conversations.items.list(conv.id, order="asc", limit=100)]
    assert len(everything) == 9, everything
    first = planner.conversations.items.list(conv.id, limit=3, order="asc")
    assert [i.id for i in first.data] == everything[:3], first
    assert first.has_more is True
    second = planner.conversations.items.list(conv.id, limit=3, order="asc", after=first.last_id)
    assert [i.id for i in second.data] == everything[3:6], second
    newest = planner.conversations.items.list(conv.id, limit=2)
    assert [i.id for i in newest.data] == everything[::-1][:2], "default order is desc"
    message = planner.conversations.items.list(conv.id, order="asc", limit=1).data[0]
    assert message.type == "message" and message.role == "user"
    assert message.content[0].type == "input_text" and message.content[0].text == "hello from the sdk"
    assert message.status == "completed"
    print("ok items.list with after, limit and order")

    paged = [i.id for i in planner.conversations.items.list(conv.id, limit=2, order="asc")]
    assert paged == everything, paged
    paged_desc = [i.id for i in planner.conversations.items.list(conv.id, limit=4)]
    assert paged_desc == everything[::-1], paged_desc
    print("ok auto-pagination")

    item = planner.conversations.items.retrieve(everything[1], conversation_id=conv.id)
    assert item.id == everything[1] and item.type == "message" and item.role == "assistant"
    assert item.content[0].type == "output_text" and item.content[0].text == "hi there"
    assert item.agent == "planner", item
    print("ok items.retrieve")

    after_delete = planner.conversations.items.delete(everything[1], conversation_id=conv.id)
    assert after_delete.object == "conversation" and after_delete.id == conv.id, after_delete
    left = [i.id for i in planner.conversations.items.list(conv.id, order="asc")]
    assert left == everything[:1] + everything[2:], left
    expect_not_found(
        lambda: planner.conversations.items.retrieve(everything[1], conversation_id=conv.id),
        "a deleted item",
    )
    print("ok items.delete")

    expect_not_found(lambda: other.conversations.retrieve(conv.id), "retrieve from another namespace")
    expect_not_found(
        lambda: other.conversations.update(conv.id, metadata={"x": "y"}), "update from another namespace"
    )
    expect_not_found(
        lambda: other.conversations.items.list(conv.id), "items.list from another namespace"
    )
    expect_not_found(
        lambda: other.conversations.items.create(conv.id, items=[{"role": "user", "content": "x"}]),
        "items.create from another namespace",
    )
    expect_not_found(lambda: other.conversations.delete(conv.id), "delete from another namespace")
    assert planner.conversations.retrieve(conv.id).metadata == {"topic": "changed", "k": "v"}
    print("ok NotFoundError for a foreign id")

    try:
        planner.conversations.items.list(conv.id, limit=1000)
    except openai.BadRequestError as e:
        assert e.body["param"] == "limit", e.body
    else:
        raise AssertionError("limit=1000 was accepted")
    print("ok BadRequestError naming the param")

    deleted = planner.conversations.delete(conv.id)
    assert deleted.deleted is True and deleted.id == conv.id and deleted.object == "conversation.deleted"
    expect_not_found(lambda: planner.conversations.retrieve(conv.id), "a deleted conversation")
    print("ok delete")

    empty = planner.conversations.create()
    assert empty.metadata == {}, empty
    assert list(planner.conversations.items.list(empty.id)) == []
    print("ok an empty conversation")


async def agents_session():
    async_client = AsyncOpenAI(
        base_url=BASE_URL,
        api_key="dummy-key-the-gateway-ignores",
        max_retries=0,
        timeout=30,
        default_headers={"x-aigw-namespace": "sdk-agents", "x-aigw-agent": "triage"},
    )
    session = OpenAIConversationsSession(openai_client=async_client)
    await session.add_items([{"role": "user", "content": "what is the weather in Oslo?"}])
    await session.add_items(
        [
            {
                "id": "__fake_id__",
                "type": "function_call",
                "call_id": "call_w",
                "name": "get_weather",
                "arguments": "{\"city\": \"Oslo\"}",
            },
            {"type": "function_call_output", "call_id": "call_w", "output": "rainy"},
            {
                "id": "__fake_id__",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "It is rainy.", "annotations": [], "logprobs": []}],
            },
        ]
    )
    items = await session.get_items()
    assert [i["type"] for i in items] == ["message", "function_call", "function_call_output", "message"], items
    assert items[0]["content"][0]["text"] == "what is the weather in Oslo?", items[0]
    assert items[3]["content"][0]["text"] == "It is rainy.", items[3]
    assert len({i["id"] for i in items}) == 4 and "__fake_id__" not in {i["id"] for i in items}
    last_two = await session.get_items(limit=2)
    assert [i["type"] for i in last_two] == ["function_call_output", "message"], last_two
    popped = await session.pop_item()
    assert popped["id"] == items[3]["id"], popped
    assert len(await session.get_items()) == 3
    conversation_id = session.session_id
    await session.clear_session()
    try:
        await async_client.conversations.retrieve(conversation_id)
    except openai.NotFoundError:
        pass
    else:
        raise AssertionError("clear_session left the conversation")
    print("ok agents session")


if __name__ == "__main__":
    main()
    asyncio.run(agents_session())
