//! `belay host show`: how belay will reach a host — every hop as `ssh -G`
//! resolves it, belay's extras (workroot, jump fallbacks) and its health.

use anyhow::Result;
use belay_core::hosts::Hosts;
use belay_core::hosts::view::{agent_word, strict_word};
use belay_core::time::now_ms;
use belay_ssh::ResolvedHost;
use serde_json::json;

use super::super::Ctx;
use crate::render::ago;

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

pub fn show(ctx: &Ctx, host: &str, as_json: bool) -> Result<u8> {
    let hosts = Hosts::new(&ctx.home, ctx.hosts.clone())?;
    let extras = hosts.config().host(host);
    let health = super::health(ctx, host)?;
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
        let v = belay_core::hosts::view::chain_json(host, &chain, &extras, &health);
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
