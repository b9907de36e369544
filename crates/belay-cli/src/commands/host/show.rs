//! `belay host show`: how belay will reach a host — every hop as `ssh -G`
//! resolves it, belay's extras (workroot, jump fallbacks) and its health.
//! The text is rendered from `--json`'s document (belay-core's
//! `hosts::view::chain_json`), whether this process or the daemon made it.

use anyhow::Result;
use belay_core::hosts::Hosts;
use belay_core::time::now_ms;
use serde_json::{Value, json};

use super::super::Ctx;
use crate::daemon;
use crate::render::ago;

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn hop_lines(h: &Value, indent: &str) -> String {
    let mut s = format!(
        "{indent}{} -> {}@{}:{}\n",
        text(&h["alias"]),
        text(&h["user"]),
        text(&h["hostname"]),
        text(&h["port"])
    );
    let files = |v: &Value| {
        v.as_array()
            .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    s.push_str(&format!(
        "{indent}  identities   {}{}\n",
        files(&h["identity_files"]),
        if h["identities_only"] == true {
            " (IdentitiesOnly)"
        } else {
            ""
        }
    ));
    if h["certificate_files"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        s.push_str(&format!(
            "{indent}  certificates {}\n",
            files(&h["certificate_files"])
        ));
    }
    s.push_str(&format!(
        "{indent}  agent        {}\n",
        text(&h["identity_agent"])
    ));
    s.push_str(&format!(
        "{indent}  known_hosts  {} (StrictHostKeyChecking {})\n",
        files(&h["user_known_hosts_files"]),
        text(&h["strict_host_key_checking"])
    ));
    if let Some(pc) = h["proxy_command"].as_str() {
        s.push_str(&format!("{indent}  ProxyCommand {pc}\n"));
    }
    let keepalive = match h["server_alive_interval_s"].as_u64() {
        Some(i) => format!(
            "every {i} s, {} missed = dead",
            text(&h["server_alive_count_max"])
        ),
        None => "belay default: every 15 s, 3 missed = dead".into(),
    };
    s.push_str(&format!("{indent}  keepalive    {keepalive}\n"));
    s
}

/// `host show --json`'s document, from the daemon when one answers.
fn document(ctx: &Ctx, host: &str) -> Result<Value> {
    if let Some(client) = ctx.daemon(ctx.home.store_exists()) {
        return daemon::host(client, host);
    }
    if Hosts::is_local(host) {
        let root = ctx.home.local_workroot();
        return Ok(json!({"host": "local", "embedded": true, "workroot": root}));
    }
    let hosts = Hosts::new(&ctx.home, ctx.hosts.clone())?;
    let extras = hosts.config()?.host(host);
    let health = super::health(ctx, host)?;
    let chain = hosts.resolve(host)?;
    Ok(belay_core::hosts::view::chain_json(
        host, &chain, &extras, &health,
    ))
}

/// The GPUs `host check` last listed, one a line.
fn gpu_lines(h: &belay_core::store::HostHealth, now: i64) -> String {
    let when = h
        .gpus_at
        .map_or(String::new(), |t| format!(" (checked {})", ago(t, now)));
    if let Some(e) = &h.gpu_error {
        return format!(
            "gpus            nvidia-smi failed{when}: {}\n",
            belay_ssh::terminal_safe(e)
        );
    }
    match &h.gpus {
        None => "gpus            not checked yet (`belay host check`)\n".into(),
        Some(g) if g.is_empty() => format!("gpus            none{when}\n"),
        Some(g) => {
            let mut s = format!("gpus            {}{when}\n", g.len());
            for gpu in g {
                s.push_str(&format!(
                    "  {}\n",
                    belay_ssh::terminal_safe(&belay_core::hosts::gpus::describe(gpu))
                ));
            }
            s
        }
    }
}

pub fn show(ctx: &Ctx, host: &str, as_json: bool) -> Result<u8> {
    let v = document(ctx, host)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    if v["embedded"] == true {
        println!(
            "local: the embedded host (this machine, no SSH)\nworkroot  {}",
            text(&v["workroot"])
        );
        return Ok(0);
    }
    let mut out = String::new();
    out.push_str(&format!("host {host} (as `ssh -G` resolves it"));
    if let Some(f) = v["config_file"].as_str() {
        out.push_str(&format!(" with -F {f}"));
    }
    out.push_str(")\n");
    out.push_str(&hop_lines(&v["target"], "  "));
    let jumps = v["jumps"].as_array().cloned().unwrap_or_default();
    if jumps.is_empty() {
        out.push_str("jump chain: none (direct)\n");
    } else {
        out.push_str("jump chain (in connection order):\n");
        for (i, hop) in jumps.iter().enumerate() {
            out.push_str(&hop_lines(hop, &format!("  {}. ", i + 1)));
        }
    }
    out.push_str(&format!("belay workroot  {}\n", text(&v["workroot"])));
    let fallbacks: Vec<String> = v["jump_fallbacks"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    if !fallbacks.is_empty() {
        out.push_str(&format!("jump fallbacks  {}\n", fallbacks.join(", ")));
    }
    let now = now_ms();
    let health = super::health_of(&v);
    out.push_str(&gpu_lines(&health, now));
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
