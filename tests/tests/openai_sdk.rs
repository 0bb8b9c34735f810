//! The official OpenAI Python SDK against the gateway: if it parses our answers, streams and
//! tool calls, so will the applications built on it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use aigw_tests::paths;
use aigw_tests::setup::Upstreams;

const INSTALL_HINT: &str = "`cargo xtask test` installs it into target/py (or set AIGW_PYTHON to a \
                            Python that has the `openai` package)";

#[tokio::test]
async fn the_openai_python_sdk_works_against_the_gateway() {
    let python = paths::python();
    assert!(
        python.exists(),
        "no Python at {}: {INSTALL_HINT}",
        python.display()
    );
    let import = std::process::Command::new(&python)
        .args(["-c", "import openai"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL_HINT}", python.display()));
    assert!(
        import.status.success(),
        "the `openai` package is missing from {}: {INSTALL_HINT}\n{}",
        python.display(),
        String::from_utf8_lossy(&import.stderr)
    );

    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway("[models.fast]\ntargets = [\"groq/rate-limit\", \"groq/ok\"]\n")
        .await;
    let script = paths::workspace_root().join("tests/python/openai_sdk_check.py");

    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .env("AIGW_BASE_URL", gateway.url("/v1"))
        .env("AIGW_MODEL", "fast")
        .env("AIGW_TOOL_MODEL", "local/tool-call")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the SDK check did not finish within 120 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(
        output.status.success(),
        "the SDK check failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- gateway ---\n{}",
        output.status,
        gateway.stderr()
    );
    for check in [
        "ok non-stream",
        "ok stream with include_usage",
        "ok tool-call round trip",
        "ok streamed tool call",
    ] {
        assert!(stdout.contains(check), "`{check}` missing from:\n{stdout}");
    }
}
