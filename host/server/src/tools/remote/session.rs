//! The gateway's connection to one MCP server: which era it speaks, found the way the official
//! SDK's auto mode finds it, and every request sent in that era's framing.
//!
//! Era detection: `server/discover` at 2026-07-28 first. A server that answers it and lists the
//! modern revision is modern (stateless: every request self-contained). Anything else that is
//! an answer (a JSON-RPC error, a 4xx without one, a discover result naming no modern
//! revision) is a handshake-era server: `initialize` at 2025-11-25, keep the `Mcp-Session-Id` it
//! gives, send `notifications/initialized`, and `MCP-Protocol-Version` with every later request.
//! Only a `-32022` naming revisions of neither era is a verdict of incompatibility. A failure
//! that is no answer (no connection, a timeout, a 5xx, 401/403, 429) says nothing about the era:
//! it fails the attempt and the next one probes again.
//!
//! An expired session (404 to a request carrying its id) is re-initialized once and the request
//! sent again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aigw_egress::{Credential, Egress, Grants, SendOptions};
use aigw_router::FailureClass;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::failure::RemoteFailure;
use super::wire::{
    self, Framing, HANDSHAKE_VERSION, HANDSHAKE_VERSIONS, MODERN_VERSION, Outcome, Reply,
    client_info,
};

/// How the gateway reaches one MCP server.
pub struct Connection {
    /// The server's name in the config (`[mcp_servers.<name>]`), for messages.
    pub server: String,
    url: String,
    egress: Egress,
    /// Exactly the server URL's origin.
    grants: Grants,
    credential: Option<Credential>,
    /// The credential's secret, masked in any upstream text kept.
    secret: Option<String>,
    connect_timeout: Duration,
    timeout: Duration,
    next_id: AtomicU64,
    /// The era found, once found; `None` until the next request probes.
    framing: Mutex<Option<Arc<Framing>>>,
}

impl Connection {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        server: String,
        url: String,
        egress: Egress,
        grants: Grants,
        credential: Option<(Credential, String)>,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Connection {
        let (credential, secret) = credential.map_or((None, None), |(c, s)| (Some(c), Some(s)));
        Connection {
            server,
            url,
            egress,
            grants,
            credential,
            secret,
            connect_timeout,
            timeout,
            next_id: AtomicU64::new(1),
            framing: Mutex::new(None),
        }
    }

    /// The era found, if a request found it.
    pub async fn era(&self) -> Option<&'static str> {
        self.framing.lock().await.as_deref().map(|f| match f {
            Framing::Modern => "modern",
            Framing::Handshake { .. } => "handshake",
        })
    }

    /// Forgets the era (after a failure that may mean the server changed): the next request
    /// probes again.
    pub async fn forget(&self) {
        *self.framing.lock().await = None;
    }

    /// Sends request `method` and returns its `result`; a JSON-RPC error or a refusal is a
    /// classified failure.
    pub async fn call(&self, method: &str, params: Option<Value>) -> Result<Value, RemoteFailure> {
        let framing = self.framing().await?;
        let reply = self.exchange(&framing, method, params.clone()).await?;
        let expired = reply.status == 404
            && matches!(
                &*framing,
                Framing::Handshake {
                    session: Some(_),
                    ..
                }
            );
        if !expired {
            return self.result(method, reply);
        }
        // The session expired: initialize once more and send the request again.
        let framing = self.renew(&framing).await?;
        let reply = self.exchange(&framing, method, params).await?;
        self.result(method, reply)
    }

    /// The era's framing: the one found, or found now.
    async fn framing(&self) -> Result<Arc<Framing>, RemoteFailure> {
        let mut slot = self.framing.lock().await;
        if let Some(framing) = slot.as_ref() {
            return Ok(Arc::clone(framing));
        }
        // Held while probing: concurrent first calls wait for one probe instead of each
        // opening a session.
        let framing = Arc::new(self.detect().await?);
        *slot = Some(Arc::clone(&framing));
        Ok(framing)
    }

    /// A new session replacing `expired` (unless another call replaced it already).
    async fn renew(&self, expired: &Arc<Framing>) -> Result<Arc<Framing>, RemoteFailure> {
        let mut slot = self.framing.lock().await;
        if let Some(current) = slot.as_ref()
            && !Arc::ptr_eq(current, expired)
        {
            return Ok(Arc::clone(current));
        }
        *slot = None;
        let framing = Arc::new(self.initialize().await?);
        *slot = Some(Arc::clone(&framing));
        Ok(framing)
    }

    async fn detect(&self) -> Result<Framing, RemoteFailure> {
        let reply = self
            .exchange(&Framing::Modern, "server/discover", None)
            .await?;
        self.refused(&reply)?;
        match &reply.outcome {
            Outcome::Result(result)
                if lists(result.get("supportedVersions"), &[MODERN_VERSION]) =>
            {
                return Ok(Framing::Modern);
            }
            Outcome::Error {
                code: -32022, data, ..
            } => {
                let supported = data.as_ref().and_then(|d| d.get("supported"));
                if supported.is_some()
                    && !lists(supported, &[MODERN_VERSION])
                    && !lists(supported, &HANDSHAKE_VERSIONS)
                {
                    return Err(RemoteFailure::new(
                        FailureClass::BadResponse,
                        format!(
                            "MCP server `{}` speaks none of the revisions the gateway does \
                             ({MODERN_VERSION}, {}): it supports {}",
                            self.server,
                            HANDSHAKE_VERSIONS.join(", "),
                            supported.map(Value::to_string).unwrap_or_default()
                        ),
                    ));
                }
            }
            _ => {}
        }
        self.initialize().await
    }

    /// A failure that is no verdict on the era: the credential refused, rate limited, the
    /// server failing.
    fn refused(&self, reply: &Reply) -> Result<(), RemoteFailure> {
        match reply.status {
            401 | 403 | 429 | 500..=599 => Err(RemoteFailure::status(
                &self.server,
                reply.status,
                &reply.headers,
                text(&reply.outcome),
            )),
            _ => Ok(()),
        }
    }

    /// The handshake: `initialize`, then `notifications/initialized` in the new session.
    async fn initialize(&self) -> Result<Framing, RemoteFailure> {
        let opening = Framing::Handshake {
            version: None,
            session: None,
        };
        let params = json!({
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": client_info(),
        });
        let reply = self.exchange(&opening, "initialize", Some(params)).await?;
        let session = reply.headers.get("mcp-session-id").map(|s| s.into_owned());
        let result = self.result("initialize", reply)?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !HANDSHAKE_VERSIONS.contains(&version) {
            return Err(RemoteFailure::bad(
                &self.server,
                format_args!(
                    "initialize agreed on protocol version {version:?}, which the gateway does \
                     not speak over streamable HTTP"
                ),
            ));
        }
        let framing = Framing::Handshake {
            version: Some(version.to_owned()),
            session,
        };
        let request = wire::request(&self.url, &framing, None, "notifications/initialized", None);
        let response = self.send(request).await?;
        let reply = wire::reply(&self.server, response, None, self.secret.as_deref()).await?;
        if !(200..300).contains(&reply.status) {
            self.refused(&reply)?;
            return Err(RemoteFailure::status(
                &self.server,
                reply.status,
                &reply.headers,
                text(&reply.outcome),
            ));
        }
        Ok(framing)
    }

    /// One request and its reply, whatever its status.
    async fn exchange(
        &self,
        framing: &Framing,
        method: &str,
        params: Option<Value>,
    ) -> Result<Reply, RemoteFailure> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = wire::request(&self.url, framing, Some(id), method, params);
        let response = self.send(request).await?;
        wire::reply(&self.server, response, Some(id), self.secret.as_deref()).await
    }

    async fn send(
        &self,
        request: aigw_egress::Request,
    ) -> Result<aigw_egress::Response, RemoteFailure> {
        let options = SendOptions {
            grants: &self.grants,
            credential: self.credential.as_ref(),
            connect_timeout: self.connect_timeout,
            timeout: self.timeout,
        };
        self.egress
            .send(request, options)
            .await
            .map_err(|e| RemoteFailure::egress(&self.server, &e))
    }

    /// A reply as the result of `method`, or the failure it says.
    fn result(&self, method: &str, reply: Reply) -> Result<Value, RemoteFailure> {
        self.refused(&reply)?;
        match reply.outcome {
            Outcome::Result(result) => Ok(result),
            Outcome::Error { code, message, .. } => {
                Err(RemoteFailure::rpc(&self.server, method, code, &message))
            }
            Outcome::Text(text) => Err(RemoteFailure::status(
                &self.server,
                reply.status,
                &reply.headers,
                &text,
            )),
        }
    }
}

/// Whether `versions` (a JSON array of strings) holds one of `any`.
fn lists(versions: Option<&Value>, any: &[&str]) -> bool {
    versions.and_then(Value::as_array).is_some_and(|list| {
        list.iter()
            .any(|v| v.as_str().is_some_and(|v| any.contains(&v)))
    })
}

fn text(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Text(text) => text,
        Outcome::Error { message, .. } => message,
        Outcome::Result(_) => "",
    }
}
