//! Small process helpers shared by the test hosts: running a command and
//! turning its failure into an `io::Error` that carries its stderr, finding a
//! process's descendants through `/proc`, signalling pids we own, and
//! checking prerequisites up front so tests fail loudly instead of skipping.

use std::io;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Something a test bed needs from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prerequisite {
    /// Running as uid 0 (network namespaces, sshd privilege separation).
    Root,
    /// `/usr/sbin/sshd`, `ssh`, `ssh-keygen`, `ssh-agent`, `ssh-add`.
    OpenSsh,
    /// `ip` from iproute2 (network namespaces).
    IpRoute,
    /// Slurm's daemons and commands and munge (`slurm-wlm`, `munge`).
    Slurm,
}

const INSTALL_HINT: &str = "install with: apt-get update && apt-get install -y \
--no-install-recommends openssh-server openssh-client iproute2 nftables";

/// Checks prerequisites and returns an error naming the first one missing
/// and how to get it. Tests call this first and `expect()` the result, so a
/// machine without sshd fails with a clear message rather than skipping.
pub fn require(what: &[Prerequisite]) -> io::Result<()> {
    for p in what {
        match p {
            Prerequisite::Root => {
                // SAFETY: geteuid has no preconditions and cannot fail.
                if unsafe { libc::geteuid() } != 0 {
                    return Err(io::Error::other(
                        "this test needs root (network namespaces / sshd privilege separation); \
                         run the test suite as root",
                    ));
                }
            }
            Prerequisite::OpenSsh => {
                for bin in [
                    "/usr/sbin/sshd",
                    "/usr/bin/ssh",
                    "/usr/bin/ssh-keygen",
                    "/usr/bin/ssh-agent",
                    "/usr/bin/ssh-add",
                ] {
                    if !Path::new(bin).exists() {
                        return Err(io::Error::other(format!(
                            "{bin} is missing; {INSTALL_HINT}"
                        )));
                    }
                }
            }
            Prerequisite::Slurm => {
                for bin in [
                    "/usr/sbin/slurmctld",
                    "/usr/sbin/slurmd",
                    "/usr/bin/sbatch",
                    "/usr/sbin/munged",
                    "/usr/sbin/mungekey",
                    "/usr/bin/nsenter",
                ] {
                    if !Path::new(bin).exists() {
                        return Err(io::Error::other(format!(
                            "{bin} is missing; install with: apt-get update && apt-get install -y \
                             --no-install-recommends slurm-wlm munge"
                        )));
                    }
                }
            }
            Prerequisite::IpRoute => {
                if !Path::new("/usr/sbin/ip").exists() && !Path::new("/sbin/ip").exists() {
                    return Err(io::Error::other(format!("`ip` is missing; {INSTALL_HINT}")));
                }
            }
        }
    }
    Ok(())
}

/// Runs `cmd` to completion; a non-zero exit becomes an error with the
/// command line and its stderr.
pub(crate) fn run(cmd: &mut Command) -> io::Result<Output> {
    let out = cmd
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("spawning {:?}: {e}", cmd.get_program())))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{:?} failed ({}): {}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

/// Shorthand: run `sh -c SCRIPT`.
pub(crate) fn sh(script: &str) -> io::Result<Output> {
    run(Command::new("/bin/sh").arg("-c").arg(script))
}

/// Parent pid of `pid`, from `/proc/PID/stat` (None if it is gone).
fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// All live descendants of `root` (children, grandchildren, ...).
pub(crate) fn descendants(root: u32) -> Vec<u32> {
    let mut all: Vec<(u32, u32)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
                && let Some(pp) = ppid(pid)
            {
                all.push((pid, pp));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &all {
            if pp == p && !out.contains(&c) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

/// Sends `sig` to `pid` (one of ours). Errors are ignored: the process may
/// already be gone.
pub(crate) fn signal(pid: u32, sig: i32) {
    if pid > 1 {
        // SAFETY: kill(2) with a specific positive pid has no memory effects.
        unsafe {
            libc::kill(pid as libc::pid_t, sig);
        }
    }
}

/// True while `pid` exists and is not a zombie.
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s.get(i + 2..i + 3))
            .is_some_and(|st| st != "Z"),
        Err(_) => false,
    }
}

/// Polls `f` every 10 ms until it returns true or `deadline` passes (the
/// tests' one way to wait: never a bare sleep).
pub fn wait_until(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The processes whose command line matches `pattern` (`pgrep -af`, an
/// extended regex), one line each: what a test checks was left behind.
pub fn processes_matching(pattern: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-af", pattern])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}
