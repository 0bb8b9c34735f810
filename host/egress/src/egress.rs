//! The egress itself: pooled HTTP clients, and the one `send` every outbound request goes
//! through (validate, check the grants, add the credential, send).
//!
//! The connect timeout is the connector's, set per client, not per request, so there is one
//! client per distinct connect timeout the caller will use (with aigw's defaults, exactly one).
//! Each keeps its own connection pool; a lane (`lane.rs`) has a copy of each of its own.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue, PROXY_AUTHORIZATION};
use http_body_util::Full;

use crate::client::{Client, Transport};
use crate::credential::Credential;
use crate::error::{EgressError, ErrorKind, source_chain, without_host};
use crate::grants::Grants;
use crate::response::Response;

/// An outbound request, as a caller (a plugin, through the host) asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Who sends and within what limits: the parts of a send that are not the request.
#[derive(Debug, Clone, Copy)]
pub struct SendOptions<'a> {
    /// The origins this caller may reach; anything else is denied before a connection opens.
    pub grants: &'a Grants,
    /// Added only when the request goes to one of the credential's own origins.
    pub credential: Option<&'a Credential>,
    /// Picks the pooled client: must be one the egress was built with.
    pub connect_timeout: Duration,
    /// Bounds the whole exchange, body included: connecting, the answer, and every chunk.
    pub timeout: Duration,
}

/// The pooled upstream clients. Cheap to clone (the pools are shared).
#[derive(Debug, Clone)]
pub struct Egress {
    clients: Arc<Clients>,
}

/// One pooled client per connect timeout.
#[derive(Debug)]
pub(crate) struct Clients {
    /// Sorted by connect timeout: a handful at most, so a scan beats hashing.
    by_timeout: Vec<(Duration, Client)>,
    transport: Transport,
}

impl Clients {
    fn new(timeouts: impl IntoIterator<Item = Duration>, transport: Transport) -> Clients {
        let by_timeout = timeouts
            .into_iter()
            .map(|timeout| (timeout, Client::new(timeout, &transport)))
            .collect();
        Clients {
            by_timeout,
            transport,
        }
    }

    /// New clients (new pools) with the same settings, for a lane.
    pub(crate) fn rebuilt(&self) -> Clients {
        Clients::new(
            self.by_timeout.iter().map(|(timeout, _)| *timeout),
            self.transport.clone(),
        )
    }

    fn get(&self, connect_timeout: Duration) -> Option<&Client> {
        self.by_timeout
            .iter()
            .find(|(timeout, _)| *timeout == connect_timeout)
            .map(|(_, client)| client)
    }
}

impl Egress {
    /// One pooled client per distinct connect timeout in `connect_timeouts`, reaching upstreams
    /// as [`Transport::from_env`] says (the Mozilla roots; the environment's proxies).
    pub fn new(
        connect_timeouts: impl IntoIterator<Item = Duration>,
    ) -> Result<Egress, EgressError> {
        Ok(Egress::with_transport(
            connect_timeouts,
            Transport::from_env()?,
        ))
    }

    /// As [`Egress::new`], reaching upstreams through `transport`.
    pub fn with_transport(
        connect_timeouts: impl IntoIterator<Item = Duration>,
        transport: Transport,
    ) -> Egress {
        let mut timeouts: Vec<Duration> = connect_timeouts.into_iter().collect();
        timeouts.sort_unstable();
        timeouts.dedup();
        Egress {
            clients: Arc::new(Clients::new(timeouts, transport)),
        }
    }

    /// The connect timeouts this egress has a client for, shortest first.
    pub fn connect_timeouts(&self) -> impl Iterator<Item = Duration> {
        self.clients.by_timeout.iter().map(|(timeout, _)| *timeout)
    }

    /// Sends `request` and waits for the answer's status and headers.
    ///
    /// In order: the method must be one, the URL's origin must be granted (an empty [`Grants`]
    /// denies everything), the URL must parse; then the credential is added if the URL is on
    /// one of its origins, and the request is sent. Redirects come back as answers, unfollowed.
    /// A `connect_timeout` the egress was not built with fails with [`ErrorKind::Setup`]
    /// rather than quietly using another client's limit.
    pub async fn send(
        &self,
        request: Request,
        options: SendOptions<'_>,
    ) -> Result<Response, EgressError> {
        let Request {
            method,
            url,
            headers,
            body,
        } = request;
        // Standard methods map to constants: no allocation.
        let method = http::Method::from_bytes(method.as_bytes()).map_err(|_| {
            EgressError::new(
                ErrorKind::InvalidRequest,
                format!("invalid request method {method:?}"),
            )
        })?;
        if !options.grants.allows(&url) {
            return Err(refused(&url));
        }
        let clients = crate::lane::clients(&self.clients);
        let client = Egress::client(&clients, options.connect_timeout)?;
        let credential = options.credential.filter(|c| c.goes_to(&url));
        // The one parse of the URL (or a copy of this thread's last parse of the same text),
        // where the credential may go in its query.
        let mut parsed = crate::parsed::parse(&url).map_err(|e| invalid_url(&url, e))?;
        drop(url);
        // Room for the credential's header and `accept`.
        let mut header_map = HeaderMap::with_capacity(headers.len() + 2);
        for (name, value) in headers {
            let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                EgressError::new(
                    ErrorKind::InvalidRequest,
                    format!("invalid request header name {name:?}"),
                )
            })?;
            // Takes the string's buffer as it is: no copy of the value.
            let header_value = HeaderValue::try_from(value).map_err(|_| {
                EgressError::new(
                    ErrorKind::InvalidRequest,
                    format!("invalid value for request header {name:?}"),
                )
            })?;
            header_map.append(header_name, header_value);
        }
        if let Some(credential) = credential {
            credential.place(&mut parsed, &mut header_map);
        }
        // reqwest sent this when the egress was built on it, and upstreams have seen it since.
        if !header_map.contains_key(ACCEPT) {
            header_map.insert(ACCEPT, HeaderValue::from_static("*/*"));
        }
        // A parsed URL is a valid URI: its serialisation moves into the URI unparsed again
        // but for the URI's own (cheap) split.
        let uri =
            http::Uri::from_maybe_shared(Bytes::from(String::from(parsed))).map_err(invalid_uri)?;
        if let Some(auth) = client.transport.proxy_authorization(&uri) {
            header_map.insert(PROXY_AUTHORIZATION, auth);
        }
        let mut outbound = http::Request::new(Full::new(Bytes::from(body)));
        *outbound.method_mut() = method;
        *outbound.uri_mut() = uri.clone();
        *outbound.headers_mut() = header_map;
        // One timer bounds the whole exchange: it goes on into the answer's body.
        let mut deadline = Box::pin(tokio::time::sleep(options.timeout));
        let mut answering = client.request(outbound);
        let answered = poll_fn(|cx| {
            if let Poll::Ready(answered) = Pin::new(&mut answering).poll(cx) {
                return Poll::Ready(Some(answered));
            }
            deadline.as_mut().poll(cx).map(|()| None)
        })
        .await;
        match answered {
            Some(Ok(response)) => Ok(Response::new(response, deadline, options.timeout)),
            Some(Err(e)) => Err(send_error(
                &e,
                &uri,
                &options,
                credential.and_then(Credential::query_param),
            )),
            None => Err(EgressError::new(
                ErrorKind::Timeout,
                format!("no answer within {} ms", options.timeout.as_millis()),
            )),
        }
    }

    fn client(clients: &Clients, connect_timeout: Duration) -> Result<&Client, EgressError> {
        clients.get(connect_timeout).ok_or_else(|| {
            EgressError::new(
                ErrorKind::Setup,
                format!(
                    "no upstream client was built for a connect timeout of {} ms",
                    connect_timeout.as_millis()
                ),
            )
        })
    }
}

/// Why a URL the grants did not allow is refused: off the hot path, so it may parse the URL to
/// name its origin (a URL that does not parse was malformed before it was ungranted).
fn refused(url: &str) -> EgressError {
    match url::Url::parse(url) {
        Err(e) => invalid_url(url, e),
        Ok(parsed) if !matches!(parsed.scheme(), "http" | "https") => EgressError::new(
            ErrorKind::InvalidRequest,
            format!("invalid request URL {url:?}: not http or https"),
        ),
        Ok(parsed) => EgressError::new(
            ErrorKind::Denied,
            format!(
                "origin {} is not granted to this caller",
                parsed.origin().ascii_serialization()
            ),
        ),
    }
}

fn invalid_url(url: &str, error: url::ParseError) -> EgressError {
    EgressError::new(
        ErrorKind::InvalidRequest,
        format!("invalid request URL {url:?}: {error}"),
    )
}

/// A URL that parsed but is no URI (it cannot happen for `http` and `https` URLs, which the
/// grants require: kept an error rather than a panic). The URL is not named: it may hold the
/// credential by now.
fn invalid_uri(error: http::uri::InvalidUri) -> EgressError {
    EgressError::new(
        ErrorKind::InvalidRequest,
        format!("invalid request URL: {error}"),
    )
}

/// Classifies an error of the HTTP client before the answer arrived (never an upstream
/// answer: any status, 5xx included, is a [`Response`]).
fn send_error(
    error: &hyper_util::client::legacy::Error,
    uri: &http::Uri,
    options: &SendOptions<'_>,
    secret_param: Option<&str>,
) -> EgressError {
    if error.is_connect() && timed_out(error) {
        return EgressError::new(
            ErrorKind::Timeout,
            format!(
                "cannot connect within {} ms",
                options.connect_timeout.as_millis()
            ),
        );
    }
    let what = if error.is_connect() {
        "cannot connect"
    } else {
        "connection failed before an answer"
    };
    let chain = source_chain(error);
    // The logs name the URL (its secret blanked); the client is told neither it nor the host.
    let mut url = uri.to_string();
    if let Some(param) = secret_param
        && let Ok(mut parsed) = url::Url::parse(&url)
    {
        blank_query_param(&mut parsed, param);
        url = parsed.into();
    }
    let detail = format!("{what} ({url}): {chain}");
    let message = without_host(format!("{what}: {chain}"), uri.host());
    EgressError::new(ErrorKind::Connect, message).with_detail(detail)
}

/// Whether a connect error is the connector's timeout (an I/O `TimedOut` in its causes).
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = error.source();
    }
    false
}

fn blank_query_param(url: &mut url::Url, param: &str) {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(name, value)| {
            let value = if name == param {
                "***".to_owned()
            } else {
                value.into_owned()
            };
            (name.into_owned(), value)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
}
