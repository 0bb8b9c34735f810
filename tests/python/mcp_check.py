"""The official MCP Python SDK (`mcp` 2.x) against aigw's `/mcp`, with a virtual key as Bearer.

- `legacy session`: `ClientSession` over `streamable_http_client` (the 2025-11-25 handshake):
  initialize, list_tools, call_tool with structured content, a tool failure as `isError`, an
  unknown tool as the SDK's `MCPError`, and the session ended on close.
- `auto modern`: `Client(..., mode="auto")` probes `server/discover` and adopts 2026-07-28, then
  lists and calls.
- `auto re-probe`: the probe at a version the server does not serve is answered -32022 with the
  served versions; the client re-probes at the mutual modern one.
- `auto fallback`: a client that speaks no modern version the server serves falls back to the
  `initialize` handshake on the same endpoint (-32022 names handshake versions too).

Environment: AIGW_BASE_URL (`…/v1`), AIGW_MCP_KEY (the key), AIGW_MCP_TOOL (a tool the key may
use that echoes its arguments), AIGW_MCP_FAILING (one that fails when called).
"""

import asyncio
import os
import sys

import httpx2
import mcp.client._probe as probe
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

BASE = os.environ["AIGW_BASE_URL"].removesuffix("/v1")
URL = BASE + "/mcp"
KEY = os.environ["AIGW_MCP_KEY"]
TOOL = os.environ["AIGW_MCP_TOOL"]
FAILING = os.environ["AIGW_MCP_FAILING"]
ARGS = {"city": "Paris", "days": 2}


def http():
    return httpx2.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=30)


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


async def legacy_session():
    async with http() as client:
        async with streamable_http_client(URL, http_client=client) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                check(init.protocol_version == "2025-11-25", f"negotiated {init.protocol_version}")
                check(init.server_info.name == "aigw", f"server info {init.server_info}")
                check(init.capabilities.tools is not None, "tools capability")
                listed = await session.list_tools()
                names = [t.name for t in listed.tools]
                check(TOOL in names, f"{TOOL} not in {names}")
                check(names == sorted(names), f"not sorted: {names}")
                answer = await session.call_tool(TOOL, ARGS)
                check(not answer.is_error, f"echo failed: {answer}")
                check(answer.structured_content == ARGS, f"structured: {answer.structured_content}")
                check(answer.content[0].type == "text", f"content: {answer.content}")
                failed = await session.call_tool(FAILING, {})
                check(failed.is_error, f"{FAILING} did not fail: {failed}")
                check(failed.content and failed.content[0].text, f"no reason: {failed}")
                try:
                    await session.call_tool("no_such_tool", {})
                    check(False, "an unknown tool was called")
                except MCPError as e:
                    check(e.error.code == -32602, f"unknown tool: {e.error}")
    print("ok legacy session")


async def auto(expect_version):
    async with http() as client:
        async with Client(streamable_http_client(URL, http_client=client), mode="auto") as mcp:
            check(mcp.protocol_version == expect_version, f"adopted {mcp.protocol_version}")
            listed = await mcp.list_tools()
            check(TOOL in [t.name for t in listed.tools], f"{TOOL} not listed: {listed}")
            answer = await mcp.call_tool(TOOL, ARGS)
            check(not answer.is_error, f"call failed: {answer}")
            check(answer.structured_content == ARGS, f"structured: {answer.structured_content}")


async def main():
    await legacy_session()
    await auto("2026-07-28")
    print("ok auto modern")
    # A probe at a version the server does not know: -32022 names 2026-07-28, probed again.
    probe.LATEST_MODERN_VERSION = "2099-01-01"
    await auto("2026-07-28")
    print("ok auto re-probe")
    # A client whose only modern version the server does not serve: back to initialize.
    probe.MODERN_PROTOCOL_VERSIONS = ("2099-01-01",)
    await auto("2025-11-25")
    print("ok auto fallback")


asyncio.run(main())
