//! A scripted HTTP upstream for tool plugins' tests (the `tool-echo` plugin's `upstream_get`
//! and `fetch`): a real server on an ephemeral port whose **path picks the answer**, recording
//! every request it gets (method, path, headers) so a test can see what reached it, which
//! credential header included.
//!
//! | path | answer |
//! |---|---|
//! | `/ok` (and any path not listed) | 200 `ok <path>` |
//! | `/status/<code>` | `<code>` with body `status <code>`; a 429 carries `retry-after: 7` |
//! | `/redirect?to=<url>` | 302 with `location: <url>` |
//! | `/big/<bytes>` | 200 with a body of `<bytes>` `x` |
//! | `/stall` | the headers, then silence (held up to 60 s) |
//! | `/slow/<ms>` | waits `<ms>` before answering 200 `slow` |
//! | `/echo-headers` | 200 with the request's headers as JSON |
//!
//! [`Scripted::fixed`] makes every path answer one status instead (a failing upstream).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// One request the upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct State {
    seen: Mutex<Vec<Seen>>,
    /// Every path answers this status.
    fixed: Option<u16>,
}

/// A running scripted upstream; stopped when dropped.
pub struct Scripted {
    addr: SocketAddr,
    state: Arc<State>,
    server: JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Scripted {
    /// An upstream answering by path (the table above).
    pub async fn start() -> Scripted {
        Scripted::with(None).await
    }

    /// An upstream answering `status` to every request (429 with `retry-after: 7`).
    pub async fn fixed(status: u16) -> Scripted {
        Scripted::with(Some(status)).await
    }

    async fn with(fixed: Option<u16>) -> Scripted {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(e) => panic!("scripted upstream: cannot bind: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(e) => panic!("scripted upstream: no local address: {e}"),
        };
        let state = Arc::new(State {
            seen: Mutex::new(Vec::new()),
            fixed,
        });
        let serving = Arc::clone(&state);
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let state = Arc::clone(&serving);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(answer(&state, request).await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Scripted {
            addr,
            state,
            server,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        match self.state.seen.lock() {
            Ok(seen) => seen.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

fn full(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response
}

async fn answer(state: &State, request: Request<Incoming>) -> Response<Body> {
    let target = request
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    match state.seen.lock() {
        Ok(mut seen) => seen.push(Seen {
            method: request.method().to_string(),
            target: target.clone(),
            headers: headers.clone(),
        }),
        Err(poisoned) => poisoned.into_inner().push(Seen {
            method: request.method().to_string(),
            target: target.clone(),
            headers: headers.clone(),
        }),
    }
    if let Some(status) = state.fixed {
        return status_answer(status);
    }
    let path = request.uri().path();
    if let Some(code) = path.strip_prefix("/status/") {
        return status_answer(code.parse().unwrap_or(500));
    }
    if path == "/redirect" {
        let to = request
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("to="))
            .unwrap_or("/");
        let mut response = full(302, "moved");
        if let Ok(value) = http::HeaderValue::from_str(to) {
            response.headers_mut().insert(http::header::LOCATION, value);
        }
        return response;
    }
    if let Some(bytes) = path.strip_prefix("/big/") {
        let n: usize = bytes.parse().unwrap_or(0);
        return full(200, vec![b'x'; n]);
    }
    if path == "/stall" {
        let stream = futures_util::stream::once(async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"late")))
        });
        return Response::new(StreamBody::new(stream).boxed_unsync());
    }
    if let Some(ms) = path.strip_prefix("/slow/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        return full(200, "slow");
    }
    if path == "/echo-headers" {
        let map: Map<String, Value> = headers
            .into_iter()
            .map(|(n, v)| (n, Value::String(v)))
            .collect();
        return full(200, Value::Object(map).to_string());
    }
    full(200, format!("ok {target}"))
}

fn status_answer(status: u16) -> Response<Body> {
    let mut response = full(status, format!("status {status}"));
    if status == 429 {
        response
            .headers_mut()
            .insert("retry-after", http::HeaderValue::from_static("7"));
    }
    response
}
