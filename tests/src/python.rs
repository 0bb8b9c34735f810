//! Running a check script of the official Python SDKs (`tests/python/*.py`) against a running
//! gateway: the venv's Python (`paths::python`, `AIGW_PYTHON`) with the packages the script
//! imports, no stdin, no key of the developer's, no proxy for loopback, at most two minutes, and a
//! failure that shows the script's output and the gateway's log. Each script prints `ok <check>`
//! per check it passed; the test names the checks it expects.

use std::process::Stdio;
use std::time::Duration;

use crate::gateway::Gateway;
use crate::paths;

/// How long one script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// A check script and what it needs.
pub struct Check<'a> {
    /// Its file name in `tests/python/`.
    pub script: &'a str,
    /// The modules it imports, as `import` takes them (`"openai, agents"`).
    pub imports: &'a str,
    /// Extra environment (the base URL is always given as `AIGW_BASE_URL`).
    pub env: &'a [(&'a str, &'a str)],
    /// The `ok …` lines it must print.
    pub expect: &'a [&'a str],
}

impl Check<'_> {
    /// Runs the script against `gateway` and returns its stdout.
    ///
    /// # Panics
    /// When Python or a package is missing, the script fails or times out, or an expected
    /// check is not printed: the message carries the script's output and the gateway's log.
    pub async fn run(&self, gateway: &Gateway) -> String {
        let python = paths::python();
        let hint = format!(
            "`cargo xtask test` installs the SDKs into target/py (or set AIGW_PYTHON to a Python \
             that can `import {}`)",
            self.imports
        );
        let import = std::process::Command::new(&python)
            .args(["-c", &format!("import {}", self.imports)])
            .output();
        match import {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "{} cannot `import {}`: {hint}\n{}",
                python.display(),
                self.imports,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!("cannot run {}: {e}; {hint}", python.display()),
        }
        let script = paths::workspace_root()
            .join("tests/python")
            .join(self.script);
        let run = tokio::process::Command::new(&python)
            .arg(&script)
            .env("AIGW_BASE_URL", gateway.url("/v1"))
            .envs(self.env.iter().copied())
            .env_remove("OPENAI_API_KEY")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = match tokio::time::timeout(SCRIPT_TIMEOUT, run).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => panic!("cannot run {}: {e}", script.display()),
            Err(_) => panic!("{} did not finish within {SCRIPT_TIMEOUT:?}", self.script),
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{} failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- gateway ---\n{}",
            self.script,
            output.status,
            gateway.stderr()
        );
        for check in self.expect {
            assert!(
                stdout.contains(check),
                "`{check}` missing from {}:\n{stdout}",
                self.script
            );
        }
        stdout
    }
}
