//! The doctor's first section: what OpenSSH's own configuration makes of
//! the host and of each ProxyJump hop (`ssh -G`, the one source of truth),
//! and hop names that matched no `Host` block while a block for the same
//! machine exists — the seed-000 case, `ProxyJump ela.example` while only
//! `Host ela` carries the key and the user.

use std::time::Instant;

use belay_ssh::{ResolvedChain, ResolvedHost};

use super::report::{Check, Report, Section};
use crate::hosts::Hosts;
use crate::transport::ssh::runtime;

/// Resolves `host` and its hops into `report`; the chain when `ssh -G`
/// accepted them all.
pub fn check(hosts: &Hosts, host: &str, report: &mut Report) -> Option<ResolvedChain> {
    let started = Instant::now();
    let chain = match hosts.resolve(host) {
        Ok(chain) => chain,
        Err(e) => {
            report.push(
                Check::fail(Section::Resolution, host, "ssh -G", e.to_string())
                    .remedy(format!(
                        "fix the ssh config so that `ssh -G {host}` accepts it (the message is ssh's own)"
                    ))
                    .took(started.elapsed()),
            );
            return None;
        }
    };
    let took = started.elapsed();
    let hops: Vec<&ResolvedHost> = chain.hops().collect();
    for (i, hop) in hops.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| hops[p].alias.as_str());
        report.push(
            Check::ok(
                Section::Resolution,
                &hop.alias,
                "ssh -G",
                describe(hop, prev),
            )
            .took(took),
        );
        let started = Instant::now();
        let similar = runtime().block_on(belay_ssh::host_match::unmatched_name(
            hop,
            chain.config_file.as_deref(),
        ));
        if let Ok(Some(similar)) = similar
            && let Some(block) = similar.first()
        {
            let sets = if block.differs.is_empty() {
                String::new()
            } else {
                format!(" (it sets {})", block.differs.join(", "))
            };
            report.push(
                Check::warn(
                    Section::Resolution,
                    &hop.alias,
                    "host block",
                    format!(
                        "'{}' matches no Host block, but `Host {}` is the same machine{sets}: \
                         none of it applies to '{}' (OpenSSH looks a ProxyJump name up as written)",
                        hop.alias, block.name, hop.alias
                    ),
                )
                .remedy(format!(
                    "name both in that block: `Host {} {}` (or write `ProxyJump {}`)",
                    block.name, hop.alias, block.name
                ))
                .took(started.elapsed()),
            );
        }
    }
    Some(chain)
}

/// `root@node:22, identity ~/.ssh/k, via jump` — what the hop resolved
/// to, and how it is reached (`prev`: the hop in front of it).
fn describe(h: &ResolvedHost, prev: Option<&str>) -> String {
    let ids: Vec<String> = h
        .identity_files
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    let ids = if ids.is_empty() {
        "no identity file found".to_string()
    } else {
        format!("identity {}", ids.join(", "))
    };
    let via = match (&h.proxy_command, prev) {
        (Some(pc), _) => format!("ProxyCommand `{pc}`"),
        (None, Some(p)) => format!("via {p}"),
        (None, None) => "direct".to_string(),
    };
    format!("{}, {ids}, {via}", h.display_target())
}
