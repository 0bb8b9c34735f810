//! `aigw check`: resolves a good config, and points at the line of a bad one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aigw_tests::gateway::aigw;
use aigw_tests::setup::{plugins_section, toml_str};

fn write_config(dir: &tempfile::TempDir, toml: &str) -> std::path::PathBuf {
    let path = dir.path().join("aigw.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

const PROVIDERS: &str = r#"
[providers.groq]
plugin = "groq"
api_key = "gsk_check_not_a_real_key"

[providers.local]
plugin = "openai-compatible"
base_url = "http://127.0.0.1:11434/v1"
"#;

#[test]
fn check_accepts_a_good_config_and_prints_its_routes() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}{PROVIDERS}\n[models.fast]\ntargets = [\"groq/llama-3.1-8b-instant\", \"local/llama3.2\"]\n",
        plugins_section()
    );
    let path = write_config(&dir, &config);

    let output = aigw(["check", "--config", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for route in ["fast", "groq/llama-3.1-8b-instant", "local/llama3.2"] {
        assert!(stdout.contains(route), "`{route}` missing from:\n{stdout}");
    }
    assert!(
        !stdout.contains("gsk_check_not_a_real_key"),
        "check printed the key:\n{stdout}"
    );
}

#[test]
fn check_rejects_an_unknown_key_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}{PROVIDERS}\n[models.fast]\ntargets = [\"local/llama3.2\"]\nretry_count = 3\n",
        plugins_section()
    );
    let line = config
        .lines()
        .position(|l| l.starts_with("retry_count"))
        .unwrap()
        + 1;
    let path = write_config(&dir, &config);

    let output = aigw(["check", "--config", path.to_str().unwrap()]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!("aigw.toml:{line}:")),
        "expected `aigw.toml:{line}:COL:` in:\n{all}"
    );
    assert!(
        all.contains("retry_count"),
        "the message must name the key:\n{all}"
    );
}

#[test]
fn check_rejects_a_target_naming_an_unconfigured_provider() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}{PROVIDERS}\n[models.fast]\ntargets = [{}]\n",
        plugins_section(),
        toml_str("openrouter/some-model")
    );
    let path = write_config(&dir, &config);

    let output = aigw(["check", "--config", path.to_str().unwrap()]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(
        all.contains("openrouter"),
        "the message must name the provider:\n{all}"
    );
}

#[test]
fn the_shipped_default_config_checks_with_no_keys_set() {
    let config = aigw_tests::paths::workspace_root().join("aigw.toml");
    let output = std::process::Command::new(aigw_tests::paths::aigw_bin())
        .args(["check", "--config"])
        .arg(&config)
        .env_remove("GROQ_API_KEY")
        .env_remove("LOCAL_LLM_BASE_URL")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // The missing key is reported, not fatal, and names the variable to set.
    assert!(
        stdout.contains("groq") && stdout.contains("MISSING (GROQ_API_KEY is not set)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("base_url http://127.0.0.1:11434/v1"),
        "{stdout}"
    );
    // Routes are listed with their resolved policy and targets, in order.
    let fast = stdout
        .find("  fast: strategy Weighted, retries 1")
        .expect(&stdout);
    let groq = stdout[fast..]
        .find("    groq/llama-3.1-8b-instant (priority 0")
        .expect(&stdout);
    let local = stdout[fast..]
        .find("    local/llama3.2 (priority 1")
        .expect(&stdout);
    assert!(groq < local, "{stdout}");
    // The shipped config's `smart` route gives Groq a window and the local server 60 s.
    assert!(
        stdout.contains("groq/llama-3.3-70b-versatile (priority 0, weight 1, window 131072"),
        "{stdout}"
    );
    assert!(stdout.contains("first byte 60000"), "{stdout}");
    assert!(stderr.contains("GROQ_API_KEY is not set"), "{stderr}");
}

/// The plugin crates of one kind (`providers`, `tools`) in `plugins/`, by folder name: the name
/// `cargo xtask plugins` gives their files in dist/plugins.
fn plugin_sources(kind: &str) -> Vec<String> {
    let dir = aigw_tests::paths::workspace_root()
        .join("plugins")
        .join(kind);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn every_built_plugin_loads_as_its_kind_and_describes_itself_under_its_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let providers = plugin_sources("providers");
    let tools = plugin_sources("tools");
    assert!(providers.len() >= 8, "provider plugins: {providers:?}");
    assert_eq!(tools, ["news", "search", "stocks", "weather"]);
    let mut config = plugins_section();
    for (table, names) in [("providers", &providers), ("tools", &tools)] {
        for name in names {
            config.push_str(&format!(
                "\n[{table}.{name}]\nplugin = {}\n",
                toml_str(name)
            ));
        }
    }
    let path = write_config(&dir, &config);
    let output = aigw(["check", "--config", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for name in providers.iter().chain(&tools) {
        // `check` prints `<name>: plugin <described name> <version> (<file>)` for providers
        // and tool plugins alike.
        assert!(
            stdout.contains(&format!("  {name}: plugin {name} 0.1.0 (")),
            "{name} did not load or describes itself under another name:\n{stdout}"
        );
    }
}
