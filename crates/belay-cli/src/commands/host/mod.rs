//! `belay host`: how belay reaches hosts (always as OpenSSH resolves them),
//! their health, and their keys. `trust` shows a fingerprint before it
//! records anything; nothing is ever accepted silently. The work is
//! belay-core's (`Hosts::check`, `Hosts::scan_key`, `Engine::check_host`,
//! the engine as the one writer of host health); these modules parse and
//! render: `list` here, [`show`], [`check`], [`keys`] (trust, forget).
//! With a daemon, it does the work (`/v1/hosts`): the text is rendered
//! from the same JSON shapes either way, and `trust` still asks on this
//! terminal before the daemon records anything.

mod check;
mod keys;
mod show;

use anyhow::Result;
use belay_core::hosts::Hosts;
use belay_core::store::HostHealth;
use belay_core::time::now_ms;
use serde_json::Value;

use super::Ctx;
use crate::cli::HostCommand;
use crate::daemon;
use crate::render::ago;

pub fn host(ctx: &Ctx, cmd: HostCommand) -> Result<u8> {
    match cmd {
        HostCommand::List { json } => list(ctx, json),
        HostCommand::Show { host, json } => show::show(ctx, &host, json),
        HostCommand::Check { hosts, all, json } => check::check(ctx, hosts, all, json),
        HostCommand::Trust {
            host,
            yes,
            fingerprint,
            replace,
        } => keys::trust(
            ctx,
            keys::TrustArgs {
                host: &host,
                yes,
                expected: fingerprint.as_deref(),
                replace,
            },
        ),
        HostCommand::Forget { host } => keys::forget(ctx, &host),
    }
}

/// Every host worth listing: `local`, hosts in config.toml, hosts in the store.
fn known_hosts(ctx: &Ctx, hosts: &Hosts) -> Result<Vec<String>> {
    let seen = if ctx.home.store_exists() {
        ctx.engine()?.store().host_names()?
    } else {
        Vec::new()
    };
    Ok(hosts.known_names(seen))
}

/// What belay last saw of `host`; nothing (and no store created) when
/// belay has no store yet.
fn health(ctx: &Ctx, host: &str) -> Result<HostHealth> {
    Ok(if ctx.home.store_exists() {
        ctx.engine()?.host_health(host)?
    } else {
        HostHealth::default()
    })
}

/// `host list --json`'s rows, from the daemon when one answers.
fn rows(ctx: &Ctx) -> Result<Vec<Value>> {
    if let Some(client) = ctx.daemon(ctx.home.store_exists()) {
        return daemon::hosts(client);
    }
    let hosts = Hosts::new(&ctx.home, ctx.hosts.clone())?;
    let now = now_ms();
    if ctx.home.store_exists() {
        return Ok(belay_core::hosts::view::host_rows(
            &hosts,
            ctx.engine()?.store(),
            now,
        )?);
    }
    // No store yet (none is created for a list): no jobs, no health.
    Ok(hosts
        .known_names(Vec::new())
        .iter()
        .map(|name| belay_core::hosts::view::health_json(name, 0, 0, &HostHealth::default(), now))
        .collect())
}

/// A time of the JSON shapes (RFC 3339) as the store keeps it.
fn time_of(v: &Value) -> Option<i64> {
    v.as_str().and_then(belay_core::job::view::parse_rfc3339)
}

/// The health a row of `host list --json` (or `host show --json`) says.
fn health_of(row: &Value) -> HostHealth {
    let text = |key: &str| row[key].as_str().map(str::to_string);
    HostHealth {
        last_ok_at: time_of(&row["last_ok"]),
        last_route: text("last_route"),
        last_error: text("last_error"),
        last_error_at: time_of(&row["last_error_at"]),
        last_error_kind: text("last_error_kind"),
        gpus: serde_json::from_value(row["gpus"].clone()).ok(),
        gpus_at: time_of(&row["gpus_at"]),
        gpu_error: text("gpu_error"),
    }
}

/// Rendered from the JSON rows either way, so both modes print the same.
fn list(ctx: &Ctx, as_json: bool) -> Result<u8> {
    let rows = rows(ctx)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    let now = now_ms();
    println!(
        "{:<24} {:<12} {:>10}  {:<12} {:<10} LAST ERROR",
        "HOST", "HEALTH", "LIVE/JOBS", "LAST OK", "GPUS"
    );
    for row in &rows {
        let name = row["host"].as_str().unwrap_or("?");
        let h = health_of(row);
        let ok = h.last_ok_at.map_or("-".into(), |t| ago(t, now));
        println!(
            "{name:<24} {:<12} {:>10}  {ok:<12} {:<10} {}",
            row["health"].as_str().unwrap_or("unknown"),
            format!("{}/{}", row["live_jobs"], row["jobs"]),
            gpus_cell(row),
            last_error_cell(&h, now)
        );
    }
    Ok(0)
}
/// The GPUS column: how many and their mean utilization (`2 (18%)`), `-`
/// for none or never checked, `error` when nvidia-smi failed.
fn gpus_cell(row: &Value) -> String {
    if row["gpu_error"].is_string() {
        return "error".into();
    }
    match (
        row["gpu_count"].as_u64(),
        row["gpu_utilization_pct"].as_u64(),
    ) {
        (None | Some(0), _) => "-".into(),
        (Some(n), Some(u)) => format!("{n} ({u}%)"),
        (Some(n), None) => n.to_string(),
    }
}

/// The LAST ERROR column: the last error whenever there is one (the JSON
/// has it too), marked `(answered since)` once the host answered after it.
fn last_error_cell(h: &HostHealth, now: i64) -> String {
    let (Some(e), Some(t)) = (&h.last_error, h.last_error_at) else {
        return "-".into();
    };
    // The error quotes the host: no control sequence of its own.
    let e = belay_ssh::terminal_safe(e);
    if h.answered_since_error() {
        format!("{} (answered since): {e}", ago(t, now))
    } else {
        format!("{} ({e})", ago(t, now))
    }
}
