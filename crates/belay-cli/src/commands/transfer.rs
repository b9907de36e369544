//! `belay push` and `belay pull`: resumable, verified copies of files and
//! trees between this machine and a host (belay-core's `transfer`).

use anyhow::Result;
use belay_core::hosts::Hosts;
use belay_core::transfer::{self, Direction, Summary};

use super::Ctx;
use crate::cli::{PullArgs, PushArgs};
use crate::progress::TransferBar;

pub fn push(ctx: &Ctx, a: PushArgs) -> Result<u8> {
    let hosts = Hosts::new(&ctx.home, ctx.hosts.clone())?;
    hosts.validate(&a.host)?;
    let t = hosts.get(&a.host)?;
    let remote = remote_path(&a.host, &a.remote)?;
    let mut bar = TransferBar::new(&format!(
        "push {} → {}:{}",
        a.local.display(),
        a.host,
        a.remote
    ));
    let summary = transfer::push(t.as_ref(), &a.local, &remote, a.via, &mut bar)?;
    bar.finish();
    report(&summary, a.json)
}

pub fn pull(ctx: &Ctx, a: PullArgs) -> Result<u8> {
    let hosts = Hosts::new(&ctx.home, ctx.hosts.clone())?;
    hosts.validate(&a.host)?;
    let t = hosts.get(&a.host)?;
    let remote = remote_path(&a.host, &a.remote)?;
    let mut bar = TransferBar::new(&format!(
        "pull {}:{} → {}",
        a.host,
        a.remote,
        a.local.display()
    ));
    let summary = transfer::pull(t.as_ref(), &remote, &a.local, a.via, &mut bar)?;
    bar.finish();
    report(&summary, a.json)?;
    if let Some(line) = summary.refused_line() {
        eprintln!("belay: {line}");
        return Ok(1);
    }
    Ok(0)
}

/// On `local`, a relative "remote" path is relative to where you are, as
/// for any local command; elsewhere it is relative to the home directory.
pub fn remote_path(host: &str, path: &str) -> Result<String> {
    if path.is_empty() || path.contains('\0') {
        return Err(super::UsageError(format!("bad remote path '{path}'")).into());
    }
    if Hosts::is_local(host) && !path.starts_with('/') && !path.starts_with('~') {
        let abs = std::env::current_dir()?.join(path);
        let mut s = abs.display().to_string();
        if path.ends_with('/') && !s.ends_with('/') {
            s.push('/');
        }
        return Ok(s);
    }
    Ok(path.to_string())
}

pub fn report(s: &Summary, json: bool) -> Result<u8> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
    } else if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!("{}", one_line(s));
    }
    Ok(0)
}

/// `12 files (1.0 GiB) to gpu1:/x in 3.2 s, 310 MiB/s; 2 up to date`.
pub fn one_line(s: &Summary) -> String {
    let secs = (s.elapsed_ms as f64 / 1000.0).max(0.001);
    let mut line = format!(
        "{} {} file{} ({}) {} {} in {:.1} s, {}/s",
        if s.direction == Direction::Push {
            "pushed"
        } else {
            "pulled"
        },
        s.files_transferred,
        if s.files_transferred == 1 { "" } else { "s" },
        human_bytes(s.bytes_sent + s.bytes_resumed),
        if s.direction == Direction::Push {
            "to"
        } else {
            "into"
        },
        if s.direction == Direction::Push {
            format!("{}:{}", s.host, s.destination)
        } else {
            s.destination.clone()
        },
        secs,
        human_bytes((s.bytes_sent as f64 / secs) as u64)
    );
    if s.files_skipped > 0 {
        line.push_str(&format!("; {} already up to date", s.files_skipped));
    }
    if s.bytes_resumed > 0 {
        line.push_str(&format!("; resumed {}", human_bytes(s.bytes_resumed)));
    }
    line
}

fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}
