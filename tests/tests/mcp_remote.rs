//! External MCP servers as tool sources, through the real binary against an MCP server written
//! with the official Python SDK (`tests/python/mcp_server.py`): its tools listed under the
//! prefix, invoked, in both eras; `isError` as the tool's failure; a refused credential as the
//! operator's (502) with the secret never logged; a key's grant on the prefixed name; a server
//! down at start whose tools appear when it comes up; arguments checked against the remote
//! schema before the remote is called; a slow tool past `timeout_ms`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aigw_tests::gateway::Gateway;
use aigw_tests::mcp_server::{Era, Guard, McpServer, free_port};
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN: &str = "mcp-token-5f2c9a81d4";
const ADMIN: &str = "admin-test-key-0123456789abcdef";

/// How long the gateway may take to list a server that is up.
const LISTED: Duration = Duration::from_secs(30);

fn config(url: &str, extra: &str) -> String {
    format!("[mcp_servers.calc]\nurl = \"{url}\"\napi_key = \"${{CALC_TOKEN}}\"\n{extra}\n")
}

async fn gateway(url: &str, token: &str, extra: &str) -> Gateway {
    Gateway::builder()
        .env("CALC_TOKEN", token)
        .start(&config(url, extra))
        .await
}

/// Waits for the gateway to log that it listed `calc`.
async fn listed(gateway: &Gateway) {
    let line = gateway
        .wait_for_log(LISTED, |l| {
            l.contains("MCP server listed") && l.contains("calc")
        })
        .await;
    assert!(
        line.is_some(),
        "calc was never listed:\n{}",
        gateway.stderr()
    );
}

/// The names `GET /v1/tools` lists (with `key`, if given), and the whole body.
async fn tools(gateway: &Gateway, key: Option<&str>) -> (Vec<String>, Value) {
    let mut request = gateway.client().get(gateway.url("/v1/tools"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let names = body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {body}"))
        .iter()
        .filter_map(|t| t["function"]["name"].as_str().map(str::to_owned))
        .collect();
    (names, body)
}

async fn invoke(
    gateway: &Gateway,
    key: Option<&str>,
    name: &str,
    arguments: Value,
) -> (StatusCode, Value) {
    let mut request = gateway
        .client()
        .post(gateway.url(&format!("/v1/tools/{name}/invoke")))
        .json(&json!({"arguments": arguments}));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// What the gateway's log must never hold: the server's credential.
fn assert_secret_unlogged(gateway: &Gateway, secret: &str) {
    assert!(
        !gateway.stderr().contains(secret),
        "the credential was logged:\n{}",
        gateway.stderr()
    );
}

#[tokio::test]
async fn remote_tools_are_listed_under_the_prefix_and_invoked() {
    let server = McpServer::start(TOKEN, Era::Both).await;
    let gateway = gateway(&server.url(), TOKEN, "").await;
    listed(&gateway).await;

    let (names, body) = tools(&gateway, None).await;
    assert_eq!(names, ["calc_add", "calc_fail", "calc_slow"], "{body}");
    let add = &body["data"][0];
    assert_eq!(add["source"], "mcp:calc");
    assert_eq!(add["function"]["description"], "Adds two numbers");
    assert_eq!(add["function"]["parameters"]["required"], json!(["a", "b"]));
    assert_eq!(add["title"], "Add");
    // `shout.loud` is a valid MCP name but no function name: skipped, and said so.
    assert!(
        gateway.stderr().contains("`shout.loud`"),
        "{}",
        gateway.stderr()
    );

    let (status, answer) = invoke(&gateway, None, "calc_add", json!({"a": 2, "b": 3.5})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["result"], json!({"sum": 5.5}), "{answer}");
    assert_eq!(server.calls("add").await, 1);

    // The tool's own failure: the caller hears its reason, as a 400 of the call.
    let (status, body) = invoke(&gateway, None, "calc_fail", json!({"reason": "no"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot do that: no"),
        "{body}"
    );

    // Arguments that do not fit the remote schema never reach the server.
    let (status, body) = invoke(&gateway, None, "calc_add", json!({"a": "two", "b": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_tool_arguments", "{body}");
    assert_eq!(body["error"]["param"], "a", "{body}");
    let (status, body) = invoke(&gateway, None, "calc_add", json!({"a": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["param"], "b", "{body}");
    assert_eq!(server.calls("add").await, 1);

    // The modern revision: one discover, no handshake.
    let stats = server.stats().await;
    assert!(stats["discover"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(stats["initialize"], 0, "{stats}");

    // One log line per call, naming the tool and the server.
    let line = gateway
        .wait_for_log(LISTED, |l| l.contains("calc_add") && l.contains("mcp:calc"))
        .await;
    assert!(line.is_some(), "{}", gateway.stderr());
    assert_secret_unlogged(&gateway, TOKEN);
}

#[tokio::test]
async fn a_handshake_era_server_is_reached_through_initialize() {
    let server = McpServer::start(TOKEN, Era::Legacy).await;
    let gateway = gateway(&server.url(), TOKEN, "").await;
    listed(&gateway).await;
    let (names, _) = tools(&gateway, None).await;
    assert_eq!(names, ["calc_add", "calc_fail", "calc_slow"]);
    let (status, answer) = invoke(&gateway, None, "calc_add", json!({"a": 1, "b": 1})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["result"], json!({"sum": 2}));
    let stats = server.stats().await;
    // One session for the listing and the call, which went in it.
    assert_eq!(stats["initialize"], 1, "{stats}");
    assert_eq!(stats["session_calls"], 1, "{stats}");
}

#[tokio::test]
async fn a_refused_credential_is_the_operators_502_and_never_logged() {
    let secret = "wrong-credential-7c41e9";
    let server = McpServer::start_with(0, TOKEN, Era::Both, Guard::Calls).await;
    let gateway = gateway(&server.url(), secret, "").await;
    listed(&gateway).await;
    let (status, body) = invoke(&gateway, None, "calc_add", json!({"a": 1, "b": 1})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    assert!(!body.to_string().contains(secret), "{body}");
    // A listing refused outright is retried, and logged without the secret either.
    let refused = McpServer::start(TOKEN, Era::Both).await;
    let other = gateway_with(&refused.url(), secret).await;
    let line = other
        .wait_for_log(LISTED, |l| {
            l.contains("cannot list") && l.contains("Unauthorized")
        })
        .await;
    assert!(line.is_some(), "{}", other.stderr());
    assert_secret_unlogged(&gateway, secret);
    assert_secret_unlogged(&other, secret);
}

async fn gateway_with(url: &str, token: &str) -> Gateway {
    gateway(url, token, "").await
}

#[tokio::test]
async fn a_key_must_be_granted_the_prefixed_name() {
    let server = McpServer::start(TOKEN, Era::Both).await;
    let gateway = Gateway::builder()
        .env("CALC_TOKEN", TOKEN)
        .admin_key(ADMIN)
        .start(&config(&server.url(), ""))
        .await;
    listed(&gateway).await;
    let key = |tools: Value| {
        let gateway = &gateway;
        async move {
            gateway
                .create_key(&json!({"name": "agent", "tools": tools}))
                .await
                .1
        }
    };
    let narrow = key(json!(["weather_*"])).await;
    let (status, body) = invoke(&gateway, Some(&narrow), "calc_add", json!({"a": 1, "b": 2})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "tool_not_allowed", "{body}");
    assert!(tools(&gateway, Some(&narrow)).await.0.is_empty());
    assert_eq!(server.calls("add").await, 0);

    let granted = key(json!(["calc_add"])).await;
    assert_eq!(tools(&gateway, Some(&granted)).await.0, ["calc_add"]);
    let (status, body) = invoke(
        &gateway,
        Some(&granted),
        "calc_add",
        json!({"a": 1, "b": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = invoke(
        &gateway,
        Some(&granted),
        "calc_fail",
        json!({"reason": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_server_down_at_start_is_listed_when_it_comes_up() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let gateway = gateway(&url, TOKEN, "").await;
    // The gateway serves at once; the server's tools are not there yet.
    let line = gateway
        .wait_for_log(LISTED, |l| {
            l.contains("cannot list") && l.contains("Connect")
        })
        .await;
    assert!(line.is_some(), "{}", gateway.stderr());
    assert!(tools(&gateway, None).await.0.is_empty());
    let (status, _) = invoke(&gateway, None, "calc_add", json!({"a": 1, "b": 2})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let server = McpServer::start_with(port, TOKEN, Era::Both, Guard::All).await;
    listed(&gateway).await;
    assert_eq!(
        tools(&gateway, None).await.0,
        ["calc_add", "calc_fail", "calc_slow"]
    );
    let (status, body) = invoke(&gateway, None, "calc_add", json!({"a": 1, "b": 2})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(server.calls("add").await, 1);
}

#[tokio::test]
async fn a_call_past_timeout_ms_is_a_504_and_the_allow_list_narrows_the_tools() {
    let server = McpServer::start(TOKEN, Era::Both).await;
    let gateway = gateway(
        &server.url(),
        TOKEN,
        "timeout_ms = 700\ntools = [\"slow\", \"add\"]\nprefix = \"m\"",
    )
    .await;
    let line = gateway
        .wait_for_log(LISTED, |l| l.contains("MCP server listed"))
        .await;
    assert!(line.is_some(), "{}", gateway.stderr());
    assert_eq!(tools(&gateway, None).await.0, ["m_add", "m_slow"]);
    let (status, body) = invoke(&gateway, None, "m_slow", json!({"seconds": 5})).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["error"]["code"], "timeout", "{body}");
    let (status, body) = invoke(&gateway, None, "m_slow", json!({"seconds": 0})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A remote tool is a tool like any other on every surface: the chat loop runs it for the model
/// (the mock model calls it with arguments made from its remote schema), and `/mcp` lists and
/// calls it for an MCP client (the stateless revision).
#[tokio::test]
async fn remote_tools_reach_the_chat_loop_and_mcp_clients() {
    let server = McpServer::start(TOKEN, Era::Both).await;
    let upstreams = aigw_tests::setup::Upstreams::start().await;
    let gateway = upstreams
        .gateway_builder()
        .env("CALC_TOKEN", TOKEN)
        .start(&upstreams.config(&format!(
            "{}[models.tools]\ntargets = [\"local/tool-call\"]\n",
            config(&server.url(), "")
        )))
        .await;
    listed(&gateway).await;

    // The chat loop: the model is offered `calc_add`, calls it with {"a": 1.5, "b": 1.5}, and
    // answers with the remote server's result.
    let response = gateway
        .chat(&json!({"model": "tools",
                      "messages": [{"role": "user", "content": "add"}],
                      "tools": [{"type": "aigw_tool", "name": "calc_add"}]}))
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"], "tool said: {\"sum\":3.0}",
        "{body}"
    );
    assert_eq!(server.calls("add").await, 1);

    // MCP, stateless: tools/list shows it, tools/call runs it on the remote server.
    let rpc = |id: u64, method: &str, params: Value| {
        let mut params = params;
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
        });
        let name = params["name"].as_str().map(str::to_owned);
        let mut request = gateway
            .client()
            .post(gateway.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2026-07-28")
            .header("Mcp-Method", method)
            .json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        if let Some(name) = name {
            request = request.header("Mcp-Name", name);
        }
        request.send()
    };
    let listed: Value = rpc(1, "tools/list", json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"calc_add"), "{listed}");
    let called: Value = rpc(
        2,
        "tools/call",
        json!({"name": "calc_add", "arguments": {"a": 2, "b": 2}}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(called["result"]["isError"], false, "{called}");
    assert_eq!(
        called["result"]["structuredContent"],
        json!({"sum": 4}),
        "{called}"
    );
    assert_eq!(server.calls("add").await, 2);
}
