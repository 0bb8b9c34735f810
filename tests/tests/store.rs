//! The official LangGraph Python SDK's store client against the real gateway binary: if its
//! `put_item`, `get_item`, `search_items`, `list_namespaces` and `delete_item` work unmodified
//! against `<aigw>/v1`, so do the agents built on LangGraph's store. The script also checks
//! tenant isolation, ttl, and aigw's compare-and-set (409) through raw HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use aigw_tests::paths;
use aigw_tests::setup::Upstreams;

const INSTALL_HINT: &str = "`cargo xtask test` installs it into target/py (or set AIGW_PYTHON to a \
                            Python that has the `langgraph_sdk` package)";

#[tokio::test]
async fn the_langgraph_sdk_store_client_works_against_the_gateway() {
    let python = paths::python();
    assert!(
        python.exists(),
        "no Python at {}: {INSTALL_HINT}",
        python.display()
    );
    let import = std::process::Command::new(&python)
        .args(["-c", "import langgraph_sdk, httpx"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL_HINT}", python.display()));
    assert!(
        import.status.success(),
        "the `langgraph_sdk` package is missing from {}: {INSTALL_HINT}\n{}",
        python.display(),
        String::from_utf8_lossy(&import.stderr)
    );

    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway("").await;
    let script = paths::workspace_root().join("tests/python/store_check.py");
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .env("AIGW_BASE_URL", gateway.url("/v1"))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the store check did not finish within 120 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the store check failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- gateway ---\n{}",
        output.status,
        gateway.stderr()
    );
    for check in [
        "ok put and get",
        "ok search with query and filter",
        "ok list namespaces",
        "ok foreign namespace miss",
        "ok delete",
        "ok ttl",
        "ok stale if_version is 409",
    ] {
        assert!(stdout.contains(check), "`{check}` missing from:\n{stdout}");
    }
}
