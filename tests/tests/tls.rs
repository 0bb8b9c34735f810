//! HTTPS through the real binary: `[server] tls` serves HTTP/2 by ALPN (HTTP/1.1 on request),
//! refuses plain HTTP, keeps the `Host` check, closes a client that never finishes its handshake
//! at the header-read limit, picks up a renewed certificate for new connections without a
//! restart and keeps the old one when the new files are broken; a pair that cannot be served
//! stops `aigw check` and `aigw serve` at the key that names it; the official openai SDK talks to
//! it trusting the CA.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aigw_tests::gateway::{self, Gateway, aigw};
use aigw_tests::python::Check;
use aigw_tests::setup::Upstreams;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Far longer than anything here should take: a wait that reaches it has failed.
const BOUND: Duration = Duration::from_secs(15);

const MODELS: &str = "[models.fast]\ntargets = [\"local/ok\"]\n";

/// A test CA that issues the gateway's certificates (clients trust the CA, as they would a
/// real one, not the leaf).
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate the CA issued for loopback, and its key, as PEM.
struct Leaf {
    cert: String,
    key: String,
    der: Vec<u8>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "aigw test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `localhost` and 127.0.0.1, named `name`, with serial `serial`.
    fn leaf(&self, name: &str, serial: u64) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// The `[server] tls` line for `cert.pem`/`key.pem` beside the config.
fn tls_section(extra: &str) -> String {
    format!("[server]\ntls = {{ cert = \"cert.pem\", key = \"key.pem\"{extra} }}\n")
}

/// A gateway serving HTTPS with `leaf`, configured with `server` (a `[server]` section).
async fn https_gateway(upstreams: &Upstreams, ca: &Ca, leaf: &Leaf, server: &str) -> Gateway {
    upstreams
        .gateway_builder()
        .file("cert.pem", leaf.cert.as_str())
        .file("key.pem", leaf.key.as_str())
        .https(&ca.pem())
        .start(&upstreams.config(&format!("{MODELS}{server}")))
        .await
}

/// Replaces `name` beside the config as a renewal tool would: written aside, renamed into place.
fn replace(gateway: &Gateway, name: &str, contents: &str) {
    let dir = gateway.config_path().parent().unwrap();
    let incoming = dir.join(format!("{name}.incoming"));
    std::fs::write(&incoming, contents).unwrap();
    std::fs::rename(&incoming, dir.join(name)).unwrap();
}

/// The certificate a new connection is served (a fresh client: no pooled connection).
async fn served_certificate(gateway: &Gateway, ca: &Ca) -> Vec<u8> {
    let client = gateway::client(Some(ca.pem().as_bytes())).unwrap();
    let response = client.get(gateway.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let info = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .expect("the client records TLS info");
    info.peer_certificate()
        .expect("a peer certificate")
        .to_vec()
}

/// Waits (bounded) until new connections are served `leaf`.
async fn until_served(gateway: &Gateway, ca: &Ca, leaf: &Leaf) {
    let wanted = &leaf.der;
    let started = Instant::now();
    while served_certificate(gateway, ca).await != *wanted {
        assert!(
            started.elapsed() < BOUND,
            "the new certificate was not served within {BOUND:?}\n{}",
            gateway.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn https_negotiates_h2_serves_http1_on_request_refuses_plain_http_and_checks_host() {
    let upstreams = Upstreams::start().await;
    let ca = Ca::new();
    let leaf = ca.leaf("gateway one", 1);
    let gateway = https_gateway(&upstreams, &ca, &leaf, &tls_section("")).await;
    assert!(gateway.url("/").starts_with("https://127.0.0.1:"));

    let response = gateway
        .chat(&json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(response.version(), reqwest::Version::HTTP_2, "ALPN h2");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: hi"
    );
    assert_eq!(served_certificate(&gateway, &ca).await, leaf.der);

    let http1 = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .http1_only()
        .timeout(BOUND)
        .build()
        .unwrap();
    let response = http1.get(gateway.url("/healthz")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status(), 200);
    // The DNS-rebinding check still looks at `Host` under TLS.
    let response = http1
        .get(gateway.url("/v1/models"))
        .header("host", "rebound.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 421);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::builder().timeout(BOUND).build().unwrap();
    let url = format!("http://{}/healthz", gateway.addr());
    let refused = plain.get(&url).send().await;
    assert!(refused.is_err(), "plain HTTP was answered: {refused:?}");
    // An untrusted client (no CA) fails its handshake.
    let refused = plain.get(gateway.url("/healthz")).send().await;
    assert!(refused.is_err(), "a client not trusting the CA connected");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_is_closed_at_the_header_limit() {
    let upstreams = Upstreams::start().await;
    let ca = Ca::new();
    let leaf = ca.leaf("gateway", 1);
    let server = format!("{}header_read_timeout_ms = 400\n", tls_section(""));
    let gateway = https_gateway(&upstreams, &ca, &leaf, &server).await;
    // One connects and sends nothing; one sends the start of a ClientHello record and stalls.
    let mut silent = TcpStream::connect(gateway.addr()).await.unwrap();
    let mut partial = TcpStream::connect(gateway.addr()).await.unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    let started = Instant::now();
    for stream in [&mut silent, &mut partial] {
        let closed = tokio::time::timeout(BOUND, async {
            let mut buf = [0; 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a stalled handshake held its connection");
    }
    let waited = started.elapsed();
    // 400 ms, checked every 100 ms: closed between the limit and well before the bound.
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
    // Others are still served meanwhile and after.
    assert_eq!(served_certificate(&gateway, &ca).await, leaf.der);
}

#[tokio::test]
async fn a_renewed_certificate_serves_new_connections_and_a_broken_one_keeps_the_old() {
    let upstreams = Upstreams::start().await;
    let ca = Ca::new();
    let first = ca.leaf("first", 1);
    let gateway = https_gateway(
        &upstreams,
        &ca,
        &first,
        &tls_section(", reload_interval_ms = 50"),
    )
    .await;
    assert_eq!(served_certificate(&gateway, &ca).await, first.der);
    // A kept-alive connection opened before the renewal.
    let kept = gateway::client(Some(ca.pem().as_bytes())).unwrap();
    let response = kept.get(gateway.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);

    let second = ca.leaf("second", 2);
    replace(&gateway, "key.pem", &second.key);
    replace(&gateway, "cert.pem", &second.cert);
    until_served(&gateway, &ca, &second).await;
    assert!(
        gateway
            .wait_for_log(BOUND, |l| l.contains("TLS certificate reloaded"))
            .await
            .is_some()
    );
    let response = kept.get(gateway.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200, "open connections go on");

    // A broken certificate file: refused with a warning, the second pair still served.
    replace(
        &gateway,
        "cert.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64!\n",
    );
    let warning = gateway
        .wait_for_log(BOUND, |l| l.contains("TLS certificate change refused"))
        .await
        .unwrap_or_else(|| panic!("no warning\n{}", gateway.stderr()));
    assert!(warning.contains("cert.pem"), "{warning}");
    assert_eq!(served_certificate(&gateway, &ca).await, second.der);
    // A certificate whose key is another's: refused too.
    let third = ca.leaf("third", 3);
    replace(&gateway, "cert.pem", &third.cert);
    gateway
        .wait_for_log_lines(BOUND, 2, |l| l.contains("TLS certificate change refused"))
        .await;
    assert!(gateway.stderr().contains("does not match"));
    assert_eq!(served_certificate(&gateway, &ca).await, second.der);
    // Once the key is there too, the third pair is served.
    replace(&gateway, "key.pem", &third.key);
    until_served(&gateway, &ca, &third).await;
    assert!(
        !gateway.stderr().contains("PRIVATE KEY"),
        "a key was logged"
    );
}

/// Writes a config with `tls` pointing at `cert` and `key` (contents) in a fresh directory.
fn config_dir(cert: &str, key: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), key).unwrap();
    let config = dir.path().join("aigw.toml");
    std::fs::write(&config, format!("# HTTPS\n{}", tls_section(""))).unwrap();
    (dir, config)
}

fn stderr_of(args: &[&str]) -> (bool, String) {
    let output = aigw(args);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_and_serve_refuse_a_pair_that_cannot_be_served_naming_the_key() {
    let ca = Ca::new();
    let leaf = ca.leaf("gateway", 1);
    let other = ca.leaf("other", 2);
    let cases = [
        (
            leaf.cert.as_str(),
            other.key.as_str(),
            "server.tls.key",
            "does not match",
        ),
        (
            "junk\n",
            leaf.key.as_str(),
            "server.tls.cert",
            "no PEM certificate",
        ),
    ];
    for (cert, key, blamed, says) in cases {
        let (_dir, config) = config_dir(cert, key);
        let config = config.to_str().unwrap();
        for args in [
            vec!["check", "--config", config],
            vec!["serve", "--config", config, "--listen", "127.0.0.1:0"],
        ] {
            let (ok, stderr) = stderr_of(&args);
            assert!(!ok, "{args:?} accepted it");
            assert!(
                stderr.contains(&format!("{config}:3:")) && stderr.contains(&format!("`{blamed}`")),
                "{args:?}: {stderr}"
            );
            assert!(stderr.contains(says), "{args:?}: {stderr}");
            assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
        }
    }
    // The good pair passes the check, which says it serves TLS.
    let (_dir, config) = config_dir(&leaf.cert, &leaf.key);
    let output = aigw(["check", "--config", config.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("tls: cert "), "{stdout}");
}

#[tokio::test]
async fn the_openai_python_sdk_talks_https_trusting_the_ca() {
    let upstreams = Upstreams::start().await;
    let ca = Ca::new();
    let leaf = ca.leaf("gateway", 1);
    let gateway = https_gateway(&upstreams, &ca, &leaf, &tls_section("")).await;
    let ca_file = gateway.config_path().parent().unwrap().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    Check {
        script: "tls_check.py",
        imports: "openai, httpx",
        env: &[
            ("AIGW_MODEL", "fast"),
            ("AIGW_CA_FILE", ca_file.to_str().unwrap()),
        ],
        expect: &[
            "ok https non-stream",
            "ok https stream",
            "ok untrusted certificate refused",
        ],
    }
    .run(&gateway)
    .await;
}
