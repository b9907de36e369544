//! `belay host trust` / `forget`: show a host's key fingerprint before
//! anything is recorded; ask on a terminal, or take `--yes` /
//! `--fingerprint` in scripts. What may be recorded (never over a different
//! key without `--replace`) is decided by the core (`Hosts::trust_key`).

use std::io::{IsTerminal, Write};

use anyhow::{Result, bail};
use belay_core::hosts::Hosts;
use belay_ssh::RecordedHostKey;

use super::super::{Ctx, UsageError};

pub struct TrustArgs<'a> {
    pub host: &'a str,
    pub yes: bool,
    pub expected: Option<&'a str>,
    pub replace: bool,
}

pub fn trust(ctx: &Ctx, a: TrustArgs) -> Result<u8> {
    let host = a.host;
    no_key_for_local(host)?;
    let hosts = Hosts::new(&ctx.home, ctx.hosts.clone())?;
    let scanned = hosts.scan_key(host)?;
    let fp = &scanned.fingerprint;
    println!(
        "{host} ({}:{}) offers a {} key\n  fingerprint {fp}",
        scanned.hostname, scanned.port, scanned.algorithm
    );
    // Refused before asking: a differing key is not the user's to wave
    // through at a prompt without --replace.
    scanned.may_record(a.replace)?;
    if let RecordedHostKey::Different(file, line) = &scanned.recorded {
        println!(
            "  replacing the different key recorded in {}:{line}",
            file.display()
        );
    }
    match a.expected {
        Some(want) => scanned.matches(want)?,
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
    let already = matches!(scanned.recorded, RecordedHostKey::Same(..));
    let (file, line) = hosts.trust_key(&scanned, a.replace)?;
    if already {
        println!("already recorded in {}:{line}", file.display());
    } else {
        println!("recorded in {}:{line}", file.display());
    }
    Ok(0)
}

pub fn forget(ctx: &Ctx, host: &str) -> Result<u8> {
    no_key_for_local(host)?;
    let hosts = Hosts::new(&ctx.home, ctx.hosts.clone())?;
    let removed = hosts.forget_key(host)?;
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
