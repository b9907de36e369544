//! The doctor's checks on a host it got through to, in report order:
//! server capabilities ([`super::capabilities`]: SFTP, forwarding on each
//! hop, MaxSessions), the login shell ([`super::login_shell`]: start-up
//! noise, cost), and the host itself ([`super::workroot`], clock and logind
//! in [`super::system`], [`super::tools`], [`super::gpus`], jobs recorded as
//! running [`super::elsewhere`]).
//!
//! Everything about the host comes from ONE script ([`super::host_facts`]),
//! so a healthy host costs one round trip besides the SSH probes. The
//! embedded `local` host gets the shell and host checks; it has no SSH.

use std::time::{Duration, Instant};

use super::connection::Reached;
use super::host_facts::{self, HostFacts};
use super::report::{Check, Report, Section, Verdict};
use super::{capabilities, elsewhere, gpus, login_shell, system, tools, workroot};
use crate::hosts::Hosts;
use crate::store::Store;

/// Runs the on-host checks into `report`.
pub fn check_host(hosts: &Hosts, store: &Store, reached: &Reached, report: &mut Report) {
    let host = report.host.clone();
    let mut capabilities = capabilities::sftp_and_tcp(reached, &host);

    let script = host_facts::script(&reached.transport.workroot(), reached.ssh.is_some());
    let started = Instant::now();
    let result = reached.transport.run_script(&script);
    let received = crate::time::now_ms();
    let took = started.elapsed();
    let facts = match result {
        Ok(out) => {
            let facts = HostFacts::parse(&String::from_utf8_lossy(&out.stdout));
            if facts.complete() {
                Ok(facts)
            } else {
                Err(format!(
                    "the host-facts script stopped early (status {}): {}",
                    out.status,
                    out.stderr_text()
                ))
            }
        }
        Err(e) => Err(e.to_string()),
    };
    capabilities.extend(capabilities::streamlocal(
        reached,
        facts.as_ref().ok(),
        &host,
    ));
    // sshd starts sftp-server through the user's shell: its start-up
    // output lands in the SFTP stream.
    if let Ok(f) = &facts
        && f.number("command_bytes").unwrap_or(0) > 0
    {
        for c in capabilities
            .iter_mut()
            .filter(|c| c.name == "sftp" && c.verdict == Verdict::Warn)
        {
            c.remedy = Some(
                "the shell's start-up output (see Shell) corrupts the SFTP stream: make it silent; belay still copies through the shell".into(),
            );
        }
    }
    // Last: it needs the facts' shell idle and its own channels closed.
    capabilities.extend(capabilities::max_sessions(reached, &host));
    for c in capabilities {
        report.push(c);
    }

    let facts = match facts {
        Ok(f) => f,
        Err(e) => {
            report.push(Check::fail(Section::Shell, &host, "shell", e).took(took));
            return;
        }
    };
    report.push(
        Check::ok(
            Section::Shell,
            &host,
            "shell",
            format!(
                "runs /bin/sh scripts as {} on {}",
                facts.get("user").unwrap_or("?"),
                facts.get("node").unwrap_or("?")
            ),
        )
        .took(took),
    );
    for c in login_shell::checks(&facts, &host) {
        report.push(c);
    }

    for c in workroot::checks(&facts, &host) {
        report.push(c);
    }
    let rtt = reached
        .info
        .as_ref()
        .and_then(|i| i.first_round_trip)
        .unwrap_or(Duration::ZERO);
    report.push(system::clock(
        &host,
        facts.number("clock_ms"),
        received,
        rtt,
    ));
    report.push(system::logind(&facts, &host));
    report.push(tools::tmux(&facts, &host));
    report.push(tools::python3(&facts, &host));
    // A config.toml that does not parse is a failed check, like a bad value in it.
    let scheduler = hosts
        .config()
        .and_then(|c| c.host(&host).scheduler(&host).map(str::to_string));
    match scheduler.as_deref() {
        Ok("slurm") => report.push(tools::slurm(&facts, &host)),
        Ok(_) => {}
        Err(e) => report.push(Check::fail(
            Section::Host,
            &host,
            "scheduler",
            e.to_string(),
        )),
    }
    report.push(gpus::check(&facts, &host));
    report.push(elsewhere::check(store, &facts, &host));
}
