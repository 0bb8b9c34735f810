//! What the benchmark binaries (`bench`, `memory-bench`) share: child servers that announce
//! their address, and percentiles.

use std::future::Future;
use std::net::SocketAddr;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a server may take to print `listening on <addr>`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A child server that announced its address with `listening on <addr>`. Killed on drop.
pub struct Server {
    name: &'static str,
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `cmd` and waits for its `listening on <addr>` line; its other output goes to
    /// stderr.
    pub async fn start(name: &'static str, mut cmd: Command) -> Result<Server> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", cmd.as_std().get_program()))?;
        let stdout = child.stdout.take().context("child stdout was not piped")?;
        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(STARTUP_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = listening_addr(&line) {
                    return Ok(Some(addr));
                }
                eprintln!("[{name}] {line}");
            }
            Ok::<_, std::io::Error>(None)
        })
        .await;
        let addr = match found {
            Ok(Ok(Some(addr))) => addr,
            Ok(Ok(None)) | Ok(Err(_)) => {
                let status = match child.wait().await {
                    Ok(status) => status.to_string(),
                    Err(e) => format!("status unknown: {e}"),
                };
                bail!("{name} exited ({status}) without printing `listening on <addr>`");
            }
            Err(_) => bail!(
                "{name} did not print `listening on <addr>` within {}s",
                STARTUP_TIMEOUT.as_secs()
            ),
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[{name}] {line}");
            }
        });
        Ok(Server { name, child, addr })
    }

    /// Peak resident set size in KiB, from `/proc/<pid>/status` (`VmHWM`).
    pub fn peak_rss(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The process id, while the process runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn stop(&mut self) {
        if let Err(e) = self.child.kill().await {
            eprintln!("bench: stopping {}: {e}", self.name);
        }
    }
}

/// CPU time a process has used so far (user + system, all its threads), from
/// `/proc/<pid>/stat`; `None` off Linux or once the process is gone.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    parse_cpu_time(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_cpu_time(stat: &str) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    // Field 3 is then the first, so utime (14) and stime (15) are the 12th and 13th.
    let mut fields = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    // /proc counts in USER_HZ ticks, which the kernel ABI fixes at 100 per second.
    Some(Duration::from_millis((user + system) * 10))
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split_once("listening on ")?.1.trim();
    let rest = rest.strip_prefix("http://").unwrap_or(rest);
    rest.split_whitespace()
        .next()?
        .trim_end_matches('/')
        .parse()
        .ok()
}

/// A benchmark binary's `main`: its arguments (a bad one prints `usage` and exits 2), then
/// `bench` on one tokio thread, so the servers under test get the rest of the machine.
pub fn main<A, F, Fut>(name: &str, usage: &str, args: Result<A, String>, bench: F) -> ExitCode
where
    F: FnOnce(A) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let args = match args {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("{name}: {message}");
            }
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{name}: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use std::time::{Duration, Instant};

    use super::{cpu_time, listening_addr, parse_cpu_time, percentile};

    #[test]
    fn cpu_time_is_read_after_the_command_name_even_when_it_holds_parentheses() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(parse_cpu_time(stat), Some(Duration::from_millis(3250)));
        assert_eq!(parse_cpu_time("4242 (truncated) S 1"), None);
    }

    #[test]
    fn cpu_time_of_this_process_grows_while_it_works() {
        let pid = std::process::id();
        let before = cpu_time(pid).expect("/proc/self/stat is readable");
        // Work until the next 10 ms tick is counted; the bound only stops a broken parse.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut spins = 0u64;
        while cpu_time(pid).expect("readable") <= before && Instant::now() < deadline {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
        assert!(
            cpu_time(pid).expect("readable") > before,
            "utime + stime never grew"
        );
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), 50);
        assert_eq!(percentile(&values, 99.0), 99);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn listening_line_is_parsed_with_or_without_scheme() {
        let addr = "127.0.0.1:4000".parse().ok();
        assert_eq!(listening_addr("listening on 127.0.0.1:4000"), addr);
        assert_eq!(
            listening_addr("aigw listening on http://127.0.0.1:4000/"),
            addr
        );
        assert_eq!(listening_addr("starting"), None);
    }
}
