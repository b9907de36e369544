//! The doctor's connection checks, hop by hop in connection order:
//! resolution (`ssh -G`, [`super::resolution`]), reachability (DNS, TCP,
//! the channel through the previous hop, SSH banner) and the host key
//! ([`super::reach`]), authentication ([`super::auth_diag`]). A failing hop
//! ends the descent: the hops behind it cannot be looked at, and the
//! report names the one that failed.
//!
//! All of it comes from one connection: a fresh one of the doctor's own
//! (never a pooled or daemon connection) whose every step is traced
//! ([`belay_ssh::ConnectTrace`]); it never asks to accept a host key
//! (the doctor records nothing), and once up it is handed to
//! [`super::on_host`].

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use belay_ssh::{ConnectInfo, ConnectTrace, Prompter, ResolvedChain, SshError, Step};

use super::report::{Check, Report, Section, Verdict};
use super::{auth_diag, reach, resolution};
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
    let chain = resolution::check(hosts, host, report)?;
    let trace = Arc::new(ConnectTrace::new());
    let mut opts = hosts.client_options(host);
    opts.prompter = Arc::new(LooksOnly(opts.prompter.clone()));
    opts.trace = Some(trace.clone());
    let transport = hosts.fresh_ssh_with(host, opts);
    let started = Instant::now();
    let result = runtime().block_on(transport.client().connect_info());
    let events = trace.events();
    let error = result.as_ref().err();
    let hops: Vec<&str> = chain.hops().map(|h| h.alias.as_str()).collect();
    let mut checks = Vec::new();
    for e in &events {
        let prev = hops
            .iter()
            .position(|h| *h == e.hop)
            .and_then(|i| i.checked_sub(1))
            .map(|i| hops[i]);
        if e.step == Step::Auth {
            checks.extend(auth_diag::checks(e, resolved(&chain, &e.hop)));
        } else {
            checks.push(reach::check(e, prev, error));
        }
    }
    let fell_back = result.as_ref().is_ok_and(|i| i.fallback_used.is_some());
    for mut c in checks {
        // A hop that got nothing from its config and then no key: the
        // config's block it missed is the fix (seed 000).
        if c.name == "auth" && c.verdict == Verdict::Fail {
            let missed = report
                .checks
                .iter()
                .find(|w| w.hop == c.hop && w.name == "host block");
            if let Some(fix) = missed.and_then(|w| w.remedy.clone()) {
                c.remedy = Some(format!("{fix}: the key and user of that block apply then"));
            }
        }
        if fell_back && c.verdict == Verdict::Fail {
            // The configured first hop failed, a fallback worked.
            c.verdict = Verdict::Warn;
        }
        report.push(c);
    }
    match result {
        Ok(info) => {
            if let Some(fb) = &info.fallback_used {
                report.push(Check::warn(
                    Section::Reachability,
                    host,
                    "jump_fallbacks",
                    format!("the configured first hop failed; reached through the fallback {fb}"),
                ));
            }
            Some(Reached {
                transport: transport.clone(),
                ssh: Some(transport),
                info: Some(info),
            })
        }
        Err(e) => {
            if !events.iter().any(|ev| ev.failure.is_some()) {
                // Failed outside the traced steps (e.g. no round trip):
                // the error itself, at the hop it names.
                let hop = failing_hop(&e, &chain).unwrap_or(host).to_string();
                let e = map_error(host, e);
                report.push(
                    Check::fail(Section::Reachability, &hop, "connect", e.to_string())
                        .took(started.elapsed()),
                );
            }
            None
        }
    }
}

/// The hop named `alias` in `chain`.
fn resolved<'a>(chain: &'a ResolvedChain, alias: &str) -> Option<&'a belay_ssh::ResolvedHost> {
    chain.hops().find(|h| h.alias == alias)
}

fn failing_hop<'a>(e: &'a SshError, chain: &ResolvedChain) -> Option<&'a str> {
    let named = match e {
        SshError::Unreachable { hop, .. } => hop,
        SshError::Timeout { host, .. }
        | SshError::LinkLost { host, .. }
        | SshError::HostNotResponding { host, .. } => host,
        _ => return None,
    };
    chain
        .hops()
        .any(|h| &h.alias == named)
        .then_some(named.as_str())
}

/// The user's prompter for passphrases and keyboard-interactive, but
/// never a host key accepted: the doctor only looks.
struct LooksOnly(Arc<dyn Prompter>);

impl Prompter for LooksOnly {
    fn has_terminal(&self) -> bool {
        self.0.has_terminal()
    }
    fn confirm_host_key(&self, _: &str, _: &str, _: &str) -> bool {
        false
    }
    fn passphrase(&self, key_file: &Path) -> Option<String> {
        self.0.passphrase(key_file)
    }
    fn keyboard_interactive(
        &self,
        name: &str,
        instructions: &str,
        prompts: &[(String, bool)],
    ) -> Option<Vec<String>> {
        self.0.keyboard_interactive(name, instructions, prompts)
    }
}
