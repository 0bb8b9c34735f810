"""An MCP server written with the official Python SDK (`mcp` 2.x, its low-level `Server` over
streamable HTTP), for the gateway's external-MCP-server tests.

It listens on 127.0.0.1 (port `--port`, 0 picks a free one) and prints `listening on PORT` once
the socket is bound. Every request to `/mcp` must carry `authorization: Bearer <--token>`, else
401 (`--guard all`, the default). Its tools:

- `add {a, b}`: the sum, as structured content (and the serialised JSON as a text block);
- `fail {reason}`: a tool execution failure (`isError: true`) carrying the reason;
- `slow {seconds}`: answers after sleeping that long;
- `shout.loud {text}`: a valid MCP name the gateway cannot expose as an OpenAI function name.

`tools/list` pages two tools at a time (cursors), so a client must follow `nextCursor`.

`--era both` (the default) is the SDK as it is: 2026-07-28 requests (`server/discover`) and
2025-11-25 `initialize` sessions on the same endpoint. `--era legacy` answers a request that names
the modern revision in `MCP-Protocol-Version` the way a pre-2026 server (SDK 1.x) does: 400 with
an `Unsupported protocol version` JSON-RPC error, so a dual-era client falls back to
`initialize`.

`--guard calls` checks the token only on `tools/call` (listing is open), so a test can meet a
refused credential on a call to a tool that was listed.

`GET /stats` (no credential) answers what the server saw: calls per tool, the `server/discover`
and `initialize` requests, and `tools/call` requests that arrived with an `Mcp-Session-Id`.
"""

import argparse
import asyncio
import json
import socket
import sys
from collections import Counter

import mcp_types as types
import uvicorn
from mcp.server.lowlevel import Server
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

PAGE = 2

TOOLS = [
    types.Tool(
        name="add",
        title="Add",
        description="Adds two numbers",
        input_schema={
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
            "additionalProperties": False,
        },
        output_schema={
            "type": "object",
            "properties": {"sum": {"type": "number"}},
            "required": ["sum"],
        },
    ),
    types.Tool(
        name="fail",
        description="Always fails, saying why",
        input_schema={
            "type": "object",
            "properties": {"reason": {"type": "string"}},
            "required": ["reason"],
        },
    ),
    types.Tool(
        name="shout.loud",
        description="Upper-cases text (a name with a dot)",
        input_schema={"type": "object", "properties": {"text": {"type": "string"}}},
    ),
    types.Tool(
        name="slow",
        description="Answers after a while",
        input_schema={
            "type": "object",
            "properties": {"seconds": {"type": "number"}},
            "required": ["seconds"],
        },
    ),
]

stats = {"calls": Counter(), "discover": 0, "initialize": 0, "session_calls": 0}


async def list_tools(ctx, params):
    start = int(params.cursor) if params is not None and params.cursor else 0
    page = TOOLS[start : start + PAGE]
    following = start + PAGE
    return types.ListToolsResult(
        tools=page, next_cursor=str(following) if following < len(TOOLS) else None
    )


def text(value):
    return [types.TextContent(type="text", text=value)]


async def call_tool(ctx, params):
    arguments = params.arguments or {}
    stats["calls"][params.name] += 1
    if params.name == "add":
        total = arguments["a"] + arguments["b"]
        return types.CallToolResult(
            content=text(json.dumps({"sum": total})), structured_content={"sum": total}
        )
    if params.name == "fail":
        return types.CallToolResult(
            content=text(f"cannot do that: {arguments.get('reason', '')}"), is_error=True
        )
    if params.name == "slow":
        await asyncio.sleep(float(arguments.get("seconds", 0)))
        return types.CallToolResult(content=text("done"))
    if params.name == "shout.loud":
        return types.CallToolResult(content=text(str(arguments.get("text", "")).upper()))
    raise ValueError(f"unknown tool {params.name}")


def guarded(app, token, era, guard):
    """The SDK's ASGI app behind the bearer check, the era switch and `/stats`."""

    async def respond(send, status, body):
        data = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def asgi(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["path"] == "/stats":
            return await respond(send, 200, {**stats, "calls": dict(stats["calls"])})
        # Read once and handed on below: the method decides what the guard covers.
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            method = json.loads(body).get("method") if body else None
        except (ValueError, AttributeError):
            method = None
        guards = guard == "all" or method == "tools/call"
        if guards and headers.get("authorization") != f"Bearer {token}":
            return await respond(send, 401, {"error": "invalid_token"})
        version = headers.get("mcp-protocol-version")
        if era == "legacy" and version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
            return await respond(
                send,
                400,
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {
                        "code": -32600,
                        "message": f"Bad Request: Unsupported protocol version: {version}",
                    },
                },
            )
        if method == "server/discover":
            stats["discover"] += 1
        elif method == "initialize":
            stats["initialize"] += 1
        elif method == "tools/call" and "mcp-session-id" in headers:
            stats["session_calls"] += 1
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await app(scope, replay, send)

    return asgi


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", required=True)
    parser.add_argument("--era", choices=["both", "legacy"], default="both")
    parser.add_argument("--guard", choices=["all", "calls"], default="all")
    args = parser.parse_args()

    server = Server("aigw-test-tools", version="1.0.0", on_list_tools=list_tools, on_call_tool=call_tool)
    app = guarded(server.streamable_http_app(host="127.0.0.1"), args.token, args.era, args.guard)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    print(f"listening on {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


if __name__ == "__main__":
    sys.exit(main())
