//! The server's service driven in-process: requests go straight to [`Service::handle`] (no
//! socket on the gateway's side), answered by a real plugin in front of the scriptable mock
//! upstream. Fast handler tests, and the proof that the served state can be swapped under
//! load without losing a request or a target's health.

// `Service::handle`'s future, spans' `Instrumented` wrappers included, lays out deeper than
// the default limit of 128 (the library sets the same).
#![recursion_limit = "256"]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aigw_router::{HealthRegistry, HealthSettings};
use aigw_runtime::{Limits, Plugin, Runtime};
use aigw_server::{
    Body, Gateway, MAX_REMEMBERED_TARGETS, Provider, ProviderOptions, RouteOptions, ServerOptions,
    Service, TargetOptions,
};
use aigw_tests::mock::{Flavor, MockUpstream};
use aigw_tests::paths;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

/// What a test needs to build served states: one provider `p` (the `openai-compatible`
/// plugin) in front of an OpenAI-flavored mock.
struct Fixture {
    plugin: Arc<Plugin>,
    mock: MockUpstream,
}

impl Fixture {
    async fn start() -> Fixture {
        let runtime = Runtime::new(Limits {
            warm_instances: 2,
            ..Limits::default()
        })
        .unwrap();
        let path = paths::built("plugins/openai-compatible.wasm");
        let plugin = Plugin::load(&runtime, &path).await.unwrap();
        Fixture {
            plugin,
            mock: MockUpstream::start(Flavor::OpenAi).await,
        }
    }

    /// A served state whose aliases route to the mock's models: `alias → [model, …]`.
    fn state(&self, routes: &[(&str, &[&str])], health: &Arc<HealthRegistry>) -> Gateway {
        let provider = Provider::new(
            &ProviderOptions {
                name: "p".into(),
                base_url: Some(self.mock.base_url()),
                ..ProviderOptions::default()
            },
            Arc::clone(&self.plugin),
        )
        .unwrap();
        let routes: BTreeMap<String, RouteOptions> = routes
            .iter()
            .map(|(alias, models)| {
                let targets = models
                    .iter()
                    .enumerate()
                    .map(|(i, model)| TargetOptions {
                        provider: "p".into(),
                        model: (*model).to_owned(),
                        priority: i as u32,
                        ..TargetOptions::default()
                    })
                    .collect();
                (
                    (*alias).to_owned(),
                    RouteOptions {
                        targets,
                        ..RouteOptions::default()
                    },
                )
            })
            .collect();
        Gateway::new(
            [provider],
            routes,
            Arc::clone(health),
            &ServerOptions {
                max_body_bytes: 1 << 20,
                ..ServerOptions::default()
            },
        )
        .unwrap()
    }
}

fn registry() -> Arc<HealthRegistry> {
    Arc::new(HealthRegistry::new(
        HealthSettings::default(),
        MAX_REMEMBERED_TARGETS,
    ))
}

fn chat(model: &str, stream: bool) -> Request<Full<Bytes>> {
    let body = json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": "hello there"}],
    });
    post("/v1/chat/completions", body.to_string())
}

fn post(path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap()
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri(path)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn text(response: Response<Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn json_of(response: Response<Body>) -> Value {
    serde_json::from_str(&text(response).await).unwrap()
}

/// The text of an SSE answer, and whether it ended with `[DONE]`.
fn stream_text(body: &str) -> (String, bool) {
    let mut answer = String::new();
    let mut done = false;
    for data in body.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        if let Some(content) = chunk["choices"][0]["delta"]["content"].as_str() {
            answer.push_str(content);
        }
    }
    (answer, done)
}

#[tokio::test]
async fn a_chat_completion_is_answered_in_process() {
    let fixture = Fixture::start().await;
    let service = Service::new(fixture.state(&[("fast", &["ok"])], &registry()));
    let response = service.handle(chat("fast", false)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-aigw-target"], "p/ok");
    assert_eq!(response.headers()["x-aigw-attempts"], "1");
    let answer = json_of(response).await;
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "mock reply to: hello there"
    );

    let response = service.handle(chat("fast", true)).await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (answer, done) = stream_text(&text(response).await);
    assert_eq!(answer, "mock reply to: hello there");
    assert!(done, "a complete stream ends with [DONE]");
}

#[tokio::test]
async fn client_mistakes_get_openai_errors_naming_the_field() {
    let fixture = Fixture::start().await;
    let service = Service::new(fixture.state(&[("fast", &["ok"])], &registry()));

    let response = service
        .handle(post("/v1/chat/completions", "{\"model\":"))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error = json_of(response).await;
    assert_eq!(error["error"]["code"], "invalid_json");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1")
    );

    let response = service
        .handle(post("/v1/chat/completions", r#"{"model":"fast"}"#))
        .await;
    assert_eq!(json_of(response).await["error"]["param"], "messages");

    let response = service.handle(chat("nope", false)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let error = json_of(response).await;
    assert_eq!(error["error"]["code"], "model_not_found");
    assert!(error["error"]["message"].as_str().unwrap().contains("fast"));

    let response = service
        .handle(post("/v1/chat/completions", vec![b' '; (1 << 20) + 1]))
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let response = service.handle(get("/v1/chat/completions")).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");

    // A huge model name is refused before it is echoed, logged or remembered as a route.
    let long = format!("p/{}", "x".repeat(300_000));
    let response = service.handle(chat(&long, false)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("x-aigw-target").is_none());
    let error = json_of(response).await;
    assert_eq!(error["error"]["code"], "model_name_too_long");
    assert!(error.to_string().len() < 300, "the name is not echoed");
    let admin = service.handle(get("/admin/targets")).await;
    assert!(
        text(admin).await.len() < 1000,
        "no target was remembered for it"
    );

    let response = service.handle(get("/v2/nothing")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_of(response).await["error"]["code"], "unknown_url");
}

#[tokio::test]
async fn models_health_and_readiness_answer_from_the_current_state() {
    let fixture = Fixture::start().await;
    let health = registry();
    let service = Service::new(fixture.state(&[("fast", &["ok"])], &health));
    let models = json_of(service.handle(get("/v1/models")).await).await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["fast", "p/ok"]);
    assert_eq!(
        json_of(service.handle(get("/healthz")).await).await["status"],
        "ok"
    );
    let head = Request::builder()
        .method(Method::HEAD)
        .uri("/healthz")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(service.handle(head).await.status(), StatusCode::OK);
    let response = service.handle(post("/healthz", "{}")).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET, HEAD");

    service.swap(fixture.state(&[("smart", &["ok"])], &health));
    let models = json_of(service.handle(get("/v1/models")).await).await;
    assert_eq!(models["data"][0]["id"], "smart", "the new state is served");
    let response = service.handle(chat("fast", false)).await;
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "the old alias is gone"
    );
}

#[tokio::test]
async fn target_health_survives_a_swap() {
    let fixture = Fixture::start().await;
    let health = registry();
    let service = Service::new(fixture.state(&[("limited", &["rate-limit"])], &health));
    // The mock's 429 says `retry-after: 7`: the target cools down for 7 s.
    let response = service.handle(chat("limited", false)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["x-aigw-attempts"], "1");
    let before = fixture.mock.chat_requests().len();

    let old =
        service.swap(fixture.state(&[("limited", &["rate-limit"]), ("fast", &["ok"])], &health));
    let new = service.state();
    let entry = |state: &Gateway| Arc::clone(&state.routes["limited"].entries[0].health);
    assert!(
        Arc::ptr_eq(&entry(&old), &entry(&new)),
        "both states share the target's health"
    );
    // Still cooling after the swap: answered at once, without asking the upstream.
    let response = service.handle(chat("limited", false)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["x-aigw-attempts"], "0");
    assert_eq!(fixture.mock.chat_requests().len(), before);
    let admin = json_of(service.handle(get("/admin/targets")).await).await;
    let target = admin["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == "p/rate-limit")
        .unwrap()
        .clone();
    assert!(target["cooldown_remaining_ms"].as_u64().unwrap() > 5000);
    assert_eq!(target["routes"], json!(["limited"]));
}

#[tokio::test]
async fn a_stream_in_flight_finishes_on_the_state_it_started_on() {
    let fixture = Fixture::start().await;
    let health = registry();
    let service = Service::new(fixture.state(&[("pinned", &["ok"])], &health));
    // The response head means the stream is committed and its relay is running.
    let response = service.handle(chat("pinned", true)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let old = service.swap(fixture.state(&[("other", &["ok"])], &health));
    let old = Arc::downgrade(&old);
    assert!(
        old.upgrade().is_some(),
        "the running stream holds the old state"
    );
    let (answer, done) = stream_text(&text(response).await);
    assert_eq!(answer, "mock reply to: hello there");
    assert!(done);
    // The alias exists only in the old state.
    let response = service.handle(chat("pinned", true)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_the_state_under_load_loses_no_request() {
    const WORKERS: usize = 8;
    const REQUESTS: usize = 40;
    let fixture = Arc::new(Fixture::start().await);
    let health = registry();
    // Every state serves `fast`, over targets that differ from state to state.
    let shapes: [&[(&str, &[&str])]; 2] = [&[("fast", &["ok"])], &[("fast", &["error-500", "ok"])]];
    let service = Arc::new(Service::new(fixture.state(shapes[0], &health)));
    let served = Arc::new(AtomicUsize::new(0));
    // Each answered request is announced; every fifth announcement swaps the state, so swaps
    // interleave with requests in flight without any timing assumption.
    let (answered, mut announcements) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let service = Arc::clone(&service);
        let served = Arc::clone(&served);
        let answered = answered.clone();
        workers.push(tokio::spawn(async move {
            for i in 0..REQUESTS {
                let stream = (worker + i) % 2 == 0;
                let response = service.handle(chat("fast", stream)).await;
                assert_eq!(
                    response.status(),
                    StatusCode::OK,
                    "worker {worker} request {i}"
                );
                let body = text(response).await;
                if stream {
                    let (answer, done) = stream_text(&body);
                    assert_eq!(answer, "mock reply to: hello there");
                    assert!(done, "worker {worker} request {i}: stream cut by a swap");
                } else {
                    let answer: Value = serde_json::from_str(&body).unwrap();
                    assert_eq!(
                        answer["choices"][0]["message"]["content"],
                        "mock reply to: hello there"
                    );
                }
                served.fetch_add(1, Ordering::Relaxed);
                let _ = answered.send(());
            }
        }));
    }
    drop(answered);
    let mut swaps = 0;
    let mut count = 0;
    while announcements.recv().await.is_some() {
        count += 1;
        if count % 5 == 0 {
            swaps += 1;
            service.swap(fixture.state(shapes[swaps % 2], &health));
        }
    }
    for worker in workers {
        worker.await.unwrap();
    }
    assert_eq!(
        swaps,
        WORKERS * REQUESTS / 5,
        "the states were swapped while serving"
    );
    assert_eq!(served.load(Ordering::Relaxed), WORKERS * REQUESTS);
}

#[tokio::test]
async fn two_providers_of_one_name_are_refused() {
    let fixture = Fixture::start().await;
    let provider = || {
        Provider::new(
            &ProviderOptions {
                name: "p".into(),
                base_url: Some(fixture.mock.base_url()),
                ..ProviderOptions::default()
            },
            Arc::clone(&fixture.plugin),
        )
        .unwrap()
    };
    let error = match Gateway::new(
        [provider(), provider()],
        [],
        registry(),
        &ServerOptions::default(),
    ) {
        Ok(_) => panic!("two providers named `p` were accepted"),
        Err(error) => error,
    };
    assert_eq!(error.to_string(), "two providers are named `p`");
}

#[tokio::test]
async fn a_provider_whose_base_url_is_not_http_is_refused_without_naming_its_key() {
    let fixture = Fixture::start().await;
    let result = Provider::new(
        &ProviderOptions {
            name: "p".into(),
            base_url: Some("ftp://example.test/v1".into()),
            api_key: Some("sk-SECRET-123".into()),
            ..ProviderOptions::default()
        },
        Arc::clone(&fixture.plugin),
    );
    let Err(error) = result else {
        panic!("an ftp base URL was accepted");
    };
    let message = error.to_string();
    assert!(message.contains("ftp://example.test"), "{message}");
    assert!(!message.contains("SECRET"), "{message}");
}

#[tokio::test]
async fn a_draining_service_is_unready_alive_and_closes_every_http1_connection() {
    let fixture = Fixture::start().await;
    let service = Service::new(fixture.state(&[("fast", &["ok"])], &registry()));
    let ready = service.handle(get("/readyz")).await;
    assert_eq!(ready.status(), StatusCode::OK);
    assert!(ready.headers().get("connection").is_none());
    assert!(!service.is_draining());

    service.begin_draining();
    assert!(service.is_draining());
    let unready = service.handle(get("/readyz")).await;
    assert_eq!(unready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unready.headers()["connection"], "close");
    let body = json_of(unready).await;
    assert_eq!(body["status"], "draining", "{body}");
    assert_eq!(body["error"]["type"], "server_error", "{body}");
    let alive = service.handle(get("/healthz")).await;
    assert_eq!(alive.status(), StatusCode::OK);
    assert_eq!(alive.headers()["connection"], "close");
    // Requests are still answered in full, each telling the client not to reuse the connection.
    let answered = service.handle(chat("fast", false)).await;
    assert_eq!(answered.status(), StatusCode::OK);
    assert_eq!(answered.headers()["connection"], "close");
    // HTTP/2 has no `Connection` header (its GOAWAY says it).
    let mut h2 = get("/healthz");
    *h2.version_mut() = http::Version::HTTP_2;
    let answered = service.handle(h2).await;
    assert!(answered.headers().get("connection").is_none());
}
