//! `memory-bench`: what aigw's shared memory costs, measured in one run.
//!
//! Starts `mock-upstream` and `aigw serve` (its store a fresh file, at the durability asked for),
//! then measures, through HTTP: conversation item appends at 1 and 64 concurrent writers, against
//! a baseline of the same inserts (the same rows into the same schema, the same `synchronous`
//! setting) done directly with libsql in this process, each writer on its own connection and
//! thread; the read of a 200-item conversation's history; a key-value get; a full-text search over
//! 100,000 conversation items; and a session-aware chat completion (`x-aigw-conversation`)
//! against a plain one. Prints p50/p99 and operations/s as Markdown tables with the ratios.
//! Normally run through `cargo xtask bench --memory`, which builds everything first.
//!
//! The load generator runs on one tokio thread; the baseline's writers are threads of their own.
//! Every process shares the machine's cores: compare rows of one run, not figures across machines.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aigw_memory::{Durability, Store, StoreOptions};
use aigw_tests::bench::{Server, percentile};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::process::Command;

const USAGE: &str = "\
usage: memory-bench [--duration SECS] [--durability process|power] [--search-items N]
                    [--aigw PATH] [--mock PATH] [--plugins DIR]

  --duration SECS        measured time per scenario (default 5)
  --durability NAME      [memory] durability of the gateway and the baseline (default process)
  --search-items N       conversation items the full-text search runs over (default 100000)
  --aigw PATH            gateway binary (default <root>/target/release/aigw)
  --mock PATH            mock upstream binary (default <root>/target/release/mock-upstream)
  --plugins DIR          built provider plugins (default <root>/dist/plugins)";

/// The gateway config: the Groq plugin in front of the mock, one model alias, the store.
const CONFIG_TEMPLATE: &str = r#"[plugins]
dir = "{plugins_dir}"

[providers.groq]
plugin = "groq"
base_url = "{upstream}/openai/v1"
api_key = "bench-key"

[models.bench]
targets = ["groq/ok"]

[memory]
path = "{db}"
durability = "{durability}"
"#;

/// Words the searchable items are made of; a query is one of them.
const WORDS: &[&str] = &[
    "apple", "river", "stone", "cloud", "engine", "garden", "market", "planet", "signal", "timber",
    "violet", "window", "harbor", "lantern", "meadow", "orbit", "pepper", "quartz", "saddle",
    "tunnel", "velvet", "walnut", "yellow", "zephyr", "bridge", "candle", "desert", "falcon",
    "glacier", "hollow", "island", "jungle",
];

struct Args {
    duration: Duration,
    durability: Durability,
    search_items: usize,
    aigw: PathBuf,
    mock: PathBuf,
    plugins: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let root = {
        let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
        tests.parent().unwrap_or(tests).to_path_buf()
    };
    let release = root.join("target").join("release");
    let mut args = Args {
        duration: Duration::from_secs(5),
        durability: Durability::Process,
        search_items: 100_000,
        aigw: release.join("aigw"),
        mock: release.join("mock-upstream"),
        plugins: root.join("dist").join("plugins"),
    };
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        let mut value = || argv.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--duration" => {
                let secs: u64 = value()?
                    .parse()
                    .map_err(|_| "--duration: expected whole seconds".to_owned())?;
                args.duration = Duration::from_secs(secs.max(1));
            }
            "--durability" => {
                let name = value()?;
                args.durability = Durability::ALL
                    .into_iter()
                    .find(|d| d.name() == name)
                    .ok_or(format!("--durability {name}: expected process or power"))?;
            }
            "--search-items" => {
                args.search_items = value()?
                    .parse()
                    .map_err(|_| "--search-items: expected a whole number".to_owned())?;
            }
            "--aigw" => args.aigw = value()?.into(),
            "--mock" => args.mock = value()?.into(),
            "--plugins" => args.plugins = value()?.into(),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    for path in [&mut args.aigw, &mut args.mock, &mut args.plugins] {
        *path = std::path::absolute(&*path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(args)
}

fn main() -> ExitCode {
    aigw_tests::bench::main("memory-bench", USAGE, parse_args(), |args| async move {
        bench(&args).await
    })
}

/// Latencies of one scenario.
struct Measured {
    label: String,
    latencies_us: Vec<u32>,
    elapsed: Duration,
}

impl Measured {
    fn row(&mut self) -> String {
        self.latencies_us.sort_unstable();
        let per_second = self.latencies_us.len() as f64 / self.elapsed.as_secs_f64();
        format!(
            "| {} | {} | {:.0} | {} | {} |",
            self.label,
            self.latencies_us.len(),
            per_second,
            ms(percentile(&self.latencies_us, 50.0)),
            ms(percentile(&self.latencies_us, 99.0)),
        )
    }

    fn p50(&self) -> u32 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        percentile(&sorted, 50.0)
    }

    fn per_second(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }
}

fn ms(us: u32) -> String {
    format!("{:.2} ms", f64::from(us) / 1000.0)
}

const HEADER: &str = "| scenario | operations | ops/s | p50 | p99 |\n|---|---:|---:|---:|---:|";

async fn bench(args: &Args) -> Result<()> {
    for (what, path) in [("gateway", &args.aigw), ("mock upstream", &args.mock)] {
        if !path.is_file() {
            bail!(
                "the {what} binary is missing at {} (`cargo xtask bench --memory` builds it)",
                path.display()
            );
        }
    }
    let mut mock_cmd = Command::new(&args.mock);
    mock_cmd.args(["--listen", "127.0.0.1:0", "--flavor", "groq", "--no-record"]);
    let mock = Server::start("mock-upstream", mock_cmd).await?;

    let dir = tempfile::tempdir().context("creating a directory for the gateway")?;
    let config_path = dir.path().join("aigw.toml");
    let config = CONFIG_TEMPLATE
        .replace("{plugins_dir}", &args.plugins.display().to_string())
        .replace("{upstream}", &format!("http://{}", mock.addr))
        .replace("{db}", &dir.path().join("aigw.db").display().to_string())
        .replace("{durability}", args.durability.name());
    std::fs::write(&config_path, &config)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let mut aigw_cmd = Command::new(&args.aigw);
    aigw_cmd
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("AIGW_LOG", "warn");
    let mut aigw = Server::start("aigw", aigw_cmd).await?;
    let base = format!("http://{}", aigw.addr);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(128)
        .build()?;
    let http = Http {
        client,
        base: base.clone(),
    };

    println!(
        "\naigw memory benchmark: durability {}, {} s per scenario, loopback; the baseline \
         inserts the same rows into the same schema with libsql directly.\n",
        args.durability.name(),
        args.duration.as_secs()
    );

    // Appends, through HTTP and directly.
    let baseline_db = dir.path().join("baseline.db");
    let baseline = Baseline::open(&baseline_db, args.durability).await?;
    let mut rows = Vec::new();
    let mut ratios = Vec::new();
    for writers in [1usize, 64] {
        let conversation = http.create_conversation().await?;
        eprintln!("running: append, {writers} writer(s), through aigw ...");
        let mut through = concurrent(
            format!("append, {writers} writer(s), through aigw"),
            writers,
            args.duration,
            |n| {
                let http = http.clone();
                let conversation = conversation.clone();
                async move {
                    http.append(&conversation, vec![text_item(n)]).await?;
                    Ok(())
                }
            },
        )
        .await?;
        eprintln!("running: append, {writers} writer(s), libsql directly ...");
        let mut direct = baseline.appends(writers, args.duration)?;
        direct.label = format!("append, {writers} writer(s), libsql directly");
        ratios.push(format!(
            "{writers} writer(s): aigw does {:.0} % of the direct appends/s; p50 {:.2}× the direct one",
            100.0 * through.per_second() / direct.per_second().max(f64::MIN_POSITIVE),
            f64::from(through.p50()) / f64::from(direct.p50().max(1))
        ));
        rows.push(through.row());
        rows.push(direct.row());
    }
    drop(baseline);
    println!("{HEADER}\n{}\n\n{}\n", rows.join("\n"), ratios.join("\n"));

    // Reads.
    let mut rows = Vec::new();
    let history = http.create_conversation().await?;
    for chunk in 0..4 {
        let items = (0..50).map(|n| text_item(chunk * 50 + n)).collect();
        http.append(&history, items).await?;
    }
    eprintln!("running: history read (200 items) ...");
    rows.push(
        concurrent(
            "history read, 200 items (2 pages of 100)".into(),
            1,
            args.duration,
            |_| {
                let http = http.clone();
                let history = history.clone();
                async move {
                    let read = http.history(&history).await?;
                    if read != 200 {
                        bail!("read {read} items, not 200");
                    }
                    Ok(())
                }
            },
        )
        .await?
        .row(),
    );
    for n in 0..1000 {
        http.put_entry(n).await?;
    }
    eprintln!("running: key-value get ...");
    rows.push(
        concurrent("key-value get".into(), 1, args.duration, |n| {
            let http = http.clone();
            async move { http.get_entry(n % 1000).await }
        })
        .await?
        .row(),
    );
    eprintln!(
        "filling a conversation with {} searchable items ...",
        args.search_items
    );
    let searched = http.create_conversation().await?;
    let started = Instant::now();
    let mut filled = 0;
    while filled < args.search_items {
        let batch: Vec<Value> = (filled..(filled + 100).min(args.search_items))
            .map(search_item)
            .collect();
        filled += batch.len();
        http.append(&searched, batch).await?;
        if filled % 20_000 == 0 {
            eprintln!(
                "  {filled} items ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!("running: full-text search ...");
    rows.push(
        concurrent(
            format!("full-text search over {} items", args.search_items),
            1,
            args.duration,
            |n| {
                let http = http.clone();
                async move { http.search(WORDS[n % WORDS.len()]).await }
            },
        )
        .await?
        .row(),
    );
    println!("{HEADER}\n{}\n", rows.join("\n"));

    // Session-aware chat against a plain one.
    let session = http.create_conversation().await?;
    http.append(&session, (0..20).map(text_item).collect())
        .await?;
    eprintln!("running: chat, plain ...");
    let mut plain = concurrent("chat completion, plain".into(), 1, args.duration, |_| {
        let http = http.clone();
        async move { http.chat(None).await }
    })
    .await?;
    eprintln!("running: chat, session-aware ...");
    let mut aware = concurrent(
        "chat completion, session-aware (x-aigw-conversation)".into(),
        1,
        args.duration,
        |_| {
            let http = http.clone();
            let session = session.clone();
            async move { http.chat(Some(&session)).await }
        },
    )
    .await?;
    let added = i64::from(aware.p50()) - i64::from(plain.p50());
    println!(
        "{HEADER}\n{}\n{}\n\nsession-aware chat adds {:+.2} ms at p50 (history: the last 100 items \
         at most; the turn is appended before the answer is sent)\n",
        plain.row(),
        aware.row(),
        added as f64 / 1000.0
    );
    if let Some(kib) = aigw.peak_rss() {
        println!("aigw peak RSS (VmHWM): {:.1} MiB", kib as f64 / 1024.0);
    }
    aigw.stop().await;
    drop(mock);
    Ok(())
}

/// Runs `op` from `workers` concurrent loops for `duration`; `op` gets a running number.
async fn concurrent<F, Fut>(
    label: String,
    workers: usize,
    duration: Duration,
    op: F,
) -> Result<Measured>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let started = Instant::now();
    let end = started + duration;
    let counter = std::cell::Cell::new(0usize);
    let loops = (0..workers).map(|_| async {
        let mut latencies = Vec::new();
        while Instant::now() < end {
            let n = counter.get();
            counter.set(n + 1);
            let at = Instant::now();
            op(n).await?;
            latencies.push(u32::try_from(at.elapsed().as_micros()).unwrap_or(u32::MAX));
        }
        Ok::<_, anyhow::Error>(latencies)
    });
    let mut latencies_us = Vec::new();
    for result in futures_util::future::join_all(loops).await {
        latencies_us.extend(result?);
    }
    Ok(Measured {
        label,
        latencies_us,
        elapsed: started.elapsed(),
    })
}

fn text_item(n: usize) -> Value {
    json!({"type": "message", "role": "user", "content": format!("message number {n} of the benchmark")})
}

/// An item of three words from [`WORDS`], so each query matches about 3/32 of the items.
fn search_item(n: usize) -> Value {
    let word = |k: usize| WORDS[(n.wrapping_mul(2_654_435_761) >> k) % WORDS.len()];
    json!({"type": "message", "role": "user", "content": format!("{} {} {} item {n}", word(0), word(7), word(13))})
}

/// The gateway's HTTP API, as the scenarios call it.
#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value> {
        let response = request.send().await?;
        let status = response.status();
        let body = response.text().await?;
        if !status.is_success() {
            bail!("{status}: {body}");
        }
        Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    async fn create_conversation(&self) -> Result<String> {
        let body = self
            .send(
                self.client
                    .post(format!("{}/v1/conversations", self.base))
                    .json(&json!({})),
            )
            .await?;
        body["id"]
            .as_str()
            .map(str::to_owned)
            .context("no conversation id")
    }

    async fn append(&self, conversation: &str, items: Vec<Value>) -> Result<()> {
        let url = format!("{}/v1/conversations/{conversation}/items", self.base);
        self.send(self.client.post(url).json(&json!({ "items": items })))
            .await
            .map(drop)
    }

    /// Reads every item, 100 per page; how many there were.
    async fn history(&self, conversation: &str) -> Result<usize> {
        let mut count = 0;
        let mut after = String::new();
        loop {
            let mut url = format!(
                "{}/v1/conversations/{conversation}/items?order=asc&limit=100",
                self.base
            );
            if !after.is_empty() {
                url.push_str(&format!("&after={after}"));
            }
            let page = self.send(self.client.get(url)).await?;
            count += page["data"].as_array().map_or(0, Vec::len);
            if page["has_more"] != true {
                return Ok(count);
            }
            after = page["last_id"].as_str().unwrap_or_default().to_owned();
        }
    }

    async fn put_entry(&self, n: usize) -> Result<()> {
        let body = json!({"namespace": ["bench", "entries"], "key": format!("k{n}"), "value": {"n": n, "text": format!("entry {n}")}});
        self.send(
            self.client
                .put(format!("{}/v1/store/items", self.base))
                .json(&body),
        )
        .await
        .map(drop)
    }

    async fn get_entry(&self, n: usize) -> Result<()> {
        let url = format!(
            "{}/v1/store/items?namespace=bench.entries&key=k{n}",
            self.base
        );
        let entry = self.send(self.client.get(url)).await?;
        if entry["value"]["n"] != n {
            bail!("entry k{n} came back as {entry}");
        }
        Ok(())
    }

    async fn search(&self, word: &str) -> Result<()> {
        let url = format!("{}/v1/conversations/search", self.base);
        let hits = self
            .send(
                self.client
                    .post(url)
                    .json(&json!({"query": word, "limit": 10})),
            )
            .await?;
        if hits["data"].as_array().is_none_or(Vec::is_empty) {
            bail!("no hit for {word}: {hits}");
        }
        Ok(())
    }

    async fn chat(&self, conversation: Option<&str>) -> Result<()> {
        let mut request = self
            .client
            .post(format!("{}/v1/chat/completions", self.base))
            .json(&json!({"model": "bench", "messages": [{"role": "user", "content": "hello"}]}));
        if let Some(conversation) = conversation {
            request = request.header("x-aigw-conversation", conversation);
        }
        self.send(request).await.map(drop)
    }
}

/// The baseline: the same item rows inserted straight into a database of the same schema.
struct Baseline {
    path: PathBuf,
    durability: Durability,
    conversation: i64,
}

impl Baseline {
    /// A database migrated by the store (so the schema is the gateway's), with one conversation.
    async fn open(path: &Path, durability: Durability) -> Result<Baseline> {
        let store = Store::open(StoreOptions::new(path)).await?;
        store
            .write(|c| {
                Box::pin(async move {
                    c.execute(
                        "INSERT INTO conversations (id, namespace, created_at, metadata) \
                         VALUES ('conv_baseline', 'default', 0, '{}')",
                        (),
                    )
                    .await?;
                    Ok(())
                })
            })
            .await?;
        drop(store);
        Ok(Baseline {
            path: path.to_owned(),
            durability,
            conversation: 1,
        })
    }

    /// `writers` threads, each with its own connection, inserting one item per transaction.
    fn appends(&self, writers: usize, duration: Duration) -> Result<Measured> {
        let started = Instant::now();
        let end = started + duration;
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..writers)
            .map(|_| {
                let path = self.path.clone();
                let synchronous = match self.durability {
                    Durability::Process => "NORMAL",
                    Durability::Power => "FULL",
                };
                let conversation = self.conversation;
                let next = Arc::clone(&next);
                std::thread::spawn(move || -> Result<Vec<u32>> {
                    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
                    runtime.block_on(async move {
                        let db = libsql::Builder::new_local(&path).build().await?;
                        let c = db.connect()?;
                        c.busy_timeout(Duration::from_secs(5))?;
                        let mut rows = c.query("PRAGMA journal_mode = WAL", ()).await?;
                        drop(rows.next().await?);
                        drop(rows);
                        c.execute_batch(&format!("PRAGMA synchronous = {synchronous}"))
                            .await?;
                        let mut latencies = Vec::new();
                        while Instant::now() < end {
                            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let item = text_item(n);
                            let text = format!("message number {n} of the benchmark");
                            let at = Instant::now();
                            c.execute(
                                "INSERT INTO conversation_items \
                                 (id, conversation, namespace, item, text, agent, created_at) \
                                 VALUES (?1, ?2, 'default', ?3, ?4, NULL, 0)",
                                libsql::params![
                                    format!("msg_baseline_{writers}_{n}"),
                                    conversation,
                                    item.to_string(),
                                    text
                                ],
                            )
                            .await?;
                            latencies
                                .push(u32::try_from(at.elapsed().as_micros()).unwrap_or(u32::MAX));
                        }
                        Ok(latencies)
                    })
                })
            })
            .collect();
        let mut latencies_us = Vec::new();
        for thread in threads {
            match thread.join() {
                Ok(result) => latencies_us.extend(result?),
                Err(_) => bail!("a baseline writer panicked"),
            }
        }
        Ok(Measured {
            label: String::new(),
            latencies_us,
            elapsed: started.elapsed(),
        })
    }
}
