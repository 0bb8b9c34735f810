//! The calls counter behind the admin API's `calls`: every call into a provider's guest
//! (encode, decode, a stream decoder started) and every tool invoke counts once, whether it
//! succeeds or not; a tool name refused before the guest is entered does not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aigw_runtime::{
    CallContext, HttpResponse, Limits, LoadedPlugin, PluginTarget, ResponseHead, Runtime, load,
};
use aigw_tests::paths;

fn limits() -> Limits {
    Limits {
        call_timeout: Duration::from_millis(500),
        memory_bytes: 32 << 20,
        warm_instances: 1,
        max_instances: 50,
        ..Limits::default()
    }
}

#[tokio::test]
async fn every_call_into_a_provider_counts_once() {
    let runtime = Runtime::new(limits()).unwrap();
    let bytes = std::fs::read(paths::built("plugins/groq.wasm")).unwrap();
    let loaded = load(&runtime, "groq", bytes).await.unwrap();
    let LoadedPlugin::Provider(groq) = &loaded else {
        panic!("{loaded:?}");
    };
    // Loading describes and warms: not calls.
    assert_eq!(loaded.calls(), 0);
    let target = PluginTarget::new("http://127.0.0.1:9/openai/v1", "llama");
    groq.encode(&target, r#"{"model":"a","messages":[]}"#)
        .await
        .unwrap();
    // A request the plugin refuses is a call all the same.
    assert!(groq.encode(&target, "not json").await.is_err());
    let response = HttpResponse {
        status: 500,
        headers: Vec::new(),
        body: b"{}".to_vec(),
    };
    assert!(groq.decode(&target, response).await.is_err());
    let head = ResponseHead {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
    };
    let decoder = groq.stream_decoder(&target, head).await.unwrap();
    decoder.close().await;
    assert_eq!(groq.calls(), 4);
    assert_eq!(loaded.calls(), 4);
}

#[tokio::test]
async fn every_tool_invoke_counts_and_an_unknown_tool_does_not() {
    let runtime = Runtime::new(limits()).unwrap();
    let bytes = std::fs::read(paths::built("test-plugins/tool-echo.wasm")).unwrap();
    let loaded = load(&runtime, "tool-echo", bytes).await.unwrap();
    let LoadedPlugin::Tool(echo) = &loaded else {
        panic!("{loaded:?}");
    };
    let tool = echo.describe()[0].name.clone();
    let context = CallContext::default();
    // Without egress or grants the guest's send fails: still one call into the guest.
    let _ = echo.invoke(&context, &tool, "{}").await;
    let _ = echo.invoke(&context, &tool, "{}").await;
    assert!(echo.invoke(&context, "no-such-tool", "{}").await.is_err());
    assert_eq!(loaded.calls(), 2);
}
