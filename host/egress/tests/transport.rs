//! How the egress reaches upstreams, against real loopback sockets: `https` with a root it was
//! told to trust (HTTP/2 when the upstream offers it), a root it does not trust, and proxies
//! (a `CONNECT` tunnel for `https`, the whole URL for plain `http`, `NO_PROXY` going direct).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)] // the shared upstreams: this file uses two of them
mod upstream;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use aigw_egress::{
    Egress, EgressError, ErrorKind, Grants, Origin, Request, Response, SendOptions, Transport,
};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use upstream::{Untouched, Upstream};

const CONNECT: Duration = Duration::from_secs(5);
const WHOLE: Duration = Duration::from_secs(10);

/// A root, and a certificate for `localhost` it signed.
struct Pki {
    root_pem: String,
    leaf: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let mut root = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    root.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let root_key = rcgen::KeyPair::generate().unwrap();
    let root = rcgen::CertifiedIssuer::self_signed(root, root_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &root)
        .unwrap();
    Pki {
        root_pem: root.pem(),
        leaf: leaf.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

/// An `https` upstream on loopback that answers every request with its HTTP version and
/// target, offering `alpn` in the handshake. Returns its port.
async fn tls_upstream(pki: &Pki, alpn: &[&[u8]]) -> u16 {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![pki.leaf.clone()], pki.key.clone_key())
    .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|request: http::Request<_>| async move {
                    let text = format!("{:?} {}", request.version(), request.uri());
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    port
}

/// What a proxy was asked: each connection's request head.
struct Proxy {
    url: String,
    heads: mpsc::UnboundedReceiver<String>,
}

impl Proxy {
    /// An `http://` proxy on loopback: `CONNECT host:port` opens a tunnel to that port on
    /// loopback; any other request is answered by the proxy itself, `200` with `via proxy`.
    async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let (record, heads) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let head = read_head(&mut client).await;
                    let _ = record.send(head.clone());
                    let target = head.split(' ').nth(1).unwrap_or_default().to_owned();
                    if head.starts_with("CONNECT ") {
                        let port = target.rsplit(':').next().unwrap_or_default();
                        let mut upstream = TcpStream::connect(format!("127.0.0.1:{port}"))
                            .await
                            .unwrap();
                        client
                            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                            .await
                            .unwrap();
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    } else {
                        let _ = client
                            .write_all(
                                b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\nconnection: close\r\n\r\nvia proxy",
                            )
                            .await;
                    }
                });
            }
        });
        Proxy { url, heads }
    }

    async fn next_head(&mut self) -> String {
        tokio::time::timeout(WHOLE, self.heads.recv())
            .await
            .expect("the proxy was asked nothing")
            .expect("the proxy stopped")
    }
}

/// A request head up to its blank line, lower-cased past the request line.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    match head.split_once("\r\n") {
        Some((line, rest)) => format!("{line}\r\n{}", rest.to_ascii_lowercase()),
        None => head,
    }
}

fn grants(origins: &[&str]) -> Grants {
    Grants::new(origins.iter().map(|url| Origin::of(url).unwrap()))
}

fn get(url: &str) -> Request {
    Request {
        method: "GET".into(),
        url: url.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

async fn send(egress: &Egress, url: &str) -> Result<Response, EgressError> {
    let grants = grants(&[url]);
    let options = SendOptions {
        grants: &grants,
        credential: None,
        connect_timeout: CONNECT,
        timeout: WHOLE,
    };
    egress.send(get(url), options).await
}

async fn text(result: Result<Response, EgressError>) -> (u16, String) {
    let response = match result {
        Ok(response) => response,
        Err(e) => panic!("expected an answer, got {:?}: {}", e.kind(), e.detail()),
    };
    let status = response.status;
    let body = response.body.collect(1 << 16).await.unwrap();
    (status, String::from_utf8(body).unwrap())
}

fn trusting(pki: &Pki, http: Option<&str>, https: Option<&str>, no_proxy: &str) -> Egress {
    let transport = Transport::with(pki.root_pem.as_bytes(), http, https, no_proxy).unwrap();
    Egress::with_transport([CONNECT], transport)
}

#[tokio::test]
async fn an_https_upstream_of_a_trusted_root_answers_over_http2_when_it_offers_it() {
    let pki = pki();
    let egress = trusting(&pki, None, None, "");
    let both = tls_upstream(&pki, &[b"h2", b"http/1.1"]).await;
    let url = format!("https://localhost:{both}/v1/models");
    assert_eq!(
        text(send(&egress, &url).await).await,
        (200, format!("HTTP/2.0 {url}"))
    );
    let one = tls_upstream(&pki, &[b"http/1.1"]).await;
    assert_eq!(
        text(send(&egress, &format!("https://localhost:{one}/v1/models")).await).await,
        (200, "HTTP/1.1 /v1/models".to_owned())
    );
}

#[tokio::test]
async fn an_https_upstream_of_an_untrusted_root_is_a_connect_failure() {
    let pki = pki();
    let port = tls_upstream(&pki, &[b"http/1.1"]).await;
    // The compiled-in roots only: the test root is not among them.
    let egress = Egress::new([CONNECT]).unwrap();
    let error = send(&egress, &format!("https://localhost:{port}/v1/models"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
    assert!(error.message().contains("UnknownIssuer"), "{error}");
    // Another root trusted instead does not help either.
    let egress = trusting(&self::pki(), None, None, "");
    let error = send(&egress, &format!("https://localhost:{port}/v1/models"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
}

#[tokio::test]
async fn an_https_upstream_is_reached_through_a_tunnel_of_the_proxy_with_its_credentials() {
    let pki = pki();
    let port = tls_upstream(&pki, &[b"h2", b"http/1.1"]).await;
    let mut proxy = Proxy::start().await;
    let through = proxy.url.replace("http://", "http://user:secret@");
    let egress = trusting(&pki, None, Some(&through), "");
    let url = format!("https://localhost:{port}/v1/models");
    assert_eq!(
        text(send(&egress, &url).await).await,
        (200, format!("HTTP/2.0 {url}"))
    );
    let head = proxy.next_head().await;
    assert!(
        head.starts_with(&format!("CONNECT localhost:{port} HTTP/1.1\r\n")),
        "{head}"
    );
    // base64("user:secret")
    assert!(
        head.contains("proxy-authorization: basic dxnlcjpzzwnyzxq=\r\n"),
        "{head}"
    );
}

#[tokio::test]
async fn a_plain_upstream_through_the_proxy_is_sent_its_whole_url() {
    let mut proxy = Proxy::start().await;
    let through = proxy.url.replace("http://", "http://user:secret@");
    let transport = Transport::with(&[], Some(&through), None, "").unwrap();
    let egress = Egress::with_transport([CONNECT], transport);
    // Nothing listens there: only the proxy is reached.
    let url = "http://upstream.invalid:8080/v1/models?x=1";
    assert_eq!(
        text(send(&egress, url).await).await,
        (200, "via proxy".to_owned())
    );
    let head = proxy.next_head().await;
    assert!(
        head.starts_with(&format!("GET {url} HTTP/1.1\r\n")),
        "{head}"
    );
    assert!(
        head.contains("proxy-authorization: basic dxnlcjpzzwnyzxq=\r\n"),
        "{head}"
    );
    assert!(head.contains("host: upstream.invalid:8080\r\n"), "{head}");
}

#[tokio::test]
async fn hosts_the_no_proxy_list_names_go_direct() {
    let untouched = Untouched::new();
    let proxy = untouched.origin.clone();
    let transport = Transport::with(&[], Some(&proxy), Some(&proxy), "127.0.0.1").unwrap();
    let egress = Egress::with_transport([CONNECT], transport);
    let upstream = Upstream::ok("{}").await;
    let url = format!("{}/v1/models", upstream.origin);
    assert_eq!(
        text(send(&egress, &url).await).await,
        (200, "{}".to_owned())
    );
    assert!(!untouched.was_connected());
}

#[tokio::test]
async fn a_proxy_that_is_not_http_is_a_connect_failure_naming_it() {
    let transport = Transport::with(&[], Some("socks5://127.0.0.1:9"), None, "").unwrap();
    let egress = Egress::with_transport([CONNECT], transport);
    let error = send(&egress, "http://upstream.invalid/v1/models")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
    assert!(
        error.message().contains("is not an http:// proxy"),
        "{error}"
    );
}

#[test]
fn roots_that_hold_no_certificate_are_refused() {
    let error = Transport::with(b"not a certificate", None, None, "").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Setup);
    assert!(error.message().contains("no PEM certificate"), "{error}");
    let truncated = b"-----BEGIN CERTIFICATE-----\nMIIB\n";
    let error = Transport::with(truncated, None, None, "").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Setup, "{error}");
}

#[tokio::test]
async fn a_tls_handshake_unanswered_past_the_connect_timeout_is_a_connect_timeout() {
    // Accepts TCP and then says nothing: the handshake never completes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let short = Duration::from_millis(200);
    let egress = Egress::with_transport([short], Transport::from_env().unwrap());
    let url = format!("https://localhost:{port}/v1/models");
    let grants = grants(&[&url]);
    let options = SendOptions {
        grants: &grants,
        credential: None,
        connect_timeout: short,
        timeout: WHOLE,
    };
    let error = egress.send(get(&url), options).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_eq!(error.message(), "cannot connect within 200 ms");
}
