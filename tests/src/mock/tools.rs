//! Mock tool APIs: one real HTTP server per API ([`ToolApi`]) on an ephemeral port, serving the
//! API's real paths, bodies, statuses and headers (`docs/wire-formats.md`, the tool APIs), and
//! checking the key where the real API takes it. The request's **arguments and key pick the
//! behaviour**, so one mock serves every test:
//!
//! | selector | behaviour |
//! |---|---|
//! | key missing (keyed APIs) | the API's own answer: Finnhub 401 `Please use an API key.`, Alpha Vantage HTTP 200 `Error Message` about `apikey`, NewsAPI 401 `apiKeyMissing`, GNews 401, Brave 422 `VALIDATION` on the header, Tavily 401 |
//! | key `bad` | the API's bad-key answer: Finnhub 401 `Invalid API key`, Alpha Vantage HTTP 200 `Error Message`, NewsAPI 401 `apiKeyInvalid`, GNews 401, **Brave 422 `SUBSCRIPTION_TOKEN_INVALID`**, Tavily 401 |
//! | key `limited` | the API's rate limit: Finnhub 429, Alpha Vantage HTTP 200 `Note` (5 calls per minute), NewsAPI 429 `rateLimited`, GNews 429, Brave 429 `RATE_LIMITED` with `X-RateLimit-Remaining: 0, 1959`, Tavily 429 |
//! | key `spent` | the plan's quota: Alpha Vantage HTTP 200 `Information` (25 requests per day), NewsAPI 429 `apiKeyExhausted`, **GNews 403**, Brave 429 with the monthly window at 0, **Tavily 432**; Finnhub: as `limited` |
//! | any other key | accepted (or, after [`ToolMock::with_api_key`], only that key; others are `bad`) |
//! | city `Nowhere` (Open-Meteo geocoding) | `{"generationtime_ms": …}` with **no `results` key** |
//! | city `Berlin`, `Paris`, `New York` | their real coordinates; any other city: coordinates derived from its name |
//! | city `RATE` / latitude `4.29` | 429 `Minutely API request limit exceeded…` (no `Retry-After`) |
//! | city `RATE-DAILY` | 429 `Daily API request limit exceeded…` |
//! | an unknown `current`/`daily` variable, `forecast_days` > 16 | Open-Meteo's 400 `{"error":true,"reason":…}` |
//! | symbol `ZZZZ` | Finnhub's all-zero quote (`t: 0`); Alpha Vantage `{"Global Quote":{}}` |
//! | symbol `RATE` | Finnhub 429; Alpha Vantage HTTP 200 `Information` (daily limit) |
//! | query / city / symbol `ERROR` | 500 (SearXNG, Brave, Tavily, NewsAPI, GNews, Open-Meteo, Finnhub) |
//! | query / city / symbol `HTML` | 200 `text/html` (a bot wall), whatever the API |
//! | query `Nothing` | an empty result in the API's shape: NewsAPI `articles: []`, GNews `articles: []`, SearXNG `results: []`, Brave without `web`, Tavily `results: []` |
//! | query `RATE` | the API's rate limit (as key `limited`; SearXNG's bot limiter 429) |
//! | query `ENGINES-DOWN` (SearXNG) | `results: []` with `unresponsive_engines` |
//! | query `FORBIDDEN` (SearXNG), or any `format` but `json` | 403 HTML: JSON disabled on the instance |
//! | any other query | 10 deterministic results (Brave's descriptions with `<strong>` markup), trimmed to the request's count |
//!
//! Paths: Open-Meteo `GET /v1/search` (geocoding) and `GET /v1/forecast` on one server (point
//! both endpoints at it); Finnhub `GET /api/v1/quote`; Alpha Vantage `GET /query`; NewsAPI `GET
//! /v2/top-headlines`, `/v2/everything`; GNews `GET /api/v4/top-headlines`, `/api/v4/search`;
//! SearXNG `GET /search` (and `/`); Brave `GET /res/v1/web/search`; Tavily `POST /search`.
//! Anything else is a 404. Every request is recorded ([`ToolMock::requests`]) with its decoded
//! query, so a test can prove the key arrived where the API wants it.

mod news;
mod search;
mod stocks;
mod weather;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Which tool API the mock speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolApi {
    /// Open-Meteo's geocoding and forecast APIs (both on this server), no key.
    OpenMeteo,
    /// Finnhub, key in `X-Finnhub-Token` (or the `token` query parameter).
    Finnhub,
    /// Alpha Vantage, key in the `apikey` query parameter.
    AlphaVantage,
    /// NewsAPI.org, key in `X-Api-Key` (or `apiKey`, or `Authorization: Bearer`).
    NewsApi,
    /// GNews, key in the `apikey` query parameter.
    GNews,
    /// A self-hosted SearXNG with JSON enabled, no key.
    SearXng,
    /// Brave Search, key in `X-Subscription-Token`.
    Brave,
    /// Tavily, key as `Authorization: Bearer`.
    Tavily,
}

impl ToolApi {
    /// Every API, for the `mock-upstream` binary's argument list.
    pub const ALL: [ToolApi; 8] = [
        ToolApi::OpenMeteo,
        ToolApi::Finnhub,
        ToolApi::AlphaVantage,
        ToolApi::NewsApi,
        ToolApi::GNews,
        ToolApi::SearXng,
        ToolApi::Brave,
        ToolApi::Tavily,
    ];

    /// The name the `mock-upstream` binary takes (`--tool-api finnhub`), which is also the
    /// plugin's upstream name (`open-meteo`, `finnhub`, `alphavantage`, …).
    pub fn name(self) -> &'static str {
        match self {
            ToolApi::OpenMeteo => "open-meteo",
            ToolApi::Finnhub => "finnhub",
            ToolApi::AlphaVantage => "alphavantage",
            ToolApi::NewsApi => "newsapi",
            ToolApi::GNews => "gnews",
            ToolApi::SearXng => "searxng",
            ToolApi::Brave => "brave",
            ToolApi::Tavily => "tavily",
        }
    }

    pub fn from_name(name: &str) -> Option<ToolApi> {
        ToolApi::ALL.into_iter().find(|api| api.name() == name)
    }
}

/// One request the mock received.
#[derive(Clone, Debug)]
pub struct ToolRequest {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// Header names are lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl ToolRequest {
    /// The first value of a header, by name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a handler sees of a request.
pub(crate) struct Call<'a> {
    pub request: &'a ToolRequest,
    /// The key presented where the API takes it, after [`ToolMock::with_api_key`]'s check:
    /// `None` when missing, `Some("bad")` when wrong.
    pub key: Option<String>,
}

impl Call<'_> {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.request.param(name)
    }

    /// The account state the key stands for.
    pub fn account(&self) -> Account {
        match self.key.as_deref() {
            None => Account::Missing,
            Some("bad") => Account::Bad,
            Some("limited") => Account::Limited,
            Some("spent") => Account::Spent,
            Some(_) => Account::Good,
        }
    }
}

/// The account behind a request's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Account {
    Missing,
    Bad,
    Limited,
    Spent,
    Good,
}

struct State {
    api: ToolApi,
    requests: Mutex<Vec<ToolRequest>>,
    api_key: RwLock<Option<String>>,
}

/// A running mock tool API. The server stops when this is dropped.
pub struct ToolMock {
    addr: SocketAddr,
    state: Arc<State>,
    server: JoinHandle<()>,
}

impl ToolMock {
    /// Starts the mock of `api` on `127.0.0.1:0` on the current tokio runtime.
    ///
    /// # Panics
    /// When no local port can be bound: a test cannot go on without its upstream.
    pub async fn start(api: ToolApi) -> ToolMock {
        match ToolMock::bind("127.0.0.1:0", api).await {
            Ok(mock) => mock,
            Err(e) => panic!("mock tool API: cannot listen on 127.0.0.1:0: {e}"),
        }
    }

    /// Starts the mock of `api` on `listen`.
    pub async fn bind(listen: &str, api: ToolApi) -> std::io::Result<ToolMock> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            api,
            requests: Mutex::new(Vec::new()),
            api_key: RwLock::new(None),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&state)));
        Ok(ToolMock {
            addr,
            state,
            server,
        })
    }

    /// Accepts only `key` from now on: any other key gets the API's bad-key answer.
    pub fn with_api_key(self, key: &str) -> ToolMock {
        if let Ok(mut slot) = self.state.api_key.write() {
            *slot = Some(key.to_owned());
        }
        self
    }

    pub fn api(&self) -> ToolApi {
        self.state.api
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: what each of the upstream's endpoints is pointed at.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<ToolRequest> {
        match self.state.requests.lock() {
            Ok(requests) => requests.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl Drop for ToolMock {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let state = Arc::clone(&state);
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(handle(&state, request).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

async fn handle(state: &State, request: Request<Incoming>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return text(StatusCode::BAD_REQUEST, "text/plain", "body cut short");
    };
    let recorded = ToolRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parse_query(parts.uri.query().unwrap_or("")),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    match state.requests.lock() {
        Ok(mut requests) => requests.push(recorded.clone()),
        Err(poisoned) => poisoned.into_inner().push(recorded.clone()),
    }
    let presented = presented_key(state.api, &recorded);
    let expected = state.api_key.read().ok().and_then(|key| key.clone());
    let key = match (presented, expected) {
        (Some(presented), Some(expected)) if presented != expected => Some("bad".to_owned()),
        (presented, _) => presented,
    };
    let call = Call {
        request: &recorded,
        key,
    };
    match state.api {
        ToolApi::OpenMeteo => weather::open_meteo(&call),
        ToolApi::Finnhub => stocks::finnhub(&call),
        ToolApi::AlphaVantage => stocks::alphavantage(&call),
        ToolApi::NewsApi => news::newsapi(&call),
        ToolApi::GNews => news::gnews(&call),
        ToolApi::SearXng => search::searxng(&call),
        ToolApi::Brave => search::brave(&call),
        ToolApi::Tavily => search::tavily(&call),
    }
}

/// The key a request presents where `api` takes it (an empty one counts as missing).
fn presented_key(api: ToolApi, request: &ToolRequest) -> Option<String> {
    let header = |name: &str| request.header(name).map(str::to_owned);
    let bearer = || {
        request
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned)
    };
    let param = |name: &str| request.param(name).map(str::to_owned);
    let key = match api {
        ToolApi::OpenMeteo | ToolApi::SearXng => None,
        ToolApi::Finnhub => header("x-finnhub-token").or_else(|| param("token")),
        ToolApi::AlphaVantage => param("apikey"),
        ToolApi::NewsApi => header("x-api-key")
            .or_else(|| param("apiKey"))
            .or_else(bearer),
        ToolApi::GNews => param("apikey"),
        ToolApi::Brave => header("x-subscription-token"),
        ToolApi::Tavily => bearer(),
    };
    key.filter(|key| !key.trim().is_empty())
}

/// `a=1&b=x%20y` as pairs, `+` as a space.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JSON answer.
pub(crate) fn json(status: StatusCode, body: &Value) -> Response<Body> {
    text(status, "application/json; charset=utf-8", &body.to_string())
}

/// An answer of this media type.
pub(crate) fn text(status: StatusCode, media: &'static str, body: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())).boxed_unsync());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    response
}

/// The HTML page a bot wall answers with (HTTP 200).
pub(crate) fn bot_wall() -> Response<Body> {
    text(
        StatusCode::OK,
        "text/html; charset=utf-8",
        "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body><p>Checking your browser before accessing the site.</p></body></html>",
    )
}

/// The 404 of a path the API does not serve.
pub(crate) fn not_found(request: &ToolRequest) -> Response<Body> {
    text(
        StatusCode::NOT_FOUND,
        "text/plain",
        &format!("404 page not found: {} {}", request.method, request.path),
    )
}

/// A number in `0..range` derived from `text`, so answers differ per argument but never per run.
pub(crate) fn derived(text: &str, range: u64) -> u64 {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    hash % range.max(1)
}
