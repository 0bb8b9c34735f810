//! `mock-upstream [--listen 127.0.0.1:0] [--flavor groq|openai|cerebras|openrouter|novita|huggingface|gemini|replicate] [--no-record]`
//! `mock-upstream [--listen 127.0.0.1:0] --tool-api open-meteo|finnhub|alphavantage|newsapi|gnews|searxng|brave|tavily`
//!
//! Serves the scriptable mock provider (see `aigw_tests::mock`), or with `--tool-api` one mock
//! tool API (see `aigw_tests::mock::tools`; point every endpoint of that upstream at
//! `http://<addr>`), until killed. Prints exactly one
//! line, `listening on <addr>`, to stdout once bound. The base URL to configure is
//! `http://<addr>` plus the flavor's `Flavor::base_url_path`: `/openai/v1` for Groq, `/v1` for
//! OpenAI, Cerebras, Hugging Face and Replicate, `/api/v1` for OpenRouter, `/openai` for Novita,
//! `/v1beta` for Gemini.

use std::process::ExitCode;

use aigw_tests::mock::tools::{ToolApi, ToolMock};
use aigw_tests::mock::{Flavor, MockUpstream};

const USAGE: &str = "usage: mock-upstream [--listen 127.0.0.1:0] [--flavor groq|openai|cerebras|openrouter|novita|huggingface|gemini|replicate] [--no-record]\n       mock-upstream [--listen 127.0.0.1:0] --tool-api open-meteo|finnhub|alphavantage|newsapi|gnews|searxng|brave|tavily";

struct Args {
    listen: String,
    flavor: Flavor,
    record: bool,
    tool_api: Option<ToolApi>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: "127.0.0.1:0".to_owned(),
        flavor: Flavor::OpenAi,
        record: true,
        tool_api: None,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--listen" => args.listen = argv.next().ok_or("--listen needs an address")?,
            "--flavor" => {
                args.flavor = match argv.next().as_deref() {
                    Some("groq") => Flavor::Groq,
                    Some("openai") => Flavor::OpenAi,
                    Some("cerebras") => Flavor::Cerebras,
                    Some("openrouter") => Flavor::OpenRouter,
                    Some("novita") => Flavor::Novita,
                    Some("huggingface") => Flavor::HuggingFace,
                    Some("gemini") => Flavor::Gemini,
                    Some("replicate") => Flavor::Replicate,
                    other => {
                        return Err(format!(
                            "--flavor must be groq, openai, cerebras, openrouter, novita, \
                             huggingface, gemini or replicate, not {other:?}"
                        ));
                    }
                }
            }
            "--tool-api" => {
                let name = argv.next().ok_or("--tool-api needs an API name")?;
                args.tool_api = Some(ToolApi::from_name(&name).ok_or_else(|| {
                    let names: Vec<&str> = ToolApi::ALL.iter().map(|api| api.name()).collect();
                    format!(
                        "--tool-api must be one of {}, not {name:?}",
                        names.join(", ")
                    )
                })?);
            }
            // Recording every request would grow without bound in a long benchmark run.
            "--no-record" => args.record = false,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("mock-upstream: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Some(api) = args.tool_api {
        let mock = match ToolMock::bind(&args.listen, api).await {
            Ok(mock) => mock,
            Err(e) => {
                eprintln!("mock-upstream: cannot listen on {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        println!("listening on {}", mock.addr());
        let _ = tokio::signal::ctrl_c().await;
        drop(mock);
        return ExitCode::SUCCESS;
    }
    let mock = match MockUpstream::bind(&args.listen, args.flavor, args.record).await {
        Ok(mock) => mock,
        Err(e) => {
            eprintln!("mock-upstream: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", mock.addr());
    // Serve until killed; Ctrl-C ends it cleanly.
    let _ = tokio::signal::ctrl_c().await;
    drop(mock);
    ExitCode::SUCCESS
}
