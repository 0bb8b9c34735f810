//! The official OpenAI Python SDK against the gateway: if it parses our answers, streams and
//! tool calls, so will the applications built on it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aigw_tests::python::Check;
use aigw_tests::setup::Upstreams;

#[tokio::test]
async fn the_openai_python_sdk_works_against_the_gateway() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway("[models.fast]\ntargets = [\"groq/rate-limit\", \"groq/ok\"]\n")
        .await;
    Check {
        script: "openai_sdk_check.py",
        imports: "openai",
        env: &[
            ("AIGW_MODEL", "fast"),
            ("AIGW_TOOL_MODEL", "local/tool-call"),
        ],
        expect: &[
            "ok non-stream",
            "ok stream with include_usage",
            "ok tool-call round trip",
            "ok streamed tool call",
        ],
    }
    .run(&gateway)
    .await;
}
