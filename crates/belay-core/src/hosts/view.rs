//! The stable JSON shapes of hosts (`host list|show|check --json`), shared
//! by the CLI and the daemon's `/v1/hosts` API so both say the same thing.

use serde_json::{Value, json};

use super::Hosts;
use super::check::HostCheck;
use super::gpus::{self, Inventory};
use crate::config::HostConfig;
use crate::job::view::rfc3339;
use crate::store::{HostHealth, Store};
use crate::transport::TransportError;
use belay_ssh::{IdentityAgent, ResolvedChain, ResolvedHost, StrictHostKeyChecking};

/// `healthy`, `degraded`, `unreachable`… (`local` is always healthy).
pub fn health_word(name: &str, h: &HostHealth, now: i64) -> &'static str {
    if Hosts::is_local(name) {
        "healthy"
    } else {
        h.status(now)
    }
}

/// `host list --json`'s rows: every host worth listing
/// ([`Hosts::known_names`]) with its job counts and its last health, as the
/// store has them (the CLI, the daemon's `/v1/hosts` and live dashboards).
pub fn host_rows(hosts: &Hosts, store: &Store, now: i64) -> crate::error::Result<Vec<Value>> {
    let counts = store.job_counts_by_host()?;
    hosts
        .known_names(store.host_names()?)
        .iter()
        .map(|name| {
            let (live, total) = counts.get(name).copied().unwrap_or_default();
            let health = store.host_health(name)?.unwrap_or_default();
            Ok(health_json(name, live, total, &health, now))
        })
        .collect()
}

/// One row of `host list --json`.
pub fn health_json(name: &str, live: i64, total: i64, h: &HostHealth, now: i64) -> Value {
    json!({
        "host": name,
        "health": health_word(name, h, now),
        "live_jobs": live,
        "jobs": total,
        "last_ok": h.last_ok_at.map(rfc3339),
        "last_route": h.last_route,
        "last_error": h.last_error,
        "last_error_at": h.last_error_at.map(rfc3339),
        "last_error_kind": h.last_error_kind,
        "gpus": h.gpus,
        "gpu_count": h.gpus.as_ref().map(Vec::len),
        "gpu_utilization_pct": h.gpus.as_deref().and_then(gpus::mean_utilization),
        "gpu_error": h.gpu_error,
    })
}

/// One result of `host check --json`.
pub fn check_json(name: &str, result: &Result<HostCheck, TransportError>) -> Value {
    let c = match result {
        Err(err) => return json!({"host": name, "ok": false, "error": err.to_string()}),
        Ok(c) if Hosts::is_local(name) => {
            return json!({"host": name, "ok": true, "total_ms": ms(c.total)});
        }
        Ok(c) => c,
    };
    let hops: Vec<Value> = c
        .hops
        .iter()
        .map(|h| {
            json!({
                "hop": h.alias, "target": h.target, "via": h.via,
                "connect_ms": ms(h.connect), "kex_ms": ms(h.key_exchange), "auth_ms": ms(h.auth),
                "auth": h.auth_method,
            })
        })
        .collect();
    let (nvidia_smi, gpus, gpu_error) = match &c.gpus {
        Inventory::Unknown => (Value::Null, Value::Null, Value::Null),
        Inventory::NoTool => (json!(false), json!([]), Value::Null),
        Inventory::Gpus(g) => (json!(true), gpus::gpus_json(g), Value::Null),
        Inventory::Failed(e) => (json!(true), Value::Null, json!(e)),
    };
    json!({
        "host": name, "ok": true, "route": c.route, "total_ms": ms(c.total),
        "first_command_ms": ms(c.first_command), "round_trip_ms": ms(c.round_trip), "hops": hops,
        "nvidia_smi": nvidia_smi, "gpus": gpus, "gpu_error": gpu_error,
    })
}

pub fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// StrictHostKeyChecking as ssh_config spells it.
pub fn strict_word(s: &StrictHostKeyChecking) -> &'static str {
    match s {
        StrictHostKeyChecking::Yes => "yes",
        StrictHostKeyChecking::AcceptNew => "accept-new",
        StrictHostKeyChecking::No => "no",
        StrictHostKeyChecking::Ask => "ask",
    }
}

/// IdentityAgent as ssh_config spells it.
pub fn agent_word(a: &IdentityAgent) -> String {
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

/// `host show --json` for an SSH host.
pub fn chain_json(
    host: &str,
    chain: &ResolvedChain,
    extras: &HostConfig,
    health: &HostHealth,
) -> Value {
    json!({
        "host": host,
        "config_file": chain.config_file,
        "target": hop_json(&chain.target),
        "jumps": chain.jumps.iter().map(hop_json).collect::<Vec<_>>(),
        "workroot": extras.workroot().0,
        "jump_fallbacks": extras.jump_fallbacks,
        "last_ok": health.last_ok_at.map(rfc3339),
        "last_route": health.last_route,
        "last_error": health.last_error,
        "last_error_at": health.last_error_at.map(rfc3339),
        "gpus": health.gpus,
        "gpu_error": health.gpu_error,
        "gpus_at": health.gpus_at.map(rfc3339),
    })
}
