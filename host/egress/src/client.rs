//! The pooled HTTP client under the egress: hyper-util's connection pool over TCP, rustls for
//! `https` (HTTP/2 when the upstream offers it), and the proxies the environment names.
//!
//! It is hyper-util's client used directly rather than through reqwest: reqwest's layers
//! (redirect and retry services, its own URL type parsed twice per request, per-request option
//! plumbing) cost ~11 % of a JSON request's instructions, for features the egress refuses or
//! does itself (redirects are refused; grants, credentials and timeouts are the egress's).

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tower_service::Service as _;

use crate::error::{EgressError, ErrorKind};

type BoxError = Box<dyn StdError + Send + Sync>;

/// How the egress reaches upstreams: the roots it trusts for `https`, and the proxies it goes
/// through. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    tls: Arc<rustls::ClientConfig>,
    /// `None` when no proxy applies to any upstream (the usual case): nothing is matched per
    /// connection or per request then.
    proxies: Option<Arc<Matcher>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("proxies", &self.proxies)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// The Mozilla roots (webpki-roots, compiled in: no dependence on the host's store), and
    /// the proxies of `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (either case),
    /// read as curl reads them.
    pub fn from_env() -> Result<Transport, EgressError> {
        let any_proxy = PROXY_VARIABLES
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
        Transport::new(&[], Matcher::from_env(), any_proxy)
    }

    /// The Mozilla roots and `extra_roots` (PEM certificates, e.g. a private CA's), and the
    /// given proxies: `http` for plain upstreams, `https` for TLS ones, `no_proxy` a
    /// comma-separated list of hosts, domains and networks that go direct (`NO_PROXY`'s form).
    pub fn with(
        extra_roots: &[u8],
        http: Option<&str>,
        https: Option<&str>,
        no_proxy: &str,
    ) -> Result<Transport, EgressError> {
        let mut proxies = Matcher::builder().no(no_proxy.to_owned());
        if let Some(http) = http {
            proxies = proxies.http(http.to_owned());
        }
        if let Some(https) = https {
            proxies = proxies.https(https.to_owned());
        }
        Transport::new(
            extra_roots,
            proxies.build(),
            http.is_some() || https.is_some(),
        )
    }

    /// `any_proxy`: whether a proxy was named at all (else nothing is matched per connection
    /// or per request).
    fn new(
        extra_roots: &[u8],
        proxies: Matcher,
        any_proxy: bool,
    ) -> Result<Transport, EgressError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if !extra_roots.is_empty() {
            let mut read = 0;
            for cert in CertificateDer::pem_slice_iter(extra_roots) {
                let cert =
                    cert.map_err(|e| setup(format!("cannot read a root certificate: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| setup(format!("cannot trust a root certificate: {e}")))?;
                read += 1;
            }
            // Text with no PEM certificate in it is a mistake, not "trust nothing more".
            if read == 0 {
                return Err(setup(
                    "the root certificates given hold no PEM certificate".to_owned(),
                ));
            }
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(format!("cannot set up TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Transport {
            tls: Arc::new(tls),
            proxies: any_proxy.then(|| Arc::new(proxies)),
        })
    }

    /// The `proxy-authorization` a plain `http` request to `uri` carries: such a request goes
    /// to the proxy itself (a tunnel carries it on its `CONNECT` instead).
    pub(crate) fn proxy_authorization(&self, uri: &Uri) -> Option<http::HeaderValue> {
        let proxies = self.proxies.as_ref()?;
        if uri.scheme() != Some(&http::uri::Scheme::HTTP) {
            return None;
        }
        proxies.intercept(uri)?.basic_auth().cloned()
    }
}

/// The variables a proxy is named in (`NO_PROXY` only takes hosts away from one).
const PROXY_VARIABLES: [&str; 6] = [
    "ALL_PROXY",
    "all_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
];

fn setup(message: String) -> EgressError {
    EgressError::new(ErrorKind::Setup, message)
}

/// One pooled client: connections are kept per origin (and per proxy) and reused.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    pool: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
    pub(crate) transport: Transport,
}

impl Client {
    pub(crate) fn new(connect_timeout: Duration, transport: &Transport) -> Client {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        // The scheme is the TLS layer's to check, above this one.
        http.enforce_http(false);
        let connector = Connector {
            direct: HttpsConnector::from((http.clone(), Arc::clone(&transport.tls))),
            http,
            transport: transport.clone(),
            connect_timeout,
        };
        let pool = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Client {
            pool,
            transport: transport.clone(),
        }
    }

    pub(crate) fn request(
        &self,
        request: http::Request<Full<Bytes>>,
    ) -> hyper_util::client::legacy::ResponseFuture {
        self.pool.request(request)
    }
}

/// Opens a connection to an upstream within the connect timeout: directly, through a `CONNECT`
/// tunnel of an `http://` proxy (for `https` upstreams), or to an `http://` proxy that takes the
/// whole URL (for plain ones), as the transport's proxies say.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    direct: HttpsConnector<HttpConnector>,
    http: HttpConnector,
    transport: Transport,
    connect_timeout: Duration,
}

type Connecting = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Both inner connectors are always ready (HttpConnector's is a no-op).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Connecting {
        let connector = self.clone();
        Box::pin(async move {
            // The whole connection: TCP, a proxy's tunnel, and the TLS handshake.
            match tokio::time::timeout(connector.connect_timeout, connector.connect(dst)).await {
                Ok(connected) => connected,
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timeout").into()),
            }
        })
    }
}

impl Connector {
    async fn connect(mut self, dst: Uri) -> Result<Conn, BoxError> {
        let Some(proxy) = self
            .transport
            .proxies
            .as_ref()
            .and_then(|proxies| proxies.intercept(&dst))
        else {
            return Ok(Conn::new(self.direct.call(dst).await?, false));
        };
        if proxy.uri().scheme() != Some(&http::uri::Scheme::HTTP) {
            return Err(io::Error::other(format!(
                "proxy {} is not an http:// proxy, the only kind aigw goes through",
                proxy.uri()
            ))
            .into());
        }
        if dst.scheme() == Some(&http::uri::Scheme::HTTP) {
            // The proxy takes the whole URL (absolute form) on a connection of its own.
            return Ok(Conn::new(
                self.direct.call(proxy.uri().clone()).await?,
                true,
            ));
        }
        let mut tunnel = Tunnel::new(proxy.uri().clone(), self.http.clone());
        if let Some(auth) = proxy.basic_auth() {
            tunnel = tunnel.with_auth(auth.clone());
        }
        let mut through = HttpsConnector::from((tunnel, Arc::clone(&self.transport.tls)));
        Ok(Conn::new(through.call(dst).await?, false))
    }
}

/// A connection to an upstream, or to the proxy that forwards plain requests to it (which is
/// then sent each request's whole URL).
#[derive(Debug)]
pub(crate) struct Conn {
    io: MaybeHttpsStream<TokioIo<TcpStream>>,
    to_proxy: bool,
}

impl Conn {
    fn new(io: MaybeHttpsStream<TokioIo<TcpStream>>, to_proxy: bool) -> Conn {
        Conn { io, to_proxy }
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.to_proxy)
    }
}

impl Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
