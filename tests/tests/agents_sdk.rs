//! The OpenAI Agents SDK against the gateway: two agents whose model is the gateway's chat
//! completions and whose session store is the gateway's Conversations API take turns on one
//! conversation, and each sees the other's messages (`tests/python/agents_session_check.py`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aigw_tests::python::Check;
use aigw_tests::setup::Upstreams;

#[tokio::test]
async fn two_agents_of_the_agents_sdk_share_one_conversation() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway("[models.echo]\ntargets = [\"local/echo-messages\"]\n")
        .await;
    Check {
        script: "agents_session_check.py",
        imports: "agents, openai",
        env: &[("AIGW_MODEL", "echo")],
        expect: &[
            "ok alice's first turn",
            "ok bob sees alice's turn",
            "ok alice sees bob's turn",
            "ok both sessions read the shared history",
            "ok a limited read gives the newest items in order",
        ],
    }
    .run(&gateway)
    .await;
    // Three turns reached the model, each once.
    assert_eq!(upstreams.local.chat_requests().len(), 3);
}
