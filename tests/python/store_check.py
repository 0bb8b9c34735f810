"""The official LangGraph SDK's store client against aigw's /v1/store: put, get, search
(query and filter), list namespaces, delete, ttl, and a foreign tenant that finds nothing. The
aigw extensions (if_version, version, agent) are checked with raw httpx. Prints one `ok ...`
line per check; any failure raises."""

import asyncio
import os
import time

import httpx
from langgraph_sdk import get_client

BASE = os.environ["AIGW_BASE_URL"]  # .../v1


async def main() -> None:
    team_a = get_client(url=BASE, headers={"x-aigw-namespace": "team-a", "x-aigw-agent": "planner"})
    team_b = get_client(url=BASE, headers={"x-aigw-namespace": "team-b"})
    store = team_a.store

    await store.put_item(["docs", "tea"], "green", {"text": "green tea is grassy", "rank": 2})
    await store.put_item(["docs", "tea"], "black", {"text": "black tea, strong tea, more tea", "rank": 5})
    await store.put_item(["docs", "coffee"], "espresso", {"text": "tea is not here", "rank": 9}, index=False)
    await store.put_item(["docs", "coffee"], "latte", {"title": "milk", "body": "tea"}, index=["title"])
    item = await store.get_item(["docs", "tea"], "green")
    assert item["namespace"] == ["docs", "tea"], item
    assert item["key"] == "green", item
    assert item["value"] == {"text": "green tea is grassy", "rank": 2}, item
    assert item["created_at"] and item["updated_at"], item
    assert item["version"] == 1 and item["agent"] == "planner", item
    print("ok put and get")

    found = await store.search_items(["docs"], query="tea")
    keys = [i["key"] for i in found["items"]]
    assert keys == ["black", "green"], found
    assert found["items"][0]["score"] > found["items"][1]["score"] > 0, found
    found = await store.search_items(["docs"], filter={"rank": {"$gte": 3}}, limit=10)
    assert sorted(i["key"] for i in found["items"]) == ["black", "espresso"], found
    found = await store.search_items(["docs", "tea"], filter={"rank": 2})
    assert [i["key"] for i in found["items"]] == ["green"], found
    found = await store.search_items(["docs"], limit=2, offset=1)
    assert len(found["items"]) == 2, found
    print("ok search with query and filter")

    listed = await store.list_namespaces(prefix=["docs"])
    assert listed["namespaces"] == [["docs", "coffee"], ["docs", "tea"]], listed
    listed = await store.list_namespaces(max_depth=1)
    assert listed["namespaces"] == [["docs"]], listed
    listed = await store.list_namespaces(suffix=["tea"], limit=5, offset=0)
    assert listed["namespaces"] == [["docs", "tea"]], listed
    print("ok list namespaces")

    # Another tenant sees none of it and changes none of it.
    other = team_b.store
    assert await other.get_item(["docs", "tea"], "green") is None
    assert (await other.search_items(["docs"], query="tea"))["items"] == []
    assert (await other.list_namespaces())["namespaces"] == []
    await other.delete_item(["docs", "tea"], "green")
    assert (await store.get_item(["docs", "tea"], "green"))["value"]["rank"] == 2
    print("ok foreign namespace miss")

    await store.delete_item(["docs", "tea"], "green")
    assert await store.get_item(["docs", "tea"], "green") is None
    print("ok delete")

    # ttl in minutes: 0.001 min = 60 ms. Wait (bounded) for it to expire on the wall clock.
    await store.put_item(["short"], "lived", {"text": "soon gone"}, ttl=0.001)
    deadline = time.monotonic() + 10
    while await store.get_item(["short"], "lived", refresh_ttl=False) is not None:
        assert time.monotonic() < deadline, "the entry did not expire"
        await asyncio.sleep(0.05)
    assert (await store.search_items(["short"]))["items"] == []
    await store.put_item(["long"], "lived", {"text": "stays"}, ttl=60)
    assert (await store.get_item(["long"], "lived"))["value"] == {"text": "stays"}
    print("ok ttl")

    # aigw's compare-and-set, through raw HTTP.
    async with httpx.AsyncClient(base_url=BASE, headers={"x-aigw-namespace": "team-a"}) as http:
        body = {"namespace": ["cas"], "key": "counter", "value": {"n": 1}, "if_version": 0}
        r = await http.put("/store/items", json=body)
        assert r.status_code == 204 and r.headers["x-aigw-entry-version"] == "1", r.text
        r = await http.put("/store/items", json=body)
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert error["code"] == "version_conflict" and error["param"] == "if_version", error
        assert "current version is 1" in error["message"], error
        r = await http.put("/store/items", json={**body, "value": {"n": 2}, "if_version": 1})
        assert r.status_code == 204 and r.headers["x-aigw-entry-version"] == "2", r.text
        r = await http.get("/store/items", params={"namespace": "cas", "key": "counter"})
        assert r.json()["version"] == 2 and r.json()["value"] == {"n": 2}, r.text
        r = await http.put("/store/items", json={**body, "if_version": 1})
        assert r.status_code == 409 and "current version is 2" in r.json()["error"]["message"], r.text
    print("ok stale if_version is 409")


asyncio.run(main())
