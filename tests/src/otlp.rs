//! A small OTLP/HTTP trace receiver for the tests: `POST /v1/traces` with a protobuf
//! `ExportTraceServiceRequest` (decoded with the official protocol crate's prost messages), on an
//! ephemeral loopback port. It keeps every span it receives, flattened with its resource's
//! `service.name`, for tests to wait on and assert. aigw's exporter does not compress; a body
//! with a `content-encoding` is refused (415), so a change there shows up as a failing test
//! rather than as spans silently missing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// One received span, its ids in lower-case hex (a root span's parent id is empty).
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    /// OTLP's `SpanKind`: 1 internal, 2 server, 3 client.
    pub kind: i32,
    /// OTLP's status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
    pub attributes: BTreeMap<String, Attribute>,
    pub service_name: String,
}

/// An attribute's value, as the tests compare them.
#[derive(Debug, Clone, PartialEq)]
pub enum Attribute {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Other,
}

impl ReceivedSpan {
    /// The attribute `key` as text, if it is text.
    pub fn text(&self, key: &str) -> Option<&str> {
        match self.attributes.get(key) {
            Some(Attribute::Text(text)) => Some(text),
            _ => None,
        }
    }

    /// The attribute `key` as an integer, if it is one.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.attributes.get(key) {
            Some(Attribute::Int(value)) => Some(*value),
            _ => None,
        }
    }
}

pub const SPAN_KIND_INTERNAL: i32 = 1;
pub const SPAN_KIND_SERVER: i32 = 2;
pub const SPAN_KIND_CLIENT: i32 = 3;

struct Received {
    spans: Mutex<Vec<ReceivedSpan>>,
    /// Export requests received (a test that expects none checks this).
    exports: Mutex<usize>,
    arrived: Notify,
}

/// The running receiver; stops when dropped.
pub struct OtlpReceiver {
    addr: SocketAddr,
    received: Arc<Received>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl OtlpReceiver {
    /// Listens on `127.0.0.1:0` on the current tokio runtime.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> OtlpReceiver {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(e) => panic!("otlp receiver: cannot listen on 127.0.0.1:0: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(e) => panic!("otlp receiver: no local address: {e}"),
        };
        let received = Arc::new(Received {
            spans: Mutex::new(Vec::new()),
            exports: Mutex::new(0),
            arrived: Notify::new(),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&received)));
        OtlpReceiver {
            addr,
            received,
            server,
        }
    }

    /// The base URL to configure as `otlp_endpoint` (`/v1/traces` is appended by the exporter).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received
            .spans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Export requests received so far.
    pub fn exports(&self) -> usize {
        *self
            .received
            .exports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the spans received satisfy `done`, up to `timeout`; returns them either way.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before looking, so an export between the look and the wait wakes it.
            let arrived = self.received.arrived.notified();
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.spans();
            }
        }
    }
}

async fn serve(listener: TcpListener, received: Arc<Received>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let received = Arc::clone(&received);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let received = Arc::clone(&received);
                async move { Ok::<_, std::convert::Infallible>(handle(&received, request).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    received: &Received,
    request: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let answer = |status: StatusCode, body: Vec<u8>| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-protobuf"),
        );
        response
    };
    if request.method() != http::Method::POST || request.uri().path() != "/v1/traces" {
        return answer(StatusCode::NOT_FOUND, Vec::new());
    }
    if request
        .headers()
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes() != b"identity")
    {
        return answer(StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
    }
    let Ok(body) = request.into_body().collect().await else {
        return answer(StatusCode::BAD_REQUEST, Vec::new());
    };
    let Ok(export) = ExportTraceServiceRequest::decode(body.to_bytes()) else {
        return answer(StatusCode::BAD_REQUEST, Vec::new());
    };
    let mut spans = Vec::new();
    for resource_spans in export.resource_spans {
        let service_name = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .map(|v| match attribute(v) {
                Attribute::Text(text) => text,
                _ => String::new(),
            })
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                spans.push(ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    status: span.status.map_or(0, |s| s.code),
                    attributes: span
                        .attributes
                        .iter()
                        .filter_map(|kv| Some((kv.key.clone(), attribute(kv.value.as_ref()?))))
                        .collect(),
                    service_name: service_name.clone(),
                });
            }
        }
    }
    received
        .spans
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(spans);
    *received.exports.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    received.arrived.notify_waiters();
    answer(
        StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

fn attribute(value: &AnyValue) -> Attribute {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => Attribute::Text(s.clone()),
        Some(any_value::Value::IntValue(i)) => Attribute::Int(*i),
        Some(any_value::Value::DoubleValue(f)) => Attribute::Float(*f),
        Some(any_value::Value::BoolValue(b)) => Attribute::Bool(*b),
        _ => Attribute::Other,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
