//! The doctor's connection checks, hop by hop in connection order:
//! resolution (`ssh -G`), reachability (DNS, TCP, SSH banner), host key,
//! authentication. A failing hop ends the descent: the hops behind it
//! cannot be looked at, and the report names the one that failed.
//!
//! The connection the checks end with is a fresh one of the doctor's own
//! (never a pooled or daemon connection), handed to [`super::on_host`].

use std::sync::Arc;
use std::time::Instant;

use belay_ssh::ConnectInfo;

use super::report::{Check, Report, Section};
use crate::hosts::Hosts;
use crate::transport::Transport;
use crate::transport::ssh::{SshTransport, map_error, runtime};

/// A host the doctor got through to.
pub struct Reached {
    /// Runs scripts there (the embedded host's, or the doctor's own fresh
    /// SSH connection).
    pub transport: Arc<dyn Transport>,
    /// The SSH connection (`None` for `local`).
    pub ssh: Option<Arc<SshTransport>>,
    /// How the chain was connected (`None` for `local`).
    pub info: Option<ConnectInfo>,
}

/// Runs the connection checks for `host` into `report`; `Some` when the
/// whole chain authenticated.
pub fn check_chain(hosts: &Hosts, host: &str, report: &mut Report) -> Option<Reached> {
    if Hosts::is_local(host) {
        report.push(Check::ok(
            Section::Resolution,
            host,
            "embedded",
            "the embedded host (this machine, no SSH)",
        ));
        return Some(Reached {
            transport: hosts.get(host).ok()?,
            ssh: None,
            info: None,
        });
    }
    let started = Instant::now();
    let chain = match hosts.resolve(host) {
        Ok(chain) => chain,
        Err(e) => {
            report.push(
                Check::fail(Section::Resolution, host, "ssh -G", e.to_string())
                    .remedy("fix the ssh config so that `ssh -G HOST` accepts it")
                    .took(started.elapsed()),
            );
            return None;
        }
    };
    report.push(
        Check::ok(
            Section::Resolution,
            host,
            "ssh -G",
            format!(
                "{} via {}",
                chain.target.display_target(),
                if chain.jumps.is_empty() {
                    "direct".to_string()
                } else {
                    chain
                        .jumps
                        .iter()
                        .map(|j| j.alias.clone())
                        .collect::<Vec<_>>()
                        .join(" → ")
                }
            ),
        )
        .took(started.elapsed()),
    );
    let transport = hosts.fresh_ssh(host);
    let client = transport.client().clone();
    let started = Instant::now();
    match runtime().block_on(client.connect_info()) {
        Ok(info) => {
            for hop in &info.hops {
                report.push(
                    Check::ok(
                        Section::Authentication,
                        &hop.alias,
                        "auth",
                        format!("{} by {}", hop.target, hop.auth_method),
                    )
                    .took(hop.auth),
                );
            }
            Some(Reached {
                transport: transport.clone(),
                ssh: Some(transport),
                info: Some(info),
            })
        }
        Err(e) => {
            let e = map_error(host, e);
            report.push(
                Check::fail(Section::Reachability, host, "connect", e.to_string())
                    .took(started.elapsed()),
            );
            None
        }
    }
}
