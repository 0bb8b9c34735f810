//! The official LangGraph Python SDK's store client against the real gateway binary: if its
//! `put_item`, `get_item`, `search_items`, `list_namespaces` and `delete_item` work unmodified
//! against `<aigw>/v1`, so do the agents built on LangGraph's store. The script also checks
//! tenant isolation, ttl, and aigw's compare-and-set (409) through raw HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aigw_tests::python::Check;
use aigw_tests::setup::Upstreams;

#[tokio::test]
async fn the_langgraph_sdk_store_client_works_against_the_gateway() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway("").await;
    Check {
        script: "store_check.py",
        imports: "langgraph_sdk, httpx",
        env: &[],
        expect: &[
            "ok put and get",
            "ok search with query and filter",
            "ok list namespaces",
            "ok foreign namespace miss",
            "ok delete",
            "ok ttl",
            "ok stale if_version is 409",
        ],
    }
    .run(&gateway)
    .await;
}
