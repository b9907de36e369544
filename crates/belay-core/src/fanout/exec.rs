//! One untracked command on one host, and how it ended. The command goes
//! as `ssh HOST CMD` sends it: on an exec channel, evaluated by the user's
//! login shell there (`sh -c` on `local`). Nothing is recorded.
//!
//! `--timeout D` bounds the whole host: a host whose connection is not
//! made within D is `unreachable` (that is what the user can act on: the
//! link), a command still running at D is `timeout` (its channel is
//! closed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use belay_ssh::{Client, JumpCache, SshError};
use serde::Serialize;

use super::Gateways;
use crate::hosts::Hosts;

/// How long a command may run when no `--timeout` is given.
const NO_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// How one host's command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    /// Ran and exited 0.
    Ok,
    /// Ran and exited non-zero (or was killed by a signal).
    Failed,
    /// No connection (or it broke): the command's fate is unknown.
    Unreachable,
    /// Still running when `--timeout` ran out.
    Timeout,
}

impl HostStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HostStatus::Ok => "ok",
            HostStatus::Failed => "failed",
            HostStatus::Unreachable => "unreachable",
            HostStatus::Timeout => "timeout",
        }
    }
}

/// One host's outcome.
#[derive(Debug, Clone)]
pub struct HostResult {
    pub host: String,
    pub status: HostStatus,
    /// The command's exit status (128+N for signal N), when it ended.
    pub exit_code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// From the start of this host's turn to its end.
    pub elapsed: Duration,
    /// The real SSH error (unreachable) or what ran out (timeout).
    pub error: Option<String>,
}

impl HostResult {
    /// The stable JSON shape (`belay exec --json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "host": self.host,
            "status": self.status,
            "exit_code": self.exit_code,
            "stdout": String::from_utf8_lossy(&self.stdout),
            "stderr": String::from_utf8_lossy(&self.stderr),
            "ms": self.elapsed.as_millis() as u64,
            "error": self.error,
        })
    }
}

/// Per-run choices.
#[derive(Debug, Clone, Copy)]
pub struct ExecOptions {
    /// Hosts in flight at once.
    pub parallel: usize,
    /// Bound per host (connection and command).
    pub timeout: Option<Duration>,
}

/// Runs the shell command line `line` on every host of `names` (see the
/// module docs), calling `done` as each host ends; results in `names`'
/// order. Blocks on the process's SSH runtime.
pub fn exec(
    hosts: &Hosts,
    names: Vec<String>,
    line: &str,
    opts: ExecOptions,
    done: impl FnMut(&HostResult),
) -> Vec<HostResult> {
    let gateways = Gateways::default();
    let jumps = Arc::new(JumpCache::default());
    crate::transport::ssh::runtime().block_on(super::bounded(
        names,
        opts.parallel,
        |host| one(hosts, &gateways, &jumps, host, line, opts.timeout),
        done,
    ))
}

async fn one(
    hosts: &Hosts,
    gateways: &Gateways,
    jumps: &Arc<JumpCache>,
    host: String,
    line: &str,
    timeout: Option<Duration>,
) -> HostResult {
    let started = Instant::now();
    let limit = timeout.unwrap_or(NO_TIMEOUT);
    let end = |status, exit_code, out: Option<(Vec<u8>, Vec<u8>)>, error| {
        let (stdout, stderr) = out.unwrap_or_default();
        HostResult {
            host: host.clone(),
            status,
            exit_code,
            stdout,
            stderr,
            elapsed: started.elapsed(),
            error,
        }
    };
    if Hosts::is_local(&host) {
        return match local(line, limit).await {
            Ok(Some(out)) => {
                let status = if out.status.success() {
                    HostStatus::Ok
                } else {
                    HostStatus::Failed
                };
                end(
                    status,
                    Some(exit_code(out.status)),
                    Some((out.stdout, out.stderr)),
                    None,
                )
            }
            Ok(None) => end(
                HostStatus::Timeout,
                None,
                None,
                Some(format!("still running after {}", show(limit))),
            ),
            Err(e) => end(
                HostStatus::Unreachable,
                None,
                None,
                Some(format!("cannot start /bin/sh: {e}")),
            ),
        };
    }
    let mut opts = hosts.client_options(&host);
    opts.op_timeout = limit;
    opts.jump_cache = Some(jumps.clone());
    let client = Client::new(&host, opts);
    // Pace the handshakes with one sshd: the host's own, reached directly
    // or through its (shared) jump connection.
    let gateway = match client.resolve_for_connect().await {
        Ok(chain) => chain
            .hops()
            .map(|h| format!("{}:{}", h.hostname, h.port))
            .collect::<Vec<_>>()
            .join(">"),
        Err(e) => return end(HostStatus::Unreachable, None, None, Some(e.to_string())),
    };
    let connected = {
        let slots = gateways.slots(&gateway);
        let _slot = slots.acquire().await;
        let left = limit.saturating_sub(started.elapsed());
        tokio::time::timeout(left, client.connect_info()).await
    };
    match connected {
        Err(_) => {
            return end(
                HostStatus::Unreachable,
                None,
                None,
                Some(format!("no connection within {}", show(limit))),
            );
        }
        Ok(Err(e)) => return end(HostStatus::Unreachable, None, None, Some(e.to_string())),
        Ok(Ok(_)) => {}
    }
    let left = limit.saturating_sub(started.elapsed());
    let r = match tokio::time::timeout(left, client.exec(line, b"")).await {
        Err(_) | Ok(Err(SshError::Timeout { .. })) => end(
            HostStatus::Timeout,
            None,
            None,
            Some(format!("still running after {}", show(limit))),
        ),
        Ok(Err(e)) => end(HostStatus::Unreachable, None, None, Some(e.to_string())),
        Ok(Ok(out)) => {
            let status = if out.status == 0 {
                HostStatus::Ok
            } else {
                HostStatus::Failed
            };
            end(
                status,
                Some(out.status),
                Some((out.stdout, out.stderr)),
                None,
            )
        }
    };
    client.disconnect().await;
    r
}

/// `sh -c LINE` here, killed when it outlives `limit` (`None`).
async fn local(line: &str, limit: Duration) -> std::io::Result<Option<std::process::Output>> {
    let child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(line)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(out) => out.map(Some),
        Err(_) => Ok(None),
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
