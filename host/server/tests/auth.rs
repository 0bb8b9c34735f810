//! Authentication and grants in-process ([`Service::handle`] with [`Auth`] over a temporary
//! store): which credential each path needs (health open, `/admin` the admin key, the rest a
//! virtual key), the 401/403 shapes and their headers (CORS included, so a browser can read
//! them), a key's changes applying at once, memory namespaces bound to keys on every memory
//! family (conversations, items, the store, session chat), and a flood of wrong keys that never
//! reaches the store.

// `Service::handle`'s future, spans' `Instrumented` wrappers included, lays out deeper than
// the default limit of 128 (the library sets the same).
#![recursion_limit = "256"]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use aigw_access::Directory;
use aigw_egress::Secret;
use aigw_memory::{Store, StoreOptions};
use aigw_router::{HealthRegistry, HealthSettings};
use aigw_server::{Auth, Gateway, MAX_REMEMBERED_TARGETS, ServerOptions, Service};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

const ADMIN: &str = "admin-key-0123456789abcdef";
const ORIGIN: &str = "https://app.example.com";

struct Fixture {
    service: Service,
    store: Arc<Store>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(StoreOptions::new(dir.path().join("aigw.db")))
            .await
            .unwrap(),
    );
    let health = Arc::new(HealthRegistry::new(
        HealthSettings::default(),
        MAX_REMEMBERED_TARGETS,
    ));
    let options = ServerOptions {
        cors_origins: vec![ORIGIN.to_owned()],
        allowed_hosts: Some(vec!["*".to_owned()]),
        ..ServerOptions::default()
    };
    let gateway = Gateway::new([], BTreeMap::new(), health, &options)
        .unwrap()
        .with_memory(Arc::clone(&store));
    let directory = Directory::load(Arc::clone(&store)).await.unwrap();
    let listening: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let service = Service::with_options(gateway, &options, listening)
        .with_auth(Auth::new(&Secret::new(ADMIN.to_owned()), directory));
    Fixture {
        service,
        store,
        _dir: dir,
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }
}

async fn call(
    f: &Fixture,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    let response = f
        .service
        .handle(request.body(Full::new(body)).unwrap())
        .await;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {bytes:?}"))
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// Makes a key through the admin API; returns (id, secret).
async fn make_key(f: &Fixture, spec: Value) -> (String, String) {
    let auth = bearer(ADMIN);
    let made = call(
        f,
        Method::POST,
        "/admin/keys",
        &[("authorization", &auth)],
        Some(spec),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    (
        made.body["id"].as_str().unwrap().to_owned(),
        made.body["key"].as_str().unwrap().to_owned(),
    )
}

fn refused(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.code(), Some(code), "{}", answer.body);
    assert_eq!(answer.body["error"]["type"], "invalid_request_error");
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(
            answer.headers.get("www-authenticate").unwrap(),
            "Bearer",
            "{}",
            answer.body
        );
    }
}

#[tokio::test]
async fn each_path_needs_its_credential() {
    let f = fixture().await;
    let (_, secret) = make_key(&f, json!({})).await;
    let (key, admin) = (bearer(&secret), bearer(ADMIN));

    // Health checkers need nothing.
    for path in ["/healthz", "/readyz"] {
        let answer = call(&f, Method::GET, path, &[], None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
    }
    // Client surfaces: nothing, a wrong key or the admin key is 401; a virtual key passes.
    for path in ["/v1/models", "/v1/conversations/conv_x", "/v1/nothing-here"] {
        refused(
            &call(&f, Method::GET, path, &[], None).await,
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        );
        let wrong = call(
            &f,
            Method::GET,
            path,
            &[("authorization", "Bearer sk-aigw-not-a-key-at-all-WXYZ")],
            None,
        )
        .await;
        refused(&wrong, StatusCode::UNAUTHORIZED, "invalid_api_key");
        let message = wrong.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("sk-aigw-…WXYZ"), "{message}");
        assert!(!message.contains("not-a-key"), "only the hint: {message}");
        let with_admin = call(&f, Method::GET, path, &[("authorization", &admin)], None).await;
        refused(&with_admin, StatusCode::UNAUTHORIZED, "invalid_api_key");
        assert!(
            with_admin.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("admin key"),
            "{}",
            with_admin.body
        );
        let served = call(&f, Method::GET, path, &[("authorization", &key)], None).await;
        assert_ne!(served.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_ne!(served.status, StatusCode::FORBIDDEN, "{path}");
    }
    // The other headers clients send keys in.
    for header in ["x-api-key", "api-key"] {
        let answer = call(&f, Method::GET, "/v1/models", &[(header, &secret)], None).await;
        assert_eq!(answer.status, StatusCode::OK, "{header}: {}", answer.body);
    }
    // /admin (any path under it): the admin key; a virtual key is 403, nothing 401.
    for path in ["/admin/targets", "/admin/keys", "/admin/usage", "/admin"] {
        refused(
            &call(&f, Method::GET, path, &[], None).await,
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
        );
        refused(
            &call(&f, Method::GET, path, &[("authorization", &key)], None).await,
            StatusCode::FORBIDDEN,
            "admin_key_required",
        );
        let answer = call(&f, Method::GET, path, &[("authorization", &admin)], None).await;
        assert_ne!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_ne!(answer.status, StatusCode::FORBIDDEN, "{path}");
    }
    // Not a prefix match on the name: `/administrator` is a client path.
    refused(
        &call(
            &f,
            Method::GET,
            "/administrator",
            &[("authorization", &admin)],
            None,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
    );
}

#[tokio::test]
async fn a_refusal_carries_cors_headers_and_preflights_need_no_key() {
    let f = fixture().await;
    let answer = call(&f, Method::GET, "/v1/models", &[("origin", ORIGIN)], None).await;
    refused(&answer, StatusCode::UNAUTHORIZED, "invalid_api_key");
    assert_eq!(
        answer.headers.get("access-control-allow-origin").unwrap(),
        ORIGIN
    );
    let preflight = call(
        &f,
        Method::OPTIONS,
        "/v1/chat/completions",
        &[
            ("origin", ORIGIN),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ],
        None,
    )
    .await;
    assert!(preflight.status.is_success(), "{}", preflight.status);
}

#[tokio::test]
async fn changes_through_the_admin_api_apply_at_once() {
    let f = fixture().await;
    let admin = bearer(ADMIN);
    let (id, secret) = make_key(&f, json!({"name": "ci"})).await;
    let models = |secret: String| {
        let f = &f;
        async move {
            let auth = bearer(&secret);
            call(
                f,
                Method::GET,
                "/v1/models",
                &[("authorization", &auth)],
                None,
            )
            .await
            .status
        }
    };
    assert_eq!(models(secret.clone()).await, StatusCode::OK);

    // Records show the hint, never the secret.
    let listed = call(
        &f,
        Method::GET,
        "/admin/keys",
        &[("authorization", &admin)],
        None,
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["object"], "list");
    assert_eq!(listed.body["data"][0]["id"], id.as_str());
    assert!(!listed.body.to_string().contains(&secret[8..]));
    let got = call(
        &f,
        Method::GET,
        &format!("/admin/keys/{id}"),
        &[("authorization", &admin)],
        None,
    )
    .await;
    assert_eq!(got.body["object"], "aigw.key");
    assert_eq!(got.body["name"], "ci");
    assert!(got.body.get("key").is_none());
    assert!(!got.body.to_string().contains(&secret[8..]));

    let rotated = call(
        &f,
        Method::POST,
        &format!("/admin/keys/{id}/rotate"),
        &[("authorization", &admin)],
        Some(json!({})),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new_secret = rotated.body["key"].as_str().unwrap().to_owned();
    assert_eq!(models(secret).await, StatusCode::UNAUTHORIZED);
    assert_eq!(models(new_secret.clone()).await, StatusCode::OK);

    let revoked = call(
        &f,
        Method::DELETE,
        &format!("/admin/keys/{id}"),
        &[("authorization", &admin)],
        None,
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.body["revoked_at"].is_i64(), "{}", revoked.body);
    assert_eq!(models(new_secret).await, StatusCode::UNAUTHORIZED);

    // Bad bodies name the field; unknown ids are 404.
    let bad = call(
        &f,
        Method::POST,
        "/admin/keys",
        &[("authorization", &admin)],
        Some(json!({"rpm": 5})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["error"]["param"], "rpm");
    let bad = call(
        &f,
        Method::PATCH,
        &format!("/admin/keys/{id}"),
        &[("authorization", &admin)],
        Some(json!({"models": "fast"})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["error"]["param"], "models");
    let missing = call(
        &f,
        Method::GET,
        "/admin/keys/key_000000000000000000000000",
        &[("authorization", &admin)],
        None,
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), Some("key_not_found"));
}

#[tokio::test]
async fn memory_namespaces_are_bound_to_keys_on_every_family() {
    let f = fixture().await;
    let (own_id, own) = make_key(&f, json!({})).await;
    let (_, shared) = make_key(&f, json!({"namespaces": ["team-a", "team-a:*"]})).await;
    let (own, shared) = (bearer(&own), bearer(&shared));

    // Conversations: made in the key's default namespace; another one named is 403.
    let made = call(
        &f,
        Method::POST,
        "/v1/conversations",
        &[("authorization", &own)],
        Some(json!({"items": [{"type": "message", "role": "user", "content": "hi"}]})),
    )
    .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    let conversation = made.body["id"].as_str().unwrap().to_owned();
    let denied = [
        (
            Method::POST,
            "/v1/conversations".to_owned(),
            Some(json!({})),
        ),
        (
            Method::GET,
            format!("/v1/conversations/{conversation}"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/conversations/{conversation}/items"),
            None,
        ),
        (
            Method::POST,
            "/v1/conversations/search".to_owned(),
            Some(json!({"query": "hi"})),
        ),
        (
            Method::PUT,
            "/v1/store/items".to_owned(),
            Some(json!({"namespace": ["a"], "key": "k", "value": {"v": 1}})),
        ),
        (
            Method::POST,
            "/v1/store/items/search".to_owned(),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/v1/store/namespaces".to_owned(),
            Some(json!({})),
        ),
    ];
    for (method, path, body) in denied {
        let answer = call(
            &f,
            method.clone(),
            &path,
            &[("authorization", &own), ("x-aigw-namespace", "default")],
            body,
        )
        .await;
        refused(&answer, StatusCode::FORBIDDEN, "namespace_not_allowed");
        assert_eq!(answer.body["error"]["param"], "x-aigw-namespace");
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("aigw key limit"),
            "{}",
            answer.body
        );
    }
    // Its own namespace, named, is its own.
    let own_ns = format!("key:{own_id}");
    let answer = call(
        &f,
        Method::GET,
        &format!("/v1/conversations/{conversation}"),
        &[("authorization", &own), ("x-aigw-namespace", &own_ns)],
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    // Another key does not see it (its default is another namespace): 404, as for any id of
    // another namespace.
    let answer = call(
        &f,
        Method::GET,
        &format!("/v1/conversations/{conversation}"),
        &[("authorization", &shared)],
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    // A shared key: its first exact namespace is the default, patterns grant the rest.
    for ns in [None, Some("team-a:bots")] {
        let mut headers = vec![("authorization", shared.as_str())];
        if let Some(ns) = ns {
            headers.push(("x-aigw-namespace", ns));
        }
        let answer = call(
            &f,
            Method::PUT,
            "/v1/store/items",
            &headers,
            Some(json!({"namespace": ["notes"], "key": "k", "value": {"v": 1}})),
        )
        .await;
        assert!(answer.status.is_success(), "{ns:?}: {}", answer.body);
    }
    let answer = call(
        &f,
        Method::PUT,
        "/v1/store/items",
        &[("authorization", &shared), ("x-aigw-namespace", "team-b")],
        Some(json!({"namespace": ["notes"], "key": "k", "value": {"v": 1}})),
    )
    .await;
    refused(&answer, StatusCode::FORBIDDEN, "namespace_not_allowed");

    // Session chat: the conversation header's namespace is checked before anything else.
    let answer = call(
        &f,
        Method::POST,
        "/v1/chat/completions",
        &[
            ("authorization", &own),
            ("x-aigw-namespace", "default"),
            ("x-aigw-conversation", &conversation),
        ],
        Some(json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    refused(&answer, StatusCode::FORBIDDEN, "namespace_not_allowed");
}

#[tokio::test]
async fn a_flood_of_wrong_keys_never_reaches_the_store() {
    let f = fixture().await;
    let (_, secret) = make_key(&f, json!({})).await;
    let good = bearer(&secret);
    let before = f.store.stats();
    for i in 0..2000 {
        let wrong = format!("Bearer sk-aigw-guess-{i:040}");
        let answer = call(
            &f,
            Method::GET,
            "/v1/models",
            &[("authorization", &wrong)],
            None,
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        if i % 100 == 0 {
            let served = call(
                &f,
                Method::GET,
                "/v1/models",
                &[("authorization", &good)],
                None,
            )
            .await;
            assert_eq!(served.status, StatusCode::OK);
        }
    }
    let after = f.store.stats();
    assert_eq!(after, before, "neither a read nor a write for a key check");
}

#[tokio::test]
async fn teams_are_managed_like_keys_and_hold_their_keys() {
    let f = fixture().await;
    let admin = bearer(ADMIN);
    let auth = [("authorization", admin.as_str())];
    let made = call(
        &f,
        Method::POST,
        "/admin/teams",
        &auth,
        Some(json!({"name": "research", "models": ["groq/*"], "rpm_limit": 600})),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(made.body["object"], "aigw.team");
    let team = made.body["id"].as_str().unwrap().to_owned();

    // A key must name a team that exists; the error names the field.
    let unknown = call(
        &f,
        Method::POST,
        "/admin/keys",
        &auth,
        Some(json!({"team": "team_000000000000000000000000"})),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.body);
    assert_eq!(unknown.body["error"]["param"], "team");
    let (key_id, _) = make_key(&f, json!({"team": team})).await;

    let bad = call(
        &f,
        Method::PATCH,
        &format!("/admin/teams/{team}"),
        &auth,
        Some(json!({"tools": ["x"]})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.body["error"]["param"], "tools",
        "a team has no tool grant"
    );
    let listed = call(&f, Method::GET, "/admin/teams", &auth, None).await;
    assert_eq!(listed.body["data"][0]["id"], team.as_str());

    // Not deleted while a key names it.
    let in_use = call(
        &f,
        Method::DELETE,
        &format!("/admin/teams/{team}"),
        &auth,
        None,
    )
    .await;
    assert_eq!(in_use.status, StatusCode::CONFLICT);
    assert_eq!(in_use.code(), Some("team_in_use"));
    call(
        &f,
        Method::DELETE,
        &format!("/admin/keys/{key_id}"),
        &auth,
        None,
    )
    .await;
    let deleted = call(
        &f,
        Method::DELETE,
        &format!("/admin/teams/{team}"),
        &auth,
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    let gone = call(
        &f,
        Method::GET,
        &format!("/admin/teams/{team}"),
        &auth,
        None,
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.code(), Some("team_not_found"));
}

#[tokio::test]
async fn rotation_grace_and_listing_pages_through_the_admin_api() {
    let f = fixture().await;
    let admin = bearer(ADMIN);
    let auth = [("authorization", admin.as_str())];
    let (id, old) = make_key(&f, json!({})).await;
    let status = |secret: String| {
        let f = &f;
        async move {
            let auth = bearer(&secret);
            call(
                f,
                Method::GET,
                "/v1/models",
                &[("authorization", &auth)],
                None,
            )
            .await
            .status
        }
    };
    for (body, param) in [
        (json!({"grace_seconds": -1}), "grace_seconds"),
        (json!({"grace_seconds": 86_401}), "grace_seconds"),
        (json!({"grace": 5}), "grace"),
    ] {
        let refused = call(
            &f,
            Method::POST,
            &format!("/admin/keys/{id}/rotate"),
            &auth,
            Some(body),
        )
        .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
        assert_eq!(refused.body["error"]["param"], param);
    }
    let rotated = call(
        &f,
        Method::POST,
        &format!("/admin/keys/{id}/rotate"),
        &auth,
        Some(json!({"grace_seconds": 60})),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new = rotated.body["key"].as_str().unwrap().to_owned();
    assert_eq!(status(old.clone()).await, StatusCode::OK, "in its grace");
    assert_eq!(status(new).await, StatusCode::OK);
    // Revoking ends the grace too.
    call(
        &f,
        Method::DELETE,
        &format!("/admin/keys/{id}"),
        &auth,
        None,
    )
    .await;
    assert_eq!(status(old).await, StatusCode::UNAUTHORIZED);

    for _ in 0..3 {
        make_key(&f, json!({})).await;
    }
    let first = call(&f, Method::GET, "/admin/keys?limit=2", &auth, None).await;
    assert_eq!(first.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(first.body["has_more"], true);
    let last_id = first.body["last_id"].as_str().unwrap().to_owned();
    let rest = call(
        &f,
        Method::GET,
        &format!("/admin/keys?after={last_id}&limit=100"),
        &auth,
        None,
    )
    .await;
    assert_eq!(rest.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(rest.body["has_more"], false);
    let bad = call(&f, Method::GET, "/admin/keys?limit=0", &auth, None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["error"]["param"], "limit");
    let bad = call(&f, Method::GET, "/admin/keys?after=key_nope", &auth, None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["error"]["param"], "after");
}
