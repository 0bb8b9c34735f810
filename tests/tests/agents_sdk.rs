//! The OpenAI Agents SDK against the gateway: two agents whose model is the gateway's chat
//! completions and whose session store is the gateway's Conversations API take turns on one
//! conversation, and each sees the other's messages (`tests/python/agents_session_check.py`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use aigw_tests::paths;
use aigw_tests::setup::Upstreams;

const INSTALL_HINT: &str = "`cargo xtask test` installs it into target/py (or set AIGW_PYTHON to a \
                            Python that has the `openai-agents` package)";

#[tokio::test]
async fn two_agents_of_the_agents_sdk_share_one_conversation() {
    let python = paths::python();
    let import = std::process::Command::new(&python)
        .args(["-c", "import agents, openai"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL_HINT}", python.display()));
    assert!(
        import.status.success(),
        "the `openai-agents` package is missing from {}: {INSTALL_HINT}\n{}",
        python.display(),
        String::from_utf8_lossy(&import.stderr)
    );

    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway("[models.echo]\ntargets = [\"local/echo-messages\"]\n")
        .await;
    let script = paths::workspace_root().join("tests/python/agents_session_check.py");
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .env("AIGW_BASE_URL", gateway.url("/v1"))
        .env("AIGW_MODEL", "echo")
        // No key of the developer's may reach the SDK's defaults; no proxy may take loopback.
        .env_remove("OPENAI_API_KEY")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the Agents SDK check did not finish within 120 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Agents SDK check failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- gateway ---\n{}",
        output.status,
        gateway.stderr()
    );
    for check in [
        "ok alice's first turn",
        "ok bob sees alice's turn",
        "ok alice sees bob's turn",
        "ok both sessions read the shared history",
        "ok a limited read gives the newest items in order",
    ] {
        assert!(stdout.contains(check), "`{check}` missing from:\n{stdout}");
    }
    // Three turns reached the model, each once.
    assert_eq!(upstreams.local.chat_requests().len(), 3);
}
