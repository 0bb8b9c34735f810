//! The egress itself: pooled HTTP clients, and the one `send` every outbound request goes
//! through (validate, check the grants, add the credential, send).
//!
//! reqwest sets the connect timeout per client, not per request, so there is one client per
//! distinct connect timeout the caller will use (with aigw's defaults, exactly one). Each keeps
//! its own connection pool; a lane (`lane.rs`) has a copy of each of its own.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

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
    by_timeout: Vec<(Duration, reqwest::Client)>,
}

impl Clients {
    fn new(timeouts: impl IntoIterator<Item = Duration>) -> Result<Clients, EgressError> {
        let by_timeout = timeouts
            .into_iter()
            .map(|timeout| Ok((timeout, client(timeout)?)))
            .collect::<Result<_, EgressError>>()?;
        Ok(Clients { by_timeout })
    }

    /// New clients (new pools) with the same settings, for a lane.
    pub(crate) fn rebuilt(&self) -> Result<Clients, EgressError> {
        Clients::new(self.by_timeout.iter().map(|(timeout, _)| *timeout))
    }

    fn get(&self, connect_timeout: Duration) -> Option<&reqwest::Client> {
        self.by_timeout
            .iter()
            .find(|(timeout, _)| *timeout == connect_timeout)
            .map(|(_, client)| client)
    }
}

/// One pooled client.
fn client(connect_timeout: Duration) -> Result<reqwest::Client, EgressError> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        // Upstream redirects would carry the credential to another host: refuse them.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| {
            EgressError::new(
                ErrorKind::Setup,
                format!(
                    "cannot build the upstream HTTP client: {}",
                    source_chain(&e)
                ),
            )
        })
}

impl Egress {
    /// One pooled client per distinct connect timeout in `connect_timeouts`.
    pub fn new(
        connect_timeouts: impl IntoIterator<Item = Duration>,
    ) -> Result<Egress, EgressError> {
        let mut timeouts: Vec<Duration> = connect_timeouts.into_iter().collect();
        timeouts.sort_unstable();
        timeouts.dedup();
        Ok(Egress {
            clients: Arc::new(Clients::new(timeouts)?),
        })
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
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| {
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
        // The one parse of the URL (or a copy of this thread's last parse of the same text):
        // reqwest takes the parsed form as it is.
        let mut parsed = crate::parsed::parse(&url).map_err(|e| invalid_url(&url, e))?;
        drop(url);
        let mut header_map = HeaderMap::with_capacity(headers.len() + 1);
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
        let mut outbound = reqwest::Request::new(method, parsed);
        *outbound.headers_mut() = header_map;
        *outbound.body_mut() = Some(body.into());
        *outbound.timeout_mut() = Some(options.timeout);
        match client.execute(outbound).await {
            Ok(response) => Ok(Response::new(response, options.timeout)),
            Err(e) => Err(send_error(
                e,
                &options,
                credential.and_then(Credential::query_param),
            )),
        }
    }

    fn client(
        clients: &Clients,
        connect_timeout: Duration,
    ) -> Result<&reqwest::Client, EgressError> {
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

/// Classifies an error of the HTTP client before the answer arrived (never an upstream
/// answer: any status, 5xx included, is a [`Response`]).
fn send_error(
    mut error: reqwest::Error,
    options: &SendOptions<'_>,
    secret_param: Option<&str>,
) -> EgressError {
    // reqwest names the URL in its message; the query may hold the secret.
    if let (Some(param), Some(url)) = (secret_param, error.url_mut()) {
        blank_query_param(url, param);
    }
    if error.is_timeout() {
        let message = if error.is_connect() {
            format!(
                "cannot connect within {} ms",
                options.connect_timeout.as_millis()
            )
        } else {
            format!("no answer within {} ms", options.timeout.as_millis())
        };
        return EgressError::new(ErrorKind::Timeout, message);
    }
    let (kind, what) = if error.is_connect() {
        (ErrorKind::Connect, "cannot connect")
    } else if error.is_builder() {
        (ErrorKind::InvalidRequest, "invalid upstream request")
    } else {
        (ErrorKind::Connect, "connection failed before an answer")
    };
    // reqwest names the URL in its message: the logs keep it, the client does not see it.
    let detail = format!("{what}: {}", source_chain(&error));
    let host = error.url().and_then(|u| u.host_str()).map(str::to_owned);
    let error = error.without_url();
    let message = without_host(format!("{what}: {}", source_chain(&error)), host.as_deref());
    EgressError::new(kind, message).with_detail(detail)
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
