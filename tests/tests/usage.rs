//! Spend and usage end to end: requests (JSON and streamed) show up in `GET /admin/usage` with
//! the tokens the upstream reported and the spend their target's price gives; a stream that
//! broke and was continued on another target costs both attempts, each at its own target's
//! price; a graceful stop writes what the flush interval had not; bad parameters are 400s
//! naming them; and `strategy = "cost"` sends each request to the cheapest target for it,
//! failing over to the dearer one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aigw_tests::gateway::{Gateway, read_stream, status_and_json};
use aigw_tests::setup::{Upstreams, header};
use aigw_tests::sse::Transcript;
use serde_json::{Value, json};

/// What `tokens` cost at `input`/`output` USD per million tokens, in micro-USD, rounded to the
/// nearest (half up), as the gateway does.
fn micro_usd(input_tokens: u64, output_tokens: u64, input: f64, output: f64) -> u64 {
    ((input_tokens as f64 * input + output_tokens as f64 * output) + 0.5).floor() as u64
}

fn number(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a count: {value}"))
}

/// `GET /admin/usage?<query>`: its rows and total.
async fn usage(gateway: &Gateway, query: &str) -> (Vec<Value>, Value) {
    let (status, _, body) =
        status_and_json(gateway.get(&format!("/admin/usage?{query}")).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    (
        body["data"].as_array().unwrap().clone(),
        body["total"].clone(),
    )
}

/// The rows' spend in micro-USD (`spend_usd` is USD with six decimals).
fn spend_micro(row: &Value) -> u64 {
    (row["spend_usd"].as_f64().unwrap() * 1e6).round() as u64
}

/// A field of a tracing JSON line, whether flattened or under `fields`.
fn field<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line.get("fields")
        .and_then(|f| f.get(name))
        .or_else(|| line.get(name))
}

/// Today's date, UTC, as the gateway's ledger writes it.
fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400;
    // Civil from days (H. Hinnant), to check the ledger against an independent date.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

const PRICED: &str = "[prices.\"groq/ok\"]\ninput = 2.5\noutput = 10\n";

#[tokio::test]
async fn json_and_streamed_requests_show_up_with_their_tokens_and_spend() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.json_logged_gateway(PRICED).await;

    let response = gateway
        .chat(&json!({"model": "groq/ok",
                      "messages": [{"role": "user", "content": "hello there, gateway"}]}))
        .await;
    let (status, _, answer) = status_and_json(response).await;
    assert_eq!(status, 200, "{answer}");
    let first = &answer["usage"];
    let (in1, out1) = (
        number(&first["prompt_tokens"]),
        number(&first["completion_tokens"]),
    );
    assert!(in1 > 0 && out1 > 0, "{answer}");

    let response = gateway
        .chat(&json!({"model": "groq/ok", "stream": true,
                      "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "and a streamed one, please"}]}))
        .await;
    assert_eq!(response.status(), 200);
    let (body, _) = read_stream(response).await;
    let transcript = Transcript::from_body(&body);
    assert!(transcript.ends_with_done(), "{body}");
    let second = &transcript.usage_chunks.last().expect("a usage chunk")["usage"];
    let (in2, out2) = (
        number(&second["prompt_tokens"]),
        number(&second["completion_tokens"]),
    );

    let (rows, total) = usage(&gateway, "").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["date"], today());
    assert_eq!(row["key_id"], "-", "requests without a key are under `-`");
    assert_eq!(row["model"], "groq/ok");
    assert_eq!(number(&row["requests"]), 2);
    assert_eq!(number(&row["input_tokens"]), in1 + in2);
    assert_eq!(number(&row["output_tokens"]), out1 + out2);
    let expected = micro_usd(in1, out1, 2.5, 10.0) + micro_usd(in2, out2, 2.5, 10.0);
    assert!(expected > 0);
    assert_eq!(spend_micro(row), expected, "{row}");
    assert_eq!(total["requests"], row["requests"]);
    assert_eq!(total["spend_usd"], row["spend_usd"]);

    // Each request line says what it cost.
    let lines = gateway
        .wait_for_log_lines(Duration::from_secs(10), 2, |l| l.contains("\"cost_usd\""))
        .await;
    let logged: Vec<u64> = lines
        .iter()
        .map(|l| {
            let line: Value = serde_json::from_str(l).unwrap();
            let cost = field(&line, "cost_usd").unwrap();
            let usd: f64 = cost
                .as_str()
                .map_or_else(|| cost.as_f64().unwrap(), |s| s.parse().unwrap());
            (usd * 1e6).round() as u64
        })
        .collect();
    assert_eq!(
        logged,
        [
            micro_usd(in1, out1, 2.5, 10.0),
            micro_usd(in2, out2, 2.5, 10.0)
        ]
    );

    // Filters: another model or another key has nothing; grouping by nothing is one total.
    assert!(usage(&gateway, "model=local%2Fok").await.0.is_empty());
    assert!(usage(&gateway, "key=key_0123").await.0.is_empty());
    let (rows, _) = usage(
        &gateway,
        &format!("from={}&to={}&group_by=", today(), today()),
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["date"], Value::Null);
    assert_eq!(rows[0]["model"], Value::Null);
    assert_eq!(number(&rows[0]["requests"]), 2);
}

#[tokio::test]
async fn a_stream_broken_and_continued_elsewhere_costs_both_attempts_at_their_prices() {
    let upstreams = Upstreams::start().await;
    // `local` breaks after 40 words; `groq` continues. Prices far apart, so a part priced at
    // the wrong target's price shows.
    let gateway = upstreams
        .gateway(
            "[models.fast]\ntargets = [\"local/cut-stream-40\", \"groq/restarts\"]\n\
             [prices.\"local/cut-stream-40\"]\ninput = 1\noutput = 100\n\
             [prices.\"groq/restarts\"]\ninput = 3\noutput = 7\n",
        )
        .await;
    let question: String = (1..=57).map(|i| format!("word{i} ")).collect();
    let response = gateway
        .chat(&json!({"model": "fast", "stream": true,
                      "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": question.trim()}]}))
        .await;
    assert_eq!(response.status(), 200);
    let (body, _) = read_stream(response).await;
    let transcript = Transcript::from_body(&body);
    assert!(transcript.ends_with_done(), "{body}\n{}", gateway.stderr());
    let client = &transcript.usage_chunks.last().expect("a usage chunk")["usage"];

    let (rows, total) = usage(&gateway, "").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let row = |model: &str| {
        rows.iter()
            .find(|r| r["model"] == model)
            .unwrap_or_else(|| panic!("no row for {model}: {rows:?}"))
            .clone()
    };
    let broken = row("local/cut-stream-40");
    let served = row("groq/restarts");
    // The request counts once, on the target that finished it; the broken attempt adds its
    // tokens (the 40 words it produced, and its prompt) and spend.
    assert_eq!(number(&broken["requests"]), 0);
    assert_eq!(number(&served["requests"]), 1);
    assert!(number(&broken["output_tokens"]) >= 40, "{broken}");
    assert!(number(&served["output_tokens"]) > 0, "{served}");
    for (row, input, output) in [(&broken, 1.0, 100.0), (&served, 3.0, 7.0)] {
        let expected = micro_usd(
            number(&row["input_tokens"]),
            number(&row["output_tokens"]),
            input,
            output,
        );
        assert_eq!(spend_micro(row), expected, "{row}");
    }
    assert_eq!(
        spend_micro(&total),
        spend_micro(&broken) + spend_micro(&served)
    );
    // What the client was told it used is what the ledger holds, both attempts together.
    assert_eq!(
        number(&client["prompt_tokens"]),
        number(&total["input_tokens"])
    );
    assert_eq!(
        number(&client["completion_tokens"]),
        number(&total["output_tokens"])
    );
}

#[tokio::test]
async fn a_graceful_stop_writes_the_usage_the_interval_had_not() {
    let upstreams = Upstreams::start().await;
    // An hour's interval: only the stop can write it.
    let mut gateway = upstreams
        .gateway(&format!("{PRICED}[usage]\nflush_interval_ms = 3600000\n"))
        .await;
    let response = gateway
        .chat(&json!({"model": "groq/ok", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(response.status(), 200);
    let db = gateway.config_path().with_file_name("aigw.db");
    assert!(gateway.terminate().await.success(), "{}", gateway.stderr());

    let store = aigw_memory::Store::open(aigw_memory::StoreOptions::new(&db))
        .await
        .unwrap();
    let rows = store
        .read(|c| {
            Box::pin(async move {
                let mut rows = c
                    .query(
                        "SELECT key_id, model, requests, spend_micro_usd FROM usage",
                        (),
                    )
                    .await?;
                let mut out = Vec::new();
                while let Some(r) = rows.next().await? {
                    out.push((
                        r.get::<String>(0)?,
                        r.get::<String>(1)?,
                        r.get::<i64>(2)?,
                        r.get::<i64>(3)?,
                    ));
                }
                Ok(out)
            })
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (key_id, model, requests, spend) = &rows[0];
    assert_eq!(
        (key_id.as_str(), model.as_str(), *requests),
        ("-", "groq/ok", 1)
    );
    assert!(*spend > 0);
}

#[tokio::test]
async fn bad_usage_parameters_are_400s_naming_them() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams.gateway("").await;
    for (query, param) in [
        ("from=2026-02-30", "from"),
        ("to=tomorrow", "to"),
        ("from=2026-03-02&to=2026-03-01", "from"),
        ("group_by=team", "group_by"),
        ("key=", "key"),
        ("page=2", "query"),
    ] {
        let (status, _, body) =
            status_and_json(gateway.get(&format!("/admin/usage?{query}")).await).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["param"], param, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_query", "{query}: {body}");
    }
    // Nothing recorded: an empty list with a zero total.
    let (rows, total) = usage(&gateway, "").await;
    assert!(rows.is_empty());
    assert_eq!(number(&total["requests"]), 0);
}

/// A route of two equal-priority targets: `groq/<a>` at 1/10 USD per million input/output
/// tokens, `local/<b>` at 10/1 (cheap prompts, dear answers vs. the reverse).
async fn cost_gateway(upstreams: &Upstreams, a: &str, b: &str) -> Gateway {
    upstreams
        .gateway(&format!(
            "[models.thrifty]\nstrategy = \"cost\"\n\
             targets = [{{ target = \"local/{b}\", priority = 0 }}, \
                        {{ target = \"groq/{a}\", priority = 0 }}]\n\
             [prices.\"groq/{a}\"]\ninput = 1\noutput = 10\n\
             [prices.\"local/{b}\"]\ninput = 10\noutput = 1\n"
        ))
        .await
}

/// A request of about 120 prompt tokens asking for at most `max_tokens`.
fn thrifty(max_tokens: u64) -> Value {
    json!({"model": "thrifty", "max_tokens": max_tokens,
           "messages": [{"role": "user", "content": "a".repeat(400)}]})
}

#[tokio::test]
async fn the_cost_strategy_sends_each_request_to_the_cheapest_target_for_it() {
    let upstreams = Upstreams::start().await;
    let gateway = cost_gateway(&upstreams, "ok", "ok").await;
    // A short answer: the cheap-output target's dear input costs more (≈1,200 vs ≈130).
    let response = gateway.chat(&thrifty(1)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(response.headers(), "x-aigw-target"), "groq/ok");
    // A huge answer bound flips it: ≈1,000,000 vs ≈101,000.
    let response = gateway.chat(&thrifty(100_000)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(response.headers(), "x-aigw-target"), "local/ok");
    assert_eq!(upstreams.groq.chat_requests().len(), 1);
    assert_eq!(upstreams.local.chat_requests().len(), 1);
}

#[tokio::test]
async fn the_cost_strategy_fails_over_from_the_cheapest_to_the_dearer() {
    let upstreams = Upstreams::start().await;
    let gateway = cost_gateway(&upstreams, "error-500", "ok").await;
    let response = gateway.chat_debug(&thrifty(1)).await;
    let log = header(response.headers(), "x-aigw-attempt-log").to_owned();
    assert_eq!(response.status(), 200, "{log}");
    assert_eq!(header(response.headers(), "x-aigw-target"), "local/ok");
    // The cheaper was tried first and failed.
    assert!(log.starts_with("groq/error-500 first unavailable"), "{log}");
    assert!(!upstreams.groq.chat_requests().is_empty());
}

#[test]
fn check_prints_each_targets_price_and_lists_the_unpriced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aigw.toml");
    std::fs::write(
        &path,
        format!(
            "{}\n[providers.groq]\nplugin = \"groq\"\napi_key = \"gsk_x\"\n\
             [providers.local]\nplugin = \"openai-compatible\"\n\
             base_url = \"http://127.0.0.1:11434/v1\"\n\
             [models.fast]\ntargets = [\"groq/llama-3.1-8b-instant\", \"local/llama3.2\", \
             \"local/priced\"]\n\
             [prices.\"local/priced\"]\ninput = 0.5\noutput = 1.5\n",
            aigw_tests::setup::plugins_section()
        ),
    )
    .unwrap();
    let output = aigw_tests::gateway::aigw(["check", "--config", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let line = |target: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{target} (")))
            .unwrap_or_else(|| panic!("no line for {target}:\n{stdout}"))
            .to_owned()
    };
    // The plugin's published price, the configured one, none.
    assert!(
        line("groq/llama-3.1-8b-instant").contains("price USD/M in 0.05 out 0.08"),
        "{stdout}"
    );
    assert!(
        line("local/priced").contains("price USD/M in 0.5 out 1.5"),
        "{stdout}"
    );
    assert!(
        line("local/llama3.2").contains("price unpriced"),
        "{stdout}"
    );
    let (_, unpriced) = stdout.split_once("unpriced (").expect("an unpriced list");
    let listed: Vec<&str> = unpriced.lines().skip(1).map(str::trim).collect();
    assert!(listed.contains(&"local/llama3.2"), "{stdout}");
    assert!(!listed.contains(&"local/priced"), "{stdout}");
    assert!(!listed.contains(&"groq/llama-3.1-8b-instant"), "{stdout}");
}

#[tokio::test]
async fn serving_logs_the_unpriced_targets_once_at_start() {
    let upstreams = Upstreams::start().await;
    let gateway = upstreams
        .gateway(&format!(
            "{PRICED}[models.m]\ntargets = [\"groq/ok\", \"local/free\"]\n"
        ))
        .await;
    let line = gateway
        .wait_for_log(Duration::from_secs(10), |l| l.contains("without a price"))
        .await
        .unwrap_or_else(|| panic!("no unpriced line:\n{}", gateway.stderr()));
    assert!(line.contains("local/free"), "{line}");
    assert!(!line.contains("groq/ok"), "{line}");
    assert_eq!(gateway.stderr().matches("without a price").count(), 1);
}
