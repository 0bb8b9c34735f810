//! The tool-plugin side of the SDK through its public surface: a plugin's call as the export glue
//! runs it (arguments parsed, result compact, failures passed through), `http` answered by
//! `testing::Upstream`, and the answer helpers on a whole round trip.

#![cfg(feature = "testing")]

use aigw_plugin_sdk::args::Args;
use aigw_plugin_sdk::query::Url;
use aigw_plugin_sdk::testing::{Upstream as Scripted, response};
use aigw_plugin_sdk::{
    CredentialPlacement, Failure, NamedUrl, Tool, ToolDescriptor, ToolSpec, ToolTarget, Upstream,
    answer, http, schema, tool_export,
};
use serde_json::{Value, json};

/// A tool that looks a word up on its upstream's `dict` endpoint.
struct Dictionary;

impl Tool for Dictionary {
    fn describe() -> ToolDescriptor {
        ToolDescriptor {
            name: "dictionary".to_owned(),
            version: "1.0.0".to_owned(),
            tools: vec![ToolSpec {
                name: "define".to_owned(),
                title: "Define".to_owned(),
                description: "Defines a word.".to_owned(),
                parameters: schema::object(
                    json!({"word": schema::text("The word", 40)}),
                    &["word"],
                ),
                output: None,
                cache_ttl_seconds: 60,
            }],
            upstreams: vec![Upstream {
                name: "dict".to_owned(),
                endpoints: vec![NamedUrl::new("dict", "https://dict.example")],
                credential: CredentialPlacement::Query("key".to_owned()),
                credential_required: true,
            }],
        }
    }

    fn invoke(name: &str, args: Value, target: &ToolTarget) -> Result<Value, Failure> {
        assert_eq!(name, "define");
        let word = Args(&args).required_string("word")?;
        let url = Url::new(target.endpoint("dict")?, "/v1/define")
            .param("w", word)
            .build();
        let body = answer::json("Dict", &http::get(&url, &[("x-client", "test")])?)?;
        Ok(json!({"word": word, "meaning": body["meaning"]}))
    }
}

fn target() -> ToolTarget {
    ToolTarget {
        upstream: "dict".to_owned(),
        endpoints: vec![NamedUrl::new("dict", "http://127.0.0.1:9/")],
    }
}

#[test]
fn a_call_parses_its_arguments_and_answers_compact_json() {
    let upstream = Scripted::new().json("/v1/define", 200, r#"{ "meaning" : "a greeting" }"#);
    let (result, sent) = upstream.run(|| {
        tool_export::invoke::<Dictionary>("define", r#"{"word": "hello world"}"#, &target())
    });
    assert_eq!(
        result.unwrap(),
        r#"{"meaning":"a greeting","word":"hello world"}"#
    );
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, "GET");
    assert_eq!(sent[0].url, "http://127.0.0.1:9/v1/define?w=hello%20world");
    let header = |name: &str| {
        sent[0]
            .headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.value.as_str())
    };
    assert_eq!(header("x-client"), Some("test"));
    assert_eq!(header("accept"), Some("application/json"));
}

#[test]
fn arguments_that_are_not_json_are_an_invalid_request_before_any_send() {
    let (result, sent) =
        Scripted::new().run(|| tool_export::invoke::<Dictionary>("define", "{word", &target()));
    assert!(
        matches!(result, Err(Failure::InvalidRequest(ref m)) if m.contains("not JSON")),
        "{result:?}"
    );
    assert!(sent.is_empty());
    let (missing, _) =
        Scripted::new().run(|| tool_export::invoke::<Dictionary>("define", "", &target()));
    assert_eq!(
        missing,
        Err(Failure::InvalidRequest(
            "argument \"word\" is required".to_owned()
        ))
    );
}

#[test]
fn upstream_failures_and_host_failures_come_back_classified() {
    let limited = Scripted::new().answer(
        "/v1/define",
        response(
            429,
            &[("retry-after", "30")],
            r#"{"error":{"message":"slow down"}}"#,
        ),
    );
    let (result, _) =
        limited.run(|| tool_export::invoke::<Dictionary>("define", r#"{"word":"a"}"#, &target()));
    assert_eq!(
        result,
        Err(Failure::RateLimited {
            retry_after_seconds: Some(30),
            message: "Dict: slow down".to_owned()
        })
    );
    let refused = Scripted::new().fail(
        "/v1/define",
        Failure::Unauthorized("origin not granted".to_owned()),
    );
    let (result, _) =
        refused.run(|| tool_export::invoke::<Dictionary>("define", r#"{"word":"a"}"#, &target()));
    assert_eq!(
        result,
        Err(Failure::Unauthorized("origin not granted".to_owned()))
    );
    let unrouted = Scripted::new();
    let (result, _) =
        unrouted.run(|| tool_export::invoke::<Dictionary>("define", r#"{"word":"a"}"#, &target()));
    assert!(
        matches!(result, Err(Failure::InvalidRequest(_))),
        "an unscripted URL is a 404: {result:?}"
    );
}

#[test]
fn a_target_without_the_endpoint_is_unavailable() {
    let target = ToolTarget {
        upstream: "dict".to_owned(),
        endpoints: Vec::new(),
    };
    let (result, sent) = Scripted::new()
        .run(|| tool_export::invoke::<Dictionary>("define", r#"{"word":"a"}"#, &target));
    assert!(matches!(result, Err(Failure::Unavailable(_))), "{result:?}");
    assert!(sent.is_empty());
}

#[test]
fn the_descriptor_keeps_its_schemas_as_json() {
    let descriptor = Dictionary::describe();
    assert_eq!(
        descriptor.tools[0].parameters["additionalProperties"],
        false
    );
    assert_eq!(
        descriptor.tools[0].parameters["properties"]["word"]["maxLength"],
        40
    );
}
