//! File transfer: `push`, `pull`, job inputs and outputs. Resumable,
//! verified, atomic, and built on nothing but POSIX sh, coreutils, GNU find
//! and tar on the host, through [`Transport::open_stream`] — so it works on
//! endpoints without an SFTP subsystem, and on the embedded `local` host.
//!
//! How a copy goes (either direction):
//!
//! 1. **Plan** — list both sides ([`listing`]); a file whose destination has
//!    the same size and mtime is complete and skipped.
//! 2. **Small files** (< [`BIG_FILE`]) travel in batches (up to 10,000
//!    files or 64 MiB, see `plan::batches`), each one tar
//!    stream (no round trip per file). Pushed batches land in a staging
//!    directory beside the destination; pulled entries are checked one by
//!    one ([`crate::paths`]) before anything is written.
//! 3. **Big files** are streamed one by one into `.NAME.belay-part` beside
//!    the final name. A partial left by an earlier run is compared by
//!    checksum of its bytes on both sides and extended, not restarted.
//! 4. **Verify and land** — a [`checksum`] is computed on both ends, per
//!    big file and per small-file archive (which holds every byte of every
//!    file in it); only a match is renamed to its final name (with its mode
//!    and mtime). Nothing half-written ever carries a final name.
//!
//! A lost link is retried (the client reconnects with backoff); each retry
//! plans again, so completed files are skipped and partials resumed.
//!
//! **Two ways to the host** ([`Via`]). The host's shell (`exec`) is the
//! default: the host sums what it received, and small files travel as one
//! archive. Hosts that refuse commands but serve SFTP (sftp-only accounts:
//! `ForceCommand internal-sftp`, storage boxes) are reached over SFTP
//! ([`sftp`]), found out automatically the first time
//! the shell is refused, or chosen with `--via sftp`.

pub mod checksum;
mod destination;
mod exec;
mod landing;
pub mod listing;
mod plan;
pub mod progress;
mod sftp;
mod source;
mod streamio;

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::error::{CoreError, Result};
use crate::transport::{Transport, TransportError};
pub use plan::crlf_warning;
pub use progress::{Progress, Quiet};

/// Files at least this big are streamed alone and resumable mid-file.
pub const BIG_FILE: u64 = 4 << 20;
/// Attempts of one copy when the link drops (the first included).
const ATTEMPTS: u32 = 4;

/// What a copy did (the `--json` summary).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub direction: Direction,
    pub host: String,
    pub source: String,
    pub destination: String,
    pub method: Method,
    /// Regular files in the source.
    pub files: u64,
    pub files_transferred: u64,
    pub files_skipped: u64,
    /// Total size of the source's regular files.
    pub bytes: u64,
    /// File content that crossed the link in this run.
    pub bytes_sent: u64,
    /// Bytes of partials from an earlier run, verified and kept.
    pub bytes_resumed: u64,
    /// Remote entries refused because they would leave the destination.
    pub refused: Vec<String>,
    pub elapsed_ms: u64,
}

impl Summary {
    /// Said after a pull that refused remote entries (each was named as
    /// it was refused).
    pub fn refused_line(&self) -> Option<String> {
        let n = self.refused.len();
        (n > 0).then(|| {
            format!(
                "refused {n} remote entr{} that would have left '{}' (named above); the rest was copied",
                if n == 1 { "y" } else { "ies" },
                self.destination
            )
        })
    }
}

/// Which way a copy goes (`"push"`/`"pull"` in JSON).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Push,
    Pull,
}

/// How a copy reached the host's files (`"exec"`/`"sftp"` in JSON).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    #[default]
    Exec,
    Sftp,
}

/// How a copy reaches the host's files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Via {
    /// The shell; SFTP when the host refuses to run the shell.
    #[default]
    Auto,
    /// The host's `/bin/sh`, coreutils, find and tar.
    Exec,
    /// The SFTP subsystem only.
    Sftp,
}

impl std::str::FromStr for Via {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Via, String> {
        match s {
            "auto" => Ok(Via::Auto),
            "exec" => Ok(Via::Exec),
            "sftp" => Ok(Via::Sftp),
            other => Err(format!("'{other}' is not one of auto, exec, sftp")),
        }
    }
}

/// Copies a local file or tree to `remote` on the transport's host.
pub fn push(
    t: &dyn Transport,
    local: &Path,
    remote: &str,
    via: Via,
    progress: &mut dyn Progress,
) -> Result<Summary> {
    push_with(t, local, remote, false, via, progress)
}

/// Copies a local file or tree to exactly `remote` (never into it, even
/// when a directory of that name exists: a re-run updates the same copy).
/// The parent of `remote` must exist.
pub fn push_exact(
    t: &dyn Transport,
    local: &Path,
    remote: &str,
    progress: &mut dyn Progress,
) -> Result<Summary> {
    push_with(t, local, remote, true, Via::Auto, progress)
}

fn push_with(
    t: &dyn Transport,
    local: &Path,
    remote: &str,
    exact: bool,
    via: Via,
    progress: &mut dyn Progress,
) -> Result<Summary> {
    let source = local.display().to_string();
    let request = PushRequest {
        local,
        remote,
        exact,
    };
    copy(
        t,
        via,
        Direction::Push,
        &source,
        progress,
        &mut |m, s, progress| match m {
            Mover::Exec => exec::push::run(t, request, progress, s),
            Mover::Sftp(sftp) => sftp::push::run(sftp, t.host(), request, progress, s),
        },
    )
}

/// What one push was asked, for either mover: `local` to `remote`, into
/// it if it is a directory (`cp -r`), or, when `exact`, as it.
#[derive(Clone, Copy)]
pub(crate) struct PushRequest<'a> {
    pub local: &'a Path,
    pub remote: &'a str,
    pub exact: bool,
}

/// Copies a remote file or tree to `local`. Remote entries that would
/// leave `local` are not an error here: they are skipped, reported through
/// `progress`, and listed in [`Summary::refused`] for the caller to judge.
pub fn pull(
    t: &dyn Transport,
    remote: &str,
    local: &Path,
    via: Via,
    progress: &mut dyn Progress,
) -> Result<Summary> {
    copy(
        t,
        via,
        Direction::Pull,
        remote,
        progress,
        &mut |m, s, progress| match m {
            Mover::Exec => exec::pull::run(t, remote, local, progress, s),
            Mover::Sftp(sftp) => sftp::pull::run(sftp, t.host(), remote, local, progress, s),
        },
    )
}

/// The mover a copy attempt runs with.
enum Mover<'a> {
    Exec,
    Sftp(&'a belay_ssh::Sftp),
}

type Attempt<'p> = dyn FnMut(&Mover, &mut Summary, &mut dyn Progress) -> Result<()> + 'p;

/// Runs a copy the way `via` says, with retries, and returns its summary;
/// `Auto` switches to SFTP when the host will not run the shell (nothing
/// was done on it then: the shell is the first thing every exec copy
/// needs).
fn copy(
    t: &dyn Transport,
    via: Via,
    direction: Direction,
    source: &str,
    progress: &mut dyn Progress,
    attempt: &mut Attempt,
) -> Result<Summary> {
    let started = Instant::now();
    let mut summary = Summary {
        direction,
        host: t.host().to_string(),
        source: source.to_string(),
        ..Summary::default()
    };
    run_via(t, via, &mut summary, progress, attempt)?;
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

fn run_via(
    t: &dyn Transport,
    via: Via,
    summary: &mut Summary,
    progress: &mut dyn Progress,
    attempt: &mut Attempt,
) -> Result<()> {
    let mut probed = None;
    if via != Via::Sftp {
        summary.method = Method::Exec;
        let r = with_retries(summary, |s| attempt(&Mover::Exec, s, progress));
        match r {
            Err(CoreError::Transport(TransportError::NoShell { host, message }))
                if via == Via::Auto =>
            {
                match t.open_sftp() {
                    Ok(Some(sftp)) => probed = Some(sftp),
                    Ok(None) => {
                        return Err(TransportError::NoShell { host, message }.into());
                    }
                    Err(e) => {
                        return Err(TransportError::NoShell {
                            host,
                            message: format!("{message}; SFTP failed too: {e}"),
                        }
                        .into());
                    }
                }
            }
            other => return other,
        }
    }
    summary.method = Method::Sftp;
    with_retries(summary, |s| {
        let sftp = match probed.take() {
            Some(sftp) => sftp,
            None => t.open_sftp()?.ok_or_else(|| {
                CoreError::BadInput(format!(
                    "host {} has no SFTP (only SSH hosts do): use --via exec",
                    t.host()
                ))
            })?,
        };
        attempt(&Mover::Sftp(&sftp), s, progress)
    })
}

fn with_retries(
    summary: &mut Summary,
    mut attempt: impl FnMut(&mut Summary) -> Result<()>,
) -> Result<()> {
    let mut n = 1;
    loop {
        // Bytes and files moved add up over attempts; a retry's plan counts
        // the files an earlier attempt landed as complete, which they are
        // for the caller only because this run copied them.
        let landed_before = summary.files_transferred;
        let r = attempt(summary);
        summary.files_skipped = summary.files_skipped.saturating_sub(landed_before);
        match r {
            Err(CoreError::Transport(e)) if e.is_transient() && n < ATTEMPTS => {
                n += 1;
            }
            other => return other,
        }
    }
}

/// Runs a script that may take long without output (summing a big file)
/// on a stream, whose idle limit is generous, rather than as a protocol
/// script with its fixed deadline.
fn long_script(t: &dyn Transport, script: &str) -> Result<crate::transport::ScriptOutput> {
    Ok(streamio::finish_with_output(t.open_stream(script)?)?)
}

fn remote_failure(host: &str, what: &str, stderr: &[u8]) -> CoreError {
    let detail = String::from_utf8_lossy(stderr);
    let detail = detail.trim();
    CoreError::Protocol {
        host: host.to_string(),
        message: if detail.is_empty() {
            what.to_string()
        } else {
            format!("{what}: {}", detail.lines().next().unwrap_or(detail))
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_and_method_read_as_lowercase_words_in_json() {
        let s = Summary {
            direction: Direction::Pull,
            method: Method::Sftp,
            ..Summary::default()
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["direction"], "pull");
        assert_eq!(v["method"], "sftp");
    }
}
