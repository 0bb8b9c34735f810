//! `Egress::send` against real loopback sockets: grants, credentials, redirects, and how each
//! way an exchange can fail is classified.

mod upstream;

use std::sync::Arc;
use std::time::Duration;

use aigw_egress::{
    Body, Credential, Egress, EgressError, ErrorKind, Grants, Origin, Placement, Request, Response,
    Secret, SendOptions,
};
use tokio::sync::Notify;
use upstream::{Untouched, Upstream, refusing_origin};

const CONNECT: Duration = Duration::from_secs(5);
const WHOLE: Duration = Duration::from_secs(10);
/// Short enough to keep the suite fast, long enough that a loopback answer is never this slow.
const SHORT: Duration = Duration::from_millis(200);

fn egress() -> Egress {
    match Egress::new([CONNECT]) {
        Ok(egress) => egress,
        Err(e) => panic!("{e}"),
    }
}

fn grants(origins: &[&str]) -> Grants {
    Grants::new(origins.iter().map(|url| match Origin::of(url) {
        Ok(origin) => origin,
        Err(e) => panic!("{e}"),
    }))
}

fn credential(placement: Placement, base_url: &str) -> Credential {
    match Credential::new(Secret::new("sk-test".into()), placement, base_url, &[]) {
        Ok(credential) => credential,
        Err(e) => panic!("{e}"),
    }
}

fn bearer() -> Placement {
    Placement::Header {
        name: "authorization".into(),
        prefix: "Bearer ".into(),
    }
}

fn get(url: String) -> Request {
    Request {
        method: "GET".into(),
        url,
        headers: Vec::new(),
        body: Vec::new(),
    }
}

fn options<'a>(grants: &'a Grants, credential: Option<&'a Credential>) -> SendOptions<'a> {
    SendOptions {
        grants,
        credential,
        connect_timeout: CONNECT,
        timeout: WHOLE,
    }
}

async fn answered(result: Result<Response, EgressError>) -> Response {
    match result {
        Ok(response) => response,
        Err(e) => panic!("expected an answer, got {:?}: {e}", e.kind()),
    }
}

fn failed(result: Result<Response, EgressError>) -> EgressError {
    match result {
        Ok(response) => panic!("expected a failure, got status {}", response.status),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_header_credential_goes_to_its_own_origin_and_no_other() {
    let egress = egress();
    let mut own = Upstream::ok("from own").await;
    let mut other = Upstream::ok("from other").await;
    let grants = grants(&[&own.origin, &other.origin]);
    let credential = credential(bearer(), &format!("{}/openai/v1", own.origin));

    let request = Request {
        method: "POST".into(),
        url: format!("{}/openai/v1/chat/completions", own.origin),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            // A caller's own attempt at the header is replaced, never sent alongside.
            ("Authorization".into(), "Bearer guessed".into()),
        ],
        body: b"{\"model\":\"m\"}".to_vec(),
    };
    let response = answered(
        egress
            .send(request, options(&grants, Some(&credential)))
            .await,
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.body.collect(1 << 20).await,
        Ok(b"from own".to_vec())
    );
    let seen = own.next_request().await;
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, "/openai/v1/chat/completions");
    assert_eq!(seen.header("content-type"), Some("application/json"));
    let authorizations: Vec<&str> = seen
        .headers
        .iter()
        .filter(|(name, _)| name == "authorization")
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(authorizations, ["Bearer sk-test"]);
    assert_eq!(seen.body, b"{\"model\":\"m\"}");

    let url = format!("{}/openai/v1/chat/completions", other.origin);
    let response = answered(
        egress
            .send(get(url), options(&grants, Some(&credential)))
            .await,
    )
    .await;
    assert_eq!(
        response.body.collect(1 << 20).await,
        Ok(b"from other".to_vec())
    );
    let seen = other.next_request().await;
    assert_eq!(seen.header("authorization"), None);
}

#[tokio::test]
async fn a_query_credential_goes_to_its_own_origin_and_no_other() {
    let egress = egress();
    let mut own = Upstream::ok("").await;
    let mut other = Upstream::ok("").await;
    let grants = grants(&[&own.origin, &other.origin]);
    let credential = credential(Placement::Query("key".into()), &own.origin);

    let url = format!(
        "{}/v1beta/models/m:streamGenerateContent?alt=sse",
        own.origin
    );
    answered(
        egress
            .send(get(url), options(&grants, Some(&credential)))
            .await,
    )
    .await;
    let seen = own.next_request().await;
    assert_eq!(
        seen.target,
        "/v1beta/models/m:streamGenerateContent?alt=sse&key=sk-test"
    );

    let url = format!("{}/v1beta/models?alt=sse", other.origin);
    answered(
        egress
            .send(get(url), options(&grants, Some(&credential)))
            .await,
    )
    .await;
    let seen = other.next_request().await;
    assert_eq!(seen.target, "/v1beta/models?alt=sse");
}

#[tokio::test]
async fn an_origin_outside_the_grants_is_denied_before_any_connection() {
    let egress = egress();
    let mut granted = Upstream::ok("ok").await;
    let ungranted = Untouched::new();
    let grants = grants(&[&granted.origin]);
    let credential = credential(bearer(), &ungranted.origin);

    let url = format!("{}/v1/models", ungranted.origin);
    let error = failed(
        egress
            .send(get(url), options(&grants, Some(&credential)))
            .await,
    );
    assert_eq!(error.kind(), ErrorKind::Denied);
    assert!(error.message().contains(&ungranted.origin), "{error}");
    assert!(!ungranted.was_connected());

    // The same egress and grants do reach the granted origin.
    let url = format!("{}/v1/models", granted.origin);
    let response = answered(egress.send(get(url), options(&grants, None)).await).await;
    assert_eq!(response.status, 200);
    assert_eq!(granted.next_request().await.target, "/v1/models");
}

#[tokio::test]
async fn no_grants_deny_every_request() {
    let egress = egress();
    let upstream = Untouched::new();
    let none = Grants::none();
    for url in [
        format!("{}/v1/models", upstream.origin),
        upstream.origin.clone(),
        "https://api.groq.com/openai/v1/models".into(),
    ] {
        let error = failed(egress.send(get(url.clone()), options(&none, None)).await);
        assert_eq!(error.kind(), ErrorKind::Denied, "{url}: {error}");
    }
    assert!(!upstream.was_connected());
}

#[tokio::test]
async fn a_redirect_comes_back_as_an_answer_and_is_not_followed() {
    let egress = egress();
    let elsewhere = Untouched::new();
    let mut redirecting = Upstream::answering(format!(
        "HTTP/1.1 302 Found\r\nlocation: {}/stolen\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        elsewhere.origin
    ))
    .await;
    // Both granted: only the redirect policy stands between the credential and `elsewhere`.
    let grants = grants(&[&redirecting.origin, &elsewhere.origin]);
    let credential = Credential::new(
        Secret::new("sk-test".into()),
        bearer(),
        &redirecting.origin,
        std::slice::from_ref(&elsewhere.origin),
    );
    let credential = match credential {
        Ok(credential) => credential,
        Err(e) => panic!("{e}"),
    };

    let url = format!("{}/v1/chat/completions", redirecting.origin);
    let response = answered(
        egress
            .send(get(url), options(&grants, Some(&credential)))
            .await,
    )
    .await;
    assert_eq!(response.status, 302);
    let location = format!("{}/stolen", elsewhere.origin);
    assert_eq!(
        response.headers.get("Location").as_deref(),
        Some(location.as_str())
    );
    assert_eq!(
        redirecting.next_request().await.target,
        "/v1/chat/completions"
    );
    assert!(!elsewhere.was_connected());
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_failure_that_does_not_name_the_secret() {
    let egress = egress();
    let origin = refusing_origin();
    let grants = grants(&[&origin]);
    let credential = credential(Placement::Query("key".into()), &origin);

    let url = format!("{origin}/v1/models?alt=sse");
    let error = failed(
        egress
            .send(get(url), options(&grants, Some(&credential)))
            .await,
    );
    assert_eq!(error.kind(), ErrorKind::Connect, "{error}");
    assert!(error.message().starts_with("cannot connect: "), "{error}");
    assert!(!error.message().contains("sk-test"), "{error}");
    // The client-facing message names no upstream address; the operator's detail does.
    let address = origin.trim_start_matches("http://");
    let host = address.split(':').next().unwrap_or(address);
    assert!(!error.message().contains(host), "{error}");
    assert!(error.message().contains("onnection refused"), "{error}");
    assert!(error.detail().contains(&origin), "{}", error.detail());
    assert!(!error.detail().contains("sk-test"), "{}", error.detail());
}

#[tokio::test]
async fn an_upstream_silent_past_the_timeout_is_a_timeout() {
    let egress = egress();
    let mut silent = Upstream::silent().await;
    let grants = grants(&[&silent.origin]);
    let options = SendOptions {
        timeout: SHORT,
        ..options(&grants, None)
    };

    let url = format!("{}/v1/chat/completions", silent.origin);
    let error = failed(egress.send(get(url), options).await);
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_eq!(error.message(), "no answer within 200 ms");
    // It did reach the upstream: the time ran out waiting for the answer.
    assert_eq!(silent.next_request().await.target, "/v1/chat/completions");
}

#[tokio::test]
async fn a_body_arrives_in_the_pieces_the_upstream_sends() {
    let egress = egress();
    let go = Arc::new(Notify::new());
    let upstream = Upstream::in_two_pieces("data: one\n\n", "data: two\n\n", Arc::clone(&go)).await;
    let grants = grants(&[&upstream.origin]);

    let url = format!("{}/v1/chat/completions", upstream.origin);
    let mut response = answered(egress.send(get(url), options(&grants, None)).await).await;
    assert_eq!(response.status, 200);
    // The second piece is sent only after the first is read: this cannot be a buffered body.
    let first = response.body.chunk().await;
    assert_eq!(first, Ok(Some(bytes::Bytes::from_static(b"data: one\n\n"))));
    go.notify_one();
    let mut rest = Vec::new();
    loop {
        match response.body.chunk().await {
            Ok(Some(piece)) => rest.extend_from_slice(&piece),
            Ok(None) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(rest, b"data: two\n\n");
}

#[tokio::test]
async fn a_body_cut_short_is_a_broken_body() {
    let egress = egress();
    let upstream = Upstream::answering(
        "HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\nonly part",
    )
    .await;
    let grants = grants(&[&upstream.origin]);

    let url = format!("{}/v1/chat/completions", upstream.origin);
    let response = answered(egress.send(get(url), options(&grants, None)).await).await;
    assert_eq!(response.status, 200);
    let error = match response.body.collect(1 << 20).await {
        Ok(body) => panic!("a cut body was read whole: {body:?}"),
        Err(e) => e,
    };
    assert_eq!(error.kind(), ErrorKind::BodyBroken, "{error}");
    assert!(
        error.message().starts_with("upstream body broke off: "),
        "{error}"
    );
}

#[tokio::test]
async fn a_body_stalled_past_the_timeout_is_a_timeout() {
    let egress = egress();
    let upstream = Upstream::start(|mut stream| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let head = "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nfirst part";
        let _ = stream.write_all(head.as_bytes()).await;
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    })
    .await;
    let grants = grants(&[&upstream.origin]);
    let options = SendOptions {
        timeout: SHORT,
        ..options(&grants, None)
    };

    let url = format!("{}/v1/chat/completions", upstream.origin);
    let response = answered(egress.send(get(url), options).await).await;
    let error = match response.body.collect(1 << 20).await {
        Ok(body) => panic!("a stalled body was read whole: {body:?}"),
        Err(e) => e,
    };
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_eq!(error.message(), "no complete answer within 200 ms");
}

#[tokio::test]
async fn a_body_past_the_callers_limit_is_too_large_declared_or_not() {
    let egress = egress();
    // Declared: refused before a byte of the body is read.
    let declared = Upstream::answering(
        "HTTP/1.1 200 OK\r\ncontent-length: 300000000\r\nconnection: close\r\n\r\nstart",
    )
    .await;
    // Undeclared (chunked): refused once the pieces read pass the limit.
    let mut chunked =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    for _ in 0..8 {
        chunked.extend_from_slice(b"400\r\n");
        chunked.extend_from_slice(&[b'x'; 0x400]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let chunked = Upstream::answering(chunked).await;
    for upstream in [&declared, &chunked] {
        let grants = grants(&[&upstream.origin]);
        let url = format!("{}/v1/chat/completions", upstream.origin);
        let response = answered(egress.send(get(url), options(&grants, None)).await).await;
        let error = match response.body.collect(4096).await {
            Ok(body) => panic!("{} bytes read past a 4096-byte limit", body.len()),
            Err(e) => e,
        };
        assert_eq!(error.kind(), ErrorKind::TooLarge, "{error}");
        assert_eq!(error.message(), "answer larger than 4096 bytes");
    }
    // Within the limit, the same chunked answer is read whole.
    let grants = grants(&[&chunked.origin]);
    let url = format!("{}/v1/chat/completions", chunked.origin);
    let response = answered(egress.send(get(url), options(&grants, None)).await).await;
    assert_eq!(response.body.collect(8192).await.map(|b| b.len()), Ok(8192));
}

#[tokio::test]
async fn answer_headers_are_read_lossily_and_in_order() {
    let egress = egress();
    let mut answer = b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\nx-odd: caf".to_vec();
    answer.extend_from_slice(
        b"\xff\r\nvary: a\r\nvary: b\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    );
    let upstream = Upstream::answering(answer).await;
    let grants = grants(&[&upstream.origin]);

    let url = format!("{}/v1/chat/completions", upstream.origin);
    let response = answered(egress.send(get(url), options(&grants, None)).await).await;
    assert_eq!(response.status, 429);
    assert_eq!(response.headers.get("Retry-After").as_deref(), Some("7"));
    assert_eq!(
        response.headers.get("x-odd").as_deref(),
        Some("caf\u{fffd}")
    );
    let pairs = response.headers.to_pairs();
    let vary: Vec<&str> = pairs
        .iter()
        .filter(|(name, _)| name == "vary")
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(vary, ["a", "b"]);
    assert_eq!(response.headers.len(), pairs.len());
}

#[tokio::test]
async fn malformed_requests_are_refused_before_any_connection() {
    let egress = egress();
    let upstream = Untouched::new();
    let grants = grants(&[&upstream.origin]);
    let url = format!("{}/v1/models", upstream.origin);
    let cases = [
        // Checked before the grants: a malformed request is the caller's fault first.
        Request {
            method: "GE T".into(),
            ..get("https://ungranted.example/".into())
        },
        get("not a url".into()),
        get("http://127.0.0.1:99999/v1".into()),
        Request {
            headers: vec![("bad name".into(), "x".into())],
            ..get(url.clone())
        },
        Request {
            headers: vec![("x-fine".into(), "line\nbreak".into())],
            ..get(url.clone())
        },
    ];
    for request in cases {
        let described = format!("{request:?}");
        let error = failed(egress.send(request, options(&grants, None)).await);
        assert_eq!(
            error.kind(),
            ErrorKind::InvalidRequest,
            "{described}: {error}"
        );
    }
    assert!(!upstream.was_connected());
}

#[tokio::test]
async fn a_connect_timeout_the_egress_was_not_built_with_is_refused() {
    let egress = egress();
    let upstream = Untouched::new();
    let grants = grants(&[&upstream.origin]);
    let options = SendOptions {
        connect_timeout: CONNECT + Duration::from_millis(1),
        ..options(&grants, None)
    };
    let error = failed(egress.send(get(upstream.origin.clone()), options).await);
    assert_eq!(error.kind(), ErrorKind::Setup, "{error}");
    assert!(!upstream.was_connected());
    assert_eq!(egress.connect_timeouts().collect::<Vec<_>>(), [CONNECT]);
}

#[tokio::test]
async fn the_egress_and_its_futures_can_move_between_threads() {
    fn shared<T: Send + Sync>() {}
    fn movable<T: Send>(_: &T) {}
    shared::<Egress>();
    shared::<Grants>();
    shared::<Credential>();
    shared::<EgressError>();
    // The server runs a send and a body's reads inside spawned tasks.
    let egress = egress();
    let grants = Grants::none();
    movable(&egress.send(get("http://127.0.0.1:9/".into()), options(&grants, None)));
    let _ = |body: &mut Body| movable(&body.chunk());
    let _ = |body: Body| movable(&body.collect(1));
}
