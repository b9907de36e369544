//! `belay exec`: one untracked command on many hosts (belay-core's
//! [`belay_core::fanout`]), printed as each host ends — every line prefixed
//! with its host, or with `--group` identical outputs merged under the list
//! of hosts that printed them (like ClusterShell's clubak) — then a summary
//! of every host that did not succeed. Runs in this process whether or not
//! a daemon answers: nothing of it is recorded.

use std::io::Write;

use anyhow::Result;
use belay_core::fanout::{self, ExecOptions, HostResult, HostStatus};
use belay_core::hosts::Hosts;
use belay_core::job::Command;

use super::Ctx;
use crate::cli::ExecArgs;

pub fn exec(ctx: &Ctx, a: ExecArgs) -> Result<u8> {
    if a.command.iter().all(|w| w.trim().is_empty()) {
        return Err(super::UsageError(
            "missing command: give it after `--`, e.g. `belay exec 'node*' -- uptime`".into(),
        )
        .into());
    }
    let line = Command::from_argv(a.command.clone()).shell_line();
    let hosts = Hosts::new(&ctx.home, ctx.hosts.clone())?;
    let names = fanout::expand(&hosts, &a.hosts, ctx.hosts.ssh_config.as_deref())?;
    let opts = ExecOptions {
        parallel: a.parallel as usize,
        timeout: a.timeout,
    };
    let streaming = !a.group && !a.json;
    let mut write_error = None;
    let results = fanout::exec(&hosts, names, &line, opts, |r| {
        if streaming && write_error.is_none() {
            write_error = print_prefixed(r).err();
        }
    });
    if let Some(e) = write_error {
        return Err(e.into());
    }
    if a.json {
        let doc = serde_json::json!({
            "command": line,
            "hosts": results.iter().map(HostResult::to_json).collect::<Vec<_>>(),
            "ok": count(&results, HostStatus::Ok),
            "failed": count(&results, HostStatus::Failed),
            "unreachable": count(&results, HostStatus::Unreachable),
            "timeout": count(&results, HostStatus::Timeout),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        if a.group {
            print_grouped(&results)?;
        }
        print_summary(&results);
    }
    let all_ok = results.iter().all(|r| r.status == HostStatus::Ok);
    Ok(if all_ok { 0 } else { 1 })
}

fn count(results: &[HostResult], status: HostStatus) -> usize {
    results.iter().filter(|r| r.status == status).count()
}

/// `host: line` for each line of the host's stdout (on stdout) and stderr
/// (on stderr), each stream written at once so hosts never interleave
/// within a line.
fn print_prefixed(r: &HostResult) -> std::io::Result<()> {
    let out = prefixed(&r.host, &r.stdout);
    if !out.is_empty() {
        let mut o = std::io::stdout().lock();
        o.write_all(&out)?;
        o.flush()?;
    }
    let err = prefixed(&r.host, &r.stderr);
    if !err.is_empty() {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(&err);
    }
    Ok(())
}

fn prefixed(host: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 64);
    for line in lines(bytes) {
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

/// Lines without their `\n`; a last line without one counts too.
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let empty = bytes.is_empty();
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.split(|b| *b == b'\n').filter(move |_| !empty)
}

/// Each distinct stdout once (on stdout), then each distinct stderr (on
/// stderr), under a header naming the hosts that printed it.
fn print_grouped(results: &[HostResult]) -> std::io::Result<()> {
    let mut o = std::io::stdout().lock();
    for (hosts, text) in groups(results, |r| &r.stdout) {
        o.write_all(&header(&hosts))?;
        o.write_all(&text)?;
        if !text.ends_with(b"\n") {
            o.write_all(b"\n")?;
        }
    }
    o.flush()?;
    let mut e = std::io::stderr().lock();
    for (hosts, text) in groups(results, |r| &r.stderr) {
        let _ = e.write_all(&header(&hosts));
        let _ = e.write_all(&text);
        if !text.ends_with(b"\n") {
            let _ = e.write_all(b"\n");
        }
    }
    Ok(())
}

/// Non-empty outputs with the hosts that printed each, in host order.
fn groups<'a>(
    results: &'a [HostResult],
    field: impl Fn(&'a HostResult) -> &'a Vec<u8>,
) -> Vec<(Vec<&'a str>, Vec<u8>)> {
    let mut groups: Vec<(Vec<&str>, Vec<u8>)> = Vec::new();
    for r in results {
        let text = field(r);
        if text.is_empty() {
            continue;
        }
        match groups.iter_mut().find(|(_, t)| t == text) {
            Some((hosts, _)) => hosts.push(&r.host),
            None => groups.push((vec![&r.host], text.clone())),
        }
    }
    groups
}

fn header(hosts: &[&str]) -> Vec<u8> {
    let names = format!("{} ({})", hosts.join(","), hosts.len());
    let rule = "-".repeat(names.chars().count().clamp(15, 79));
    format!("{rule}\n{names}\n{rule}\n").into_bytes()
}

/// `belay: N hosts: a ok, b failed, …` and one line for each host that did
/// not succeed, with the real cause.
fn print_summary(results: &[HostResult]) {
    let mut parts = Vec::new();
    for s in [
        HostStatus::Ok,
        HostStatus::Failed,
        HostStatus::Unreachable,
        HostStatus::Timeout,
    ] {
        let n = count(results, s);
        if n > 0 || s == HostStatus::Ok {
            parts.push(format!("{n} {}", s.as_str()));
        }
    }
    let plural = if results.len() == 1 { "" } else { "s" };
    let mut text = format!(
        "belay: exec on {} host{plural}: {}\n",
        results.len(),
        parts.join(", ")
    );
    for r in results.iter().filter(|r| r.status != HostStatus::Ok) {
        let why = match (r.status, r.exit_code, &r.error) {
            (HostStatus::Failed, Some(code), _) => format!("failed with exit code {code}"),
            (s, _, Some(e)) => format!("{}: {}", s.as_str(), belay_ssh::terminal_safe(e)),
            (s, _, None) => s.as_str().to_string(),
        };
        text.push_str(&format!("  {}: {why}\n", r.host));
    }
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_prefixed_and_a_last_line_without_newline_counts() {
        assert_eq!(prefixed("h", b"a\nb\n"), b"h: a\nh: b\n");
        assert_eq!(prefixed("h", b"a\n\nb"), b"h: a\nh: \nh: b\n");
        assert_eq!(prefixed("h", b""), b"");
        assert_eq!(prefixed("h", b"\n"), b"h: \n");
    }
}
