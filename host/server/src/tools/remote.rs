//! External MCP servers as tool sources: the gateway as an MCP client. Each configured server
//! (`[mcp_servers.<name>]`) is reached over streamable HTTP through the egress, granted exactly
//! its URL's origin, with the operator's credential placed by the egress. Its tools are listed
//! in the background (the gateway serves without waiting; a server down at start is retried
//! with backoff until it answers) and re-listed every `refresh`; the current list sits behind
//! `arc-swap`, so a call reads it without a lock. Remote tools appear beside built-in ones as
//! `<prefix>_<remote name>`, and every call goes through the toolbox's one path (grants,
//! quotas, validation against the remote `inputSchema`, cache, log line).

mod call;
mod failure;
mod session;
mod sse;
mod wire;

#[cfg(test)]
mod exchanges;

use std::sync::Arc;
use std::time::Duration;

use aigw_egress::{Credential, Egress, EgressError, Grants, Origin, Placement, Secret};
use arc_swap::ArcSwap;
use serde_json::{Value, json};

pub(crate) use call::call;
pub use failure::RemoteFailure;
use session::Connection;

use super::schema::ArgumentSchema;
use super::{Tool, ToolSource};

/// The longest wait between two attempts to list a server that does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The first wait after a failed listing (doubled after each failure).
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Pages of `tools/list` followed at most: a server whose cursors never end is cut off.
const MAX_PAGES: usize = 100;

/// One `[mcp_servers.<name>]`, validated.
#[derive(Debug, Clone)]
pub struct McpServerOptions {
    /// The table's name.
    pub name: String,
    /// The streamable HTTP endpoint, e.g. `https://tools.example.com/mcp`.
    pub url: String,
    /// The credential, if the server takes one (never logged).
    pub api_key: Option<String>,
    /// The header the credential goes in.
    pub header: String,
    /// What precedes the credential in that header.
    pub scheme: String,
    /// Tools are exposed as `<prefix>_<remote name>`.
    pub prefix: String,
    /// Connect limit of each request (the egress's connect timeout).
    pub connect_timeout: Duration,
    /// Each request's whole exchange, tool calls included.
    pub timeout: Duration,
    /// How often the tools are listed again.
    pub refresh: Duration,
    /// Only these remote tools (by remote name); `None`: all.
    pub tools: Option<Vec<String>>,
}

impl Default for McpServerOptions {
    fn default() -> McpServerOptions {
        McpServerOptions {
            name: String::new(),
            url: String::new(),
            api_key: None,
            header: "authorization".to_owned(),
            scheme: "Bearer ".to_owned(),
            prefix: String::new(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            refresh: Duration::from_secs(300),
            tools: None,
        }
    }
}

/// Where a remote tool's calls go: its server (by name: the toolbox holds the servers, and a
/// tool holding its server would keep it alive through the server's own list) and the name
/// the server knows it by, with its compiled `inputSchema`.
pub struct RemoteSource {
    pub server: String,
    pub remote: String,
    pub schema: ArgumentSchema,
}

/// What a listing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Tools exposed.
    pub tools: usize,
    /// Whether they differ from the previous listing's (the first listing differs from none
    /// unless the server has no tool).
    pub changed: bool,
    /// Why each listed tool that cannot be exposed was skipped.
    pub skipped: Vec<String>,
}

/// One external MCP server: its connection and its current tools.
pub struct RemoteServer {
    options: McpServerOptions,
    connection: Connection,
    tools: ArcSwap<Vec<Arc<Tool>>>,
}

impl std::fmt::Debug for RemoteServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteServer")
            .field("name", &self.options.name)
            .field("tools", &self.tools.load().len())
            .finish_non_exhaustive()
    }
}

impl RemoteServer {
    /// The server of `options`, reached through `egress` (which must have a client for
    /// `options.connect_timeout`). No request is sent until [`RemoteServer::refresh`] or a
    /// call.
    pub fn new(options: McpServerOptions, egress: Egress) -> Result<RemoteServer, EgressError> {
        let origin = Origin::of(&options.url)?;
        let credential = match &options.api_key {
            None => None,
            Some(key) => Some((
                Credential::new(
                    Secret::new(key.clone()),
                    Placement::Header {
                        name: options.header.clone(),
                        prefix: options.scheme.clone(),
                    },
                    &options.url,
                    &[],
                )?,
                key.clone(),
            )),
        };
        let connection = Connection::new(
            options.name.clone(),
            options.url.clone(),
            egress,
            Grants::new([origin]),
            credential,
            options.connect_timeout,
            options.timeout,
        );
        Ok(RemoteServer {
            options,
            connection,
            tools: ArcSwap::from_pointee(Vec::new()),
        })
    }

    pub fn name(&self) -> &str {
        &self.options.name
    }

    /// What its tools' names start with (`<prefix>_`).
    pub fn prefix(&self) -> &str {
        &self.options.prefix
    }

    /// Its current tool named `name` (prefixed), if any.
    pub fn tool(&self, name: &str) -> Option<Arc<Tool>> {
        let tools = self.tools.load();
        tools
            .binary_search_by(|t| (*t.name).cmp(name))
            .ok()
            .map(|at| Arc::clone(&tools[at]))
    }

    /// The tools of the last listing that succeeded (none before the first), sorted by name.
    pub fn tools(&self) -> Arc<Vec<Arc<Tool>>> {
        self.tools.load_full()
    }

    /// Lists the server's tools (every page) and makes them current. On failure the previous
    /// list stays, and the era is probed again next time.
    pub async fn refresh(&self) -> Result<Listed, RemoteFailure> {
        match self.list().await {
            Ok((tools, skipped)) => {
                let listed = Listed {
                    tools: tools.len(),
                    changed: !same(&self.tools.load(), &tools),
                    skipped,
                };
                self.tools.store(Arc::new(tools));
                Ok(listed)
            }
            Err(failure) => {
                self.connection.forget().await;
                Err(failure)
            }
        }
    }

    /// Every tool listed that can be exposed, and why the others cannot.
    async fn list(&self) -> Result<(Vec<Arc<Tool>>, Vec<String>), RemoteFailure> {
        let mut tools = Vec::new();
        let mut skipped = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = cursor.as_ref().map(|c| json!({"cursor": c}));
            let page = self.connection.call("tools/list", params).await?;
            let Some(listed) = page.get("tools").and_then(Value::as_array) else {
                return Err(RemoteFailure::bad(
                    self.name(),
                    "tools/list answered no `tools` array",
                ));
            };
            for tool in listed {
                match self.exposed(tool) {
                    Ok(Some(tool)) => tools.push(Arc::new(tool)),
                    Ok(None) => {}
                    Err(why) => skipped.push(why),
                }
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
                _ => {
                    tools.sort_by(|a: &Arc<Tool>, b| a.name.cmp(&b.name));
                    tools.dedup_by(|a, b| a.name == b.name);
                    return Ok((tools, skipped));
                }
            }
        }
        Err(RemoteFailure::bad(
            self.name(),
            format_args!("tools/list did not end within {MAX_PAGES} pages"),
        ))
    }

    /// A listed tool as the gateway exposes it: `None` when the operator did not allow it,
    /// why not when it cannot be exposed.
    fn exposed(&self, tool: &Value) -> Result<Option<Tool>, String> {
        let Some(remote) = tool.get("name").and_then(Value::as_str) else {
            return Err("a listed tool has no name".to_owned());
        };
        if let Some(allowed) = &self.options.tools
            && !allowed.iter().any(|a| a == remote)
        {
            return Ok(None);
        }
        let name = format!("{}_{remote}", self.options.prefix);
        if !is_tool_name(&name) {
            return Err(format!(
                "`{remote}`: `{name}` is not a tool name (1-64 of a-z A-Z 0-9 _ -)"
            ));
        }
        let parameters = tool
            .get("inputSchema")
            .filter(|s| s.get("type").and_then(Value::as_str) == Some("object"));
        let Some(parameters) = parameters else {
            return Err(format!(
                "`{remote}`: its inputSchema is not an object schema"
            ));
        };
        let text = |field: &str| {
            tool.get(field)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let schema = ArgumentSchema::compile(parameters)
            .map_err(|why| format!("`{remote}`: its inputSchema does not compile: {why}"))?;
        Ok(Some(Tool {
            name: name.into(),
            title: text("title"),
            description: text("description"),
            parameters: Arc::new(parameters.clone()),
            output: tool
                .get("outputSchema")
                .filter(|s| s.is_object())
                .map(|s| Arc::new(s.clone())),
            source: ToolSource::Remote(RemoteSource {
                server: self.options.name.clone(),
                remote: remote.to_owned(),
                schema,
            }),
        }))
    }

    /// Calls remote tool `remote` with `arguments`: its `structuredContent` if it gave one,
    /// else its content blocks (text parsed as JSON where it is JSON). `isError: true` is the
    /// tool's failure ([`RemoteFailure::tool_failed`]), not the server's.
    pub async fn call(&self, remote: &str, arguments: &Value) -> Result<Value, RemoteFailure> {
        let params = json!({"name": remote, "arguments": arguments});
        let result = self.connection.call("tools/call", Some(params)).await?;
        answer(self.name(), &result)
    }

    /// Lists the tools now and then every `refresh`, in the background; a failed listing is
    /// retried with backoff (250 ms doubling to 30 s, never past `refresh`). Ends when the
    /// last other holder of the server lets go of it.
    pub fn spawn_lister(self: &Arc<RemoteServer>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let refresh = self.options.refresh;
        tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                let Some(server) = weak.upgrade() else {
                    return;
                };
                let wait = match server.refresh().await {
                    Ok(listed) if listed.changed => {
                        let era = server.connection.era().await.unwrap_or("unknown");
                        for why in &listed.skipped {
                            tracing::warn!(server = server.name(), "skipping an MCP tool: {why}");
                        }
                        tracing::info!(
                            server = server.name(),
                            tools = listed.tools,
                            era,
                            "MCP server listed"
                        );
                        backoff = FIRST_BACKOFF;
                        refresh
                    }
                    Ok(listed) => {
                        tracing::debug!(
                            server = server.name(),
                            tools = listed.tools,
                            "MCP server listed, unchanged"
                        );
                        backoff = FIRST_BACKOFF;
                        refresh
                    }
                    Err(failure) => {
                        tracing::warn!(
                            server = server.name(),
                            class = ?failure.class,
                            "cannot list the MCP server's tools, retrying in {} ms: {}",
                            backoff.as_millis(),
                            failure.message
                        );
                        let wait = backoff.min(refresh);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        wait
                    }
                };
                drop(server);
                tokio::time::sleep(wait).await;
            }
        })
    }
}

/// Whether two listings offer the same tools, as a caller sees them.
fn same(a: &[Arc<Tool>], b: &[Arc<Tool>]) -> bool {
    let seen = |t: &Arc<Tool>| {
        (
            Arc::clone(&t.name),
            t.title.clone(),
            t.description.clone(),
            Arc::clone(&t.parameters),
            t.output.clone(),
        )
    };
    a.len() == b.len() && a.iter().map(seen).eq(b.iter().map(seen))
}

/// A `tools/call` result as the tool's answer.
fn answer(server: &str, result: &Value) -> Result<Value, RemoteFailure> {
    if result.get("resultType").and_then(Value::as_str) == Some("input_required") {
        return Err(RemoteFailure::bad(
            server,
            "the tool asks for the user's input mid-call, which the gateway cannot give",
        ));
    }
    let content = result
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        let said: Vec<&str> = content
            .iter()
            .filter_map(|block| block.get("text").and_then(Value::as_str))
            .collect();
        let said = if said.is_empty() {
            "the tool failed without saying why".to_owned()
        } else {
            said.join("\n")
        };
        return Err(RemoteFailure::tool(said));
    }
    if let Some(structured) = result.get("structuredContent").filter(|v| !v.is_null()) {
        return Ok(structured.clone());
    }
    let mut items: Vec<Value> = content
        .iter()
        .map(|block| match block.get("text").and_then(Value::as_str) {
            Some(text) if block.get("type").and_then(Value::as_str) == Some("text") => {
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
            }
            _ => block.clone(),
        })
        .collect();
    Ok(match items.len() {
        0 => Value::Null,
        1 => items.remove(0),
        _ => Value::Array(items),
    })
}

/// 1-64 characters of `a-z A-Z 0-9 _ -` (an OpenAI function name).
pub fn is_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigw_router::FailureClass;

    #[test]
    fn structured_content_wins_then_text_parsed_as_json() {
        let both = json!({"content": [{"type": "text", "text": "{\"sum\": 3}"}],
            "structuredContent": {"sum": 3}, "isError": false});
        assert_eq!(answer("t", &both), Ok(json!({"sum": 3})));
        let text = json!({"content": [{"type": "text", "text": "{\"a\": [1]}"}]});
        assert_eq!(answer("t", &text), Ok(json!({"a": [1]})));
        let plain = json!({"content": [{"type": "text", "text": "done"}]});
        assert_eq!(answer("t", &plain), Ok(json!("done")));
        let two = json!({"content": [{"type": "text", "text": "1"},
            {"type": "image", "data": "AA==", "mimeType": "image/png"}]});
        assert_eq!(
            answer("t", &two),
            Ok(json!([1, {"type": "image", "data": "AA==", "mimeType": "image/png"}]))
        );
    }

    #[test]
    fn is_error_is_the_tools_failure() {
        let failed = json!({"content": [{"type": "text", "text": "no such city"}],
            "isError": true});
        let failure = answer("t", &failed).err();
        assert_eq!(
            failure
                .as_ref()
                .map(|f| (f.class, f.tool_failed, f.message.as_str())),
            Some((FailureClass::InvalidRequest, true, "no such city"))
        );
        let input = json!({"resultType": "input_required", "inputRequests": {}});
        assert!(answer("t", &input).is_err_and(|f| !f.tool_failed));
    }

    #[test]
    fn tool_names_are_function_names() {
        assert!(is_tool_name("calc_add"));
        assert!(is_tool_name(&"a".repeat(64)));
        assert!(!is_tool_name(&"a".repeat(65)));
        assert!(!is_tool_name("calc_shout.loud"));
        assert!(!is_tool_name(""));
    }
}
