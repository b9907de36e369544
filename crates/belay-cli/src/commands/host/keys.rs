//! `belay host trust` / `forget`: show a host's key fingerprint before
//! anything is recorded; ask on a terminal, or take `--yes` /
//! `--fingerprint` in scripts. What may be recorded (never over a different
//! key without `--replace`) is decided by the core (`Hosts::trust_key`).
//! With a daemon, it scans and records (`/v1/hosts/{host}/key`), and the
//! question is still asked here, on this terminal: the daemon records
//! only the key with the fingerprint shown and confirmed.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Result, bail};
use belay_core::hosts::Hosts;
use belay_core::hosts::keys::{ScannedKey, TrustError, may_record};
use belay_ssh::RecordedHostKey;

use super::super::{Ctx, UsageError};
use crate::daemon;

pub struct TrustArgs<'a> {
    pub host: &'a str,
    pub yes: bool,
    pub expected: Option<&'a str>,
    pub replace: bool,
}

/// The key a host offers, as this process or the daemon scanned it.
struct Offered {
    hostname: String,
    port: u16,
    algorithm: String,
    fingerprint: String,
    recorded: RecordedHostKey,
}

/// Who scans and records: this process, or the daemon (which records only
/// the key with the fingerprint confirmed here, so the question stays on
/// this terminal and nothing is accepted that was not shown).
enum Keeper<'a> {
    Direct(Box<Hosts>, Option<Box<ScannedKey>>),
    Daemon(&'a belay_server::Client),
}

impl Keeper<'_> {
    fn scan(&mut self, host: &str) -> Result<Offered> {
        match self {
            Keeper::Direct(hosts, kept) => {
                let s = hosts.scan_key(host)?;
                let offered = Offered {
                    hostname: s.hostname.clone(),
                    port: s.port,
                    algorithm: s.algorithm.clone(),
                    fingerprint: s.fingerprint.clone(),
                    recorded: s.recorded.clone(),
                };
                *kept = Some(Box::new(s));
                Ok(offered)
            }
            Keeper::Daemon(client) => {
                let k = daemon::offered_key(client, host)?;
                let at = || {
                    (
                        k.recorded.file.clone().unwrap_or_default(),
                        k.recorded.line.unwrap_or(0),
                    )
                };
                let recorded = match k.recorded.state.as_str() {
                    "same" => RecordedHostKey::Same(at().0, at().1),
                    "different" => RecordedHostKey::Different(at().0, at().1),
                    "revoked" => RecordedHostKey::Revoked(at().0, at().1),
                    _ => RecordedHostKey::Nothing,
                };
                Ok(Offered {
                    hostname: k.hostname,
                    port: k.port,
                    algorithm: k.algorithm,
                    fingerprint: k.fingerprint,
                    recorded,
                })
            }
        }
    }

    /// Record the key shown: `(file, line, already recorded)`.
    fn record(
        &mut self,
        host: &str,
        offered: &Offered,
        replace: bool,
    ) -> Result<(PathBuf, usize, bool)> {
        match self {
            Keeper::Direct(hosts, kept) => {
                let scanned = kept.as_ref().expect("scanned before recorded");
                let already = matches!(scanned.recorded, RecordedHostKey::Same(..));
                let (file, line) = hosts.trust_key(scanned, replace)?;
                Ok((file, line, already))
            }
            Keeper::Daemon(client) => {
                let t = daemon::trust_key(client, host, &offered.fingerprint, replace)?;
                Ok((t.file, t.line, t.already))
            }
        }
    }
}

pub fn trust(ctx: &Ctx, a: TrustArgs) -> Result<u8> {
    let host = a.host;
    no_key_for_local(host)?;
    let mut keeper = match ctx.daemon(true) {
        Some(client) => Keeper::Daemon(client),
        None => Keeper::Direct(Box::new(Hosts::new(&ctx.home, ctx.hosts.clone())?), None),
    };
    let offered = keeper.scan(host)?;
    let fp = &offered.fingerprint;
    println!(
        "{host} ({}:{}) offers a {} key\n  fingerprint {fp}",
        offered.hostname, offered.port, offered.algorithm
    );
    // Refused before asking: a differing key is not the user's to wave
    // through at a prompt without --replace.
    may_record(host, &offered.recorded, a.replace)?;
    if let RecordedHostKey::Different(file, line) = &offered.recorded {
        println!(
            "  replacing the different key recorded in {}:{line}",
            file.display()
        );
    }
    match a.expected {
        Some(want) if want != fp => {
            return Err(TrustError::FingerprintMismatch {
                expected: want.to_string(),
                actual: fp.clone(),
            }
            .into());
        }
        Some(_) => {}
        None if a.yes => {}
        None if std::io::stdin().is_terminal() => {
            print!(
                "Record this key for {host}? Compare the fingerprint with one obtained out of band. [y/N] "
            );
            std::io::stdout().flush()?;
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer)?;
            if !matches!(answer.trim(), "y" | "Y" | "yes") {
                println!("nothing recorded");
                return Ok(1);
            }
        }
        None => bail!(UsageError(format!(
            "not recording {host}'s key without confirmation: check the fingerprint, then re-run with --fingerprint {fp} (or --yes)"
        ))),
    }
    let (file, line, already) = keeper.record(host, &offered, a.replace)?;
    if already {
        println!("already recorded in {}:{line}", file.display());
    } else {
        println!("recorded in {}:{line}", file.display());
    }
    Ok(0)
}

pub fn forget(ctx: &Ctx, host: &str) -> Result<u8> {
    no_key_for_local(host)?;
    let removed = match ctx.daemon(true) {
        Some(client) => daemon::forget_key(client, host)?,
        None => Hosts::new(&ctx.home, ctx.hosts.clone())?.forget_key(host)?,
    };
    if removed.is_empty() {
        println!("no known_hosts entries for {host}");
    }
    for (file, line) in removed {
        println!("removed {}:{line}", file.display());
    }
    Ok(0)
}

fn no_key_for_local(host: &str) -> Result<()> {
    if Hosts::is_local(host) {
        bail!(UsageError(
            "'local' is the embedded host: it has no host key".into()
        ));
    }
    Ok(())
}
