//! `belay host`: how belay reaches hosts (always as OpenSSH resolves them),
//! their health, and their keys. `trust` shows a fingerprint before it
//! records anything; nothing is ever accepted silently.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use anyhow::{Result, bail};
use belay_core::hosts::Hosts;
use belay_core::time::now_ms;
use belay_core::transport::ssh::{map_error, runtime};
use belay_ssh::{
    IdentityAgent, ResolvedHost, StrictHostKeyChecking, fingerprint, forget_host_key,
    scan_host_key, trust_host_key,
};
use serde_json::{Value, json};

use super::{Ctx, UsageError};
use crate::cli::HostCommand;
use crate::render::{ago, rfc3339};

pub fn host(ctx: &Ctx, cmd: HostCommand) -> Result<u8> {
    match cmd {
        HostCommand::List { json } => list(ctx, json),
        HostCommand::Show { host, json } => show(ctx, &host, json),
        HostCommand::Check { hosts, all, json } => check(ctx, hosts, all, json),
        HostCommand::Trust {
            host,
            yes,
            fingerprint,
        } => trust(ctx, &host, yes, fingerprint.as_deref()),
        HostCommand::Forget { host } => forget(ctx, &host),
    }
}

/// Every host worth listing: `local`, hosts in config.toml, hosts in the store.
fn known_hosts(ctx: &Ctx, hosts: &Hosts) -> Result<Vec<String>> {
    let mut names = vec!["local".to_string()];
    names.extend(hosts.config().hosts.keys().cloned());
    if ctx.home.store_exists() {
        names.extend(ctx.engine()?.store().host_names()?);
    }
    names.sort();
    names.dedup();
    Ok(names)
}

fn list(ctx: &Ctx, as_json: bool) -> Result<u8> {
    let hosts = Hosts::new(&ctx.home, ctx.hosts.clone())?;
    let names = known_hosts(ctx, &hosts)?;
    let engine = if ctx.home.store_exists() {
        Some(ctx.engine()?)
    } else {
        None
    };
    let now = now_ms();
    let mut rows = Vec::new();
    for name in &names {
        let (live, total) = match &engine {
            Some(e) => e.store().host_job_counts(name)?,
            None => (0, 0),
        };
        let health = match &engine {
            Some(e) => e.store().host_health(name)?.unwrap_or_default(),
            None => Default::default(),
        };
        rows.push((name, live, total, health));
    }
    if as_json {
        let v: Vec<Value> = rows
            .iter()
            .map(|(name, live, total, h)| {
                json!({
                    "host": name,
                    "health": if name.as_str() == "local" { "healthy" } else { h.status(now) },
                    "live_jobs": live,
                    "jobs": total,
                    "last_ok": h.last_ok_at.map(rfc3339),
                    "last_route": h.last_route,
                    "last_error": h.last_error,
                    "last_error_at": h.last_error_at.map(rfc3339),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!(
        "{:<24} {:<12} {:>10}  {:<12} LAST ERROR",
        "HOST", "HEALTH", "LIVE/JOBS", "LAST OK"
    );
    for (name, live, total, h) in rows {
        let ok = h.last_ok_at.map_or("-".into(), |t| ago(t, now));
        let err = match (&h.last_error, h.last_error_at) {
            (Some(e), Some(t)) if h.last_ok_at.is_none_or(|ok| t > ok) => {
                format!("{} ({e})", ago(t, now))
            }
            _ => "-".into(),
        };
        let health = if name.as_str() == "local" {
            "healthy"
        } else {
            h.status(now)
        };
        println!(
            "{name:<24} {health:<12} {:>10}  {ok:<12} {err}",
            format!("{live}/{total}")
        );
    }
    Ok(0)
}

/// StrictHostKeyChecking as ssh_config spells it.
fn strict_word(s: &StrictHostKeyChecking) -> &'static str {
    match s {
        StrictHostKeyChecking::Yes => "yes",
        StrictHostKeyChecking::AcceptNew => "accept-new",
        StrictHostKeyChecking::No => "no",
        StrictHostKeyChecking::Ask => "ask",
    }
}

/// IdentityAgent as ssh_config spells it.
fn agent_word(a: &IdentityAgent) -> String {
    match a {
        IdentityAgent::Environment => "SSH_AUTH_SOCK".into(),
        IdentityAgent::Disabled => "none".into(),
        IdentityAgent::Socket(p) => p.display().to_string(),
    }
}

fn hop_json(h: &ResolvedHost) -> Value {
    json!({
        "alias": h.alias,
        "hostname": h.hostname,
        "user": h.user,
        "port": h.port,
        "identity_files": h.identity_files,
        "certificate_files": h.certificate_files,
        "identities_only": h.identities_only,
        "identity_agent": agent_word(&h.identity_agent),
        "proxy_jump": h.proxy_jump,
        "proxy_command": h.proxy_command,
        "user_known_hosts_files": h.user_known_hosts_files,
        "strict_host_key_checking": strict_word(&h.strict_host_key_checking),
        "host_key_alias": h.host_key_alias,
        "server_alive_interval_s": h.server_alive_interval.map(|d| d.as_secs()),
        "server_alive_count_max": h.server_alive_count_max,
    })
}

fn hop_lines(h: &ResolvedHost, indent: &str) -> String {
    let mut s = format!(
        "{indent}{} -> {}@{}:{}\n",
        h.alias, h.user, h.hostname, h.port
    );
    let files = |v: &[std::path::PathBuf]| {
        v.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    s.push_str(&format!(
        "{indent}  identities   {}{}\n",
        files(&h.identity_files),
        if h.identities_only {
            " (IdentitiesOnly)"
        } else {
            ""
        }
    ));
    if !h.certificate_files.is_empty() {
        s.push_str(&format!(
            "{indent}  certificates {}\n",
            files(&h.certificate_files)
        ));
    }
    s.push_str(&format!(
        "{indent}  agent        {}\n",
        agent_word(&h.identity_agent)
    ));
    s.push_str(&format!(
        "{indent}  known_hosts  {} (StrictHostKeyChecking {})\n",
        files(&h.user_known_hosts_files),
        strict_word(&h.strict_host_key_checking)
    ));
    if let Some(pc) = &h.proxy_command {
        s.push_str(&format!("{indent}  ProxyCommand {pc}\n"));
    }
    let keepalive = match h.server_alive_interval {
        Some(i) => format!(
            "every {} s, {} missed = dead",
            i.as_secs(),
            h.server_alive_count_max
        ),
        None => "belay default: every 15 s, 3 missed = dead".into(),
    };
    s.push_str(&format!("{indent}  keepalive    {keepalive}\n"));
    s
}

fn show(ctx: &Ctx, host: &str, as_json: bool) -> Result<u8> {
    let hosts = Hosts::new(&ctx.home, ctx.hosts.clone())?;
    let extras = hosts.config().host(host);
    let health = if ctx.home.store_exists() {
        ctx.engine()?.store().host_health(host)?.unwrap_or_default()
    } else {
        Default::default()
    };
    if Hosts::is_local(host) {
        let root = ctx.home.local_workroot();
        if as_json {
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({"host": "local", "embedded": true, "workroot": root})
                )?
            );
        } else {
            println!(
                "local: the embedded host (this machine, no SSH)\nworkroot  {}",
                root.display()
            );
        }
        return Ok(0);
    }
    let chain = hosts.resolve(host)?;
    if as_json {
        let v = json!({
            "host": host,
            "config_file": chain.config_file,
            "target": hop_json(&chain.target),
            "jumps": chain.jumps.iter().map(hop_json).collect::<Vec<_>>(),
            "workroot": extras.workroot().0,
            "jump_fallbacks": extras.jump_fallbacks,
            "last_ok": health.last_ok_at.map(rfc3339),
            "last_route": health.last_route,
            "last_error": health.last_error,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let mut out = String::new();
    out.push_str(&format!("host {host} (as `ssh -G` resolves it"));
    if let Some(f) = &chain.config_file {
        out.push_str(&format!(" with -F {}", f.display()));
    }
    out.push_str(")\n");
    out.push_str(&hop_lines(&chain.target, "  "));
    if chain.jumps.is_empty() {
        out.push_str("jump chain: none (direct)\n");
    } else {
        out.push_str("jump chain (in connection order):\n");
        for (i, hop) in chain.jumps.iter().enumerate() {
            out.push_str(&hop_lines(hop, &format!("  {}. ", i + 1)));
        }
    }
    out.push_str(&format!("belay workroot  {}\n", extras.workroot().0));
    if !extras.jump_fallbacks.is_empty() {
        out.push_str(&format!(
            "jump fallbacks  {}\n",
            extras.jump_fallbacks.join(", ")
        ));
    }
    let now = now_ms();
    if let Some(t) = health.last_ok_at {
        out.push_str(&format!(
            "last reached    {} {}\n",
            ago(t, now),
            health.last_route.as_deref().unwrap_or("")
        ));
    }
    if let (Some(e), Some(t)) = (&health.last_error, health.last_error_at) {
        out.push_str(&format!("last error      {} {e}\n", ago(t, now)));
    }
    print!("{out}");
    Ok(0)
}

fn check(ctx: &Ctx, mut names: Vec<String>, all: bool, as_json: bool) -> Result<u8> {
    let hosts = Hosts::new(&ctx.home, ctx.hosts.clone())?;
    if all {
        names = known_hosts(ctx, &hosts)?;
    }
    if names.is_empty() {
        bail!(UsageError("name hosts to check, or --all".into()));
    }
    // Bad names are bad input: refused before anything is opened or recorded.
    for name in &names {
        hosts.validate(name)?;
    }
    // A check is an action: its outcome is recorded as the host's health.
    let mut engine = ctx.engine()?;
    let mut failed = false;
    let mut results = Vec::new();
    for name in &names {
        let t = Instant::now();
        if Hosts::is_local(name) {
            results.push(json!({"host": name, "ok": true, "total_ms": 0.0}));
            if !as_json {
                println!("{name}: ok (embedded host)");
            }
            continue;
        }
        let transport = hosts.ssh(name);
        let client = transport.client().clone();
        let outcome = runtime().block_on(async {
            let info = client.connect_info().await?;
            // The first script starts belay's remote shell (which pays the
            // user's shell start-up once); later ones are the warm cost.
            let first = Instant::now();
            client.run_script("true").await?;
            let first = first.elapsed();
            let rt = Instant::now();
            client.run_script("true").await?;
            Ok::<_, belay_ssh::SshError>((info, first, rt.elapsed()))
        });
        match outcome {
            Ok((info, first, round_trip)) => {
                let route = belay_core::transport::Transport::route(&*transport);
                let _ = engine.store_mut().record_host_ok(name, route.as_deref());
                let hops: Vec<Value> = info
                    .hops
                    .iter()
                    .map(|h| {
                        json!({
                            "hop": h.alias, "target": h.target, "via": h.via,
                            "connect_ms": ms(h.stream), "kex_ms": ms(h.kex), "auth_ms": ms(h.auth),
                            "auth": h.auth_method,
                        })
                    })
                    .collect();
                if !as_json {
                    println!(
                        "{name}: ok in {:.0} ms ({}); first command {:.1} ms (starts the remote shell), round trip {:.1} ms",
                        ms(t.elapsed()),
                        route.as_deref().unwrap_or("direct"),
                        ms(first),
                        ms(round_trip)
                    );
                    for h in &info.hops {
                        println!(
                            "  {} ({}): connect {:.0} ms, key exchange {:.0} ms, auth {:.0} ms by {}",
                            h.alias,
                            h.target,
                            ms(h.stream),
                            ms(h.kex),
                            ms(h.auth),
                            h.auth_method
                        );
                    }
                }
                results.push(json!({
                    "host": name, "ok": true, "route": route, "total_ms": ms(t.elapsed()),
                    "first_command_ms": ms(first), "round_trip_ms": ms(round_trip), "hops": hops,
                }));
            }
            Err(e) => {
                failed = true;
                let err = map_error(name, e);
                let _ = engine.store_mut().record_host_error(name, &err.to_string());
                if !as_json {
                    println!(
                        "{name}: FAILED: {}",
                        belay_ssh::terminal_safe(&err.to_string())
                    );
                }
                results.push(json!({"host": name, "ok": false, "error": err.to_string()}));
            }
        }
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(if failed { 1 } else { 0 })
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn trust(ctx: &Ctx, host: &str, yes: bool, expected: Option<&str>) -> Result<u8> {
    if Hosts::is_local(host) {
        bail!(UsageError(
            "'local' is the embedded host: it has no host key".into()
        ));
    }
    let hosts = Hosts::new(&ctx.home, ctx.hosts.clone())?;
    hosts.validate(host)?;
    let opts = hosts.client_options(host);
    let (chain, key) = runtime()
        .block_on(scan_host_key(host, &opts))
        .map_err(|e| map_error(host, e))?;
    let fp = fingerprint(&key);
    let t = &chain.target;
    println!(
        "{host} ({}:{}) offers a {} key\n  fingerprint {fp}",
        t.hostname,
        t.port,
        key.algorithm().as_str()
    );
    match expected {
        Some(want) if want != fp => {
            bail!("the key's fingerprint is {fp}, not {want}: nothing recorded");
        }
        Some(_) => {}
        None if yes => {}
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
    let (file, line) = trust_host_key(t, &key)?;
    println!("recorded in {}:{line}", file.display());
    Ok(0)
}

fn forget(ctx: &Ctx, host: &str) -> Result<u8> {
    if Hosts::is_local(host) {
        bail!(UsageError(
            "'local' is the embedded host: it has no host key".into()
        ));
    }
    let hosts = Hosts::new(&ctx.home, ctx.hosts.clone())?;
    let chain = hosts.resolve(host)?;
    let removed = forget_host_key(&chain.target)?;
    if removed.is_empty() {
        println!("no known_hosts entries for {host}");
    }
    for (file, line) in removed {
        println!("removed {}:{line}", file.display());
    }
    Ok(0)
}
