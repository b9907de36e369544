//! How the CLI finds its daemon: use the one that answers on the socket;
//! if none does, start `belay serve --background` (fully detached: a new
//! session, stdio to `serve.log`, no inherited descriptors, so a harness
//! waiting on the CLI's pipes never waits on the daemon), wait for it to
//! answer (bounded), and use it. A daemon of another build is stopped and
//! replaced, with one line saying so. When none can be had, the caller
//! works directly, as without a daemon. A daemon's card ([`crate::card`])
//! answers "who serves?" without a round trip when it is the current
//! daemon's and of this build.

use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use belay_core::home::BelayHome;
use serde::Deserialize;

use crate::client::{Client, ClientError};
use crate::location::DaemonLocation;

/// How long a CLI waits for a daemon it started to answer.
const START_WAIT: Duration = Duration::from_secs(5);
/// How long a CLI waits for a daemon it asked to stop to let go of the lock.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// What a daemon says about itself (`GET /v1/daemon`).
#[derive(Debug, Deserialize)]
pub struct DaemonInfo {
    pub version: String,
    pub build: String,
    pub pid: u32,
    pub home: String,
    pub started_at: String,
    pub requests_in_flight: u64,
    /// The OpenSSH config file its hosts are resolved with (None: ssh's
    /// default).
    pub ssh_config: Option<String>,
    /// Where it serves the API on TCP (`serve --listen`), if it does.
    #[serde(default)]
    pub listen: Option<String>,
    /// It serves `listen` with TLS.
    #[serde(default)]
    pub tls: bool,
}

/// The daemon for `home`, started if none answers and `start` is true.
/// `ssh_config` is the OpenSSH config this command resolves hosts with: a
/// daemon that reads another is not used (the command works directly).
/// `None`: work directly (the reason is logged).
pub fn connect(home: &BelayHome, start: bool, ssh_config: Option<PathBuf>) -> Option<Client> {
    let location = DaemonLocation::new(home);
    let client = Client::new(&location.socket());
    let ours = ssh_config.as_ref().map(|p| p.display().to_string());
    // The card of the daemon serving now, of this build: no question needed.
    if let Some(card) = crate::card::read(&location)
        && card.build == crate::build::identity()
        && crate::card::is_current(&location, &card)
    {
        if card.ssh_config != ours {
            tracing::info!(
                "the daemon reads ssh config {:?}, this command {ours:?}: working without it",
                card.ssh_config
            );
            return None;
        }
        return Some(client);
    }
    match client.get::<DaemonInfo>("/v1/daemon") {
        Ok(info) if info.build == crate::build::identity() => {
            if info.ssh_config != ours {
                tracing::info!(
                    "the daemon reads ssh config {:?}, this command {ours:?}: working without it",
                    info.ssh_config
                );
                return None;
            }
            return Some(client);
        }
        Ok(info) => {
            eprintln!(
                "belay: the daemon (pid {}) is another build of belay ({}; this is {}): restarting it",
                info.pid,
                info.build,
                crate::build::identity()
            );
            if let Err(e) = stop(home) {
                tracing::warn!("could not replace the daemon: {e}");
                return None;
            }
        }
        Err(e) => tracing::debug!("no daemon: {e}"),
    }
    if !start {
        return None;
    }
    if let Err(e) = spawn(home, &location, ssh_config.as_deref()) {
        tracing::warn!("could not start the daemon ({e}); working without it");
        return None;
    }
    let deadline = Instant::now() + START_WAIT;
    loop {
        match client.get::<DaemonInfo>("/v1/daemon") {
            Ok(info) if info.ssh_config == ours => return Some(client),
            Ok(_) => return None,
            Err(e) if Instant::now() >= deadline => {
                tracing::warn!(
                    "the daemon did not answer within {}s ({e}; see {}); working without it",
                    START_WAIT.as_secs(),
                    location.log().display()
                );
                return None;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Ask the daemon for `home` to stop and wait until it has (its lock is
/// free). Ok when none was running.
pub fn stop(home: &BelayHome) -> Result<Option<u32>, ClientError> {
    let location = DaemonLocation::new(home);
    let client = Client::new(&location.socket());
    let pid = match client.delete::<serde_json::Value>("/v1/daemon") {
        Ok(v) => v["pid"].as_u64().map(|p| p as u32),
        Err(ClientError::Unavailable { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let deadline = Instant::now() + STOP_WAIT;
    while !crate::lock::is_free(&location.lock()) {
        if Instant::now() >= deadline {
            return Err(ClientError::Unavailable {
                socket: location.socket().display().to_string(),
                message: format!(
                    "was asked to stop but still runs after {}s",
                    STOP_WAIT.as_secs()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(pid)
}

/// Environment variables a daemon this process starts must not inherit:
/// the names of `run --secret`s read from the environment (their values
/// reach the daemon in the submit request, and only for as long as it
/// needs them; an inherited copy would stay in its environment for good).
static WITHHELD: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Adds `names` to the variables withheld from a daemon started here.
pub fn withhold_env(names: &[String]) {
    let mut w = WITHHELD.lock().unwrap_or_else(|p| p.into_inner());
    w.extend(names.iter().cloned());
}

fn spawn(
    home: &BelayHome,
    location: &DaemonLocation,
    ssh_config: Option<&Path>,
) -> std::io::Result<()> {
    belay_core::store::create_private_dir(home.root())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(location.log())?;
    let exe = std::env::current_exe()?;
    let mut command = Command::new(exe);
    command
        .args(["serve", "--background"])
        .args(
            ssh_config
                .map(|c| [std::ffi::OsStr::new("--ssh-config"), c.as_os_str()])
                .into_iter()
                .flatten(),
        )
        .env("BELAY_HOME", home.root())
        // A test's crash hook is for the command it was set on, never for
        // a daemon that outlives it.
        .env_remove("BELAY_FAILPOINT")
        // Started from inside a job, the daemon is still no part of it: a
        // cancel sweeps the processes carrying the job's BELAY_JOB_DIR.
        .env_remove("BELAY_JOB_ID")
        .env_remove("BELAY_JOB_DIR")
        .env_remove("BELAY_INPUTS")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .current_dir(Path::new("/"));
    for name in WITHHELD.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        command.env_remove(name);
    }
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Every descriptor beyond stdio closes at exec: the daemon
            // holds no pipe of whoever started this CLI.
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            Ok(())
        });
    }
    let child = command.spawn()?;
    // Not waited for: it outlives this CLI (init reaps it).
    drop(child);
    Ok(())
}
