//! `belay doctor HOST`: ordered checks that name the failing hop, what was
//! seen and the one-line fix. The seeds' users lost days to "ssh works but
//! the tool fails"; a doctor turns each such failure into a verdict.
//!
//! The checks run in the order a connection is made, hop by hop along the
//! jump chain — [`connection`]: resolution (`ssh -G`, `resolution`),
//! reachability (DNS, TCP, banner) and host key (`reach`), authentication
//! (`auth_diag`) — and, once the whole chain answers, on the host
//! itself — [`on_host`]: server capabilities (SFTP,
//! forwarding, MaxSessions), the login shell, and the host (workroot,
//! space, clock, tools, jobs recorded elsewhere). A failing hop stops the
//! descent but is always named.
//!
//! The doctor always makes its own fresh connection (a daemon's warm one
//! would hide a host that no longer takes new ones) and records nothing:
//! it only looks. [`report`] holds the verdicts and their stable JSON.

mod auth_diag;
pub mod capabilities;
pub mod connection;
pub mod elsewhere;
pub mod gpus;
pub mod host_facts;
pub mod login_shell;
pub mod on_host;
mod reach;
pub mod report;
mod resolution;
pub mod system;
pub mod tools;
pub mod workroot;

use std::time::Instant;

pub use report::{Check, Report, Section, Verdict};

use crate::hosts::Hosts;
use crate::store::Store;

/// Diagnoses `host` (already validated as a name). Never fails: every
/// problem is a verdict in the report.
pub fn diagnose(hosts: &Hosts, store: &Store, host: &str) -> Report {
    let started = Instant::now();
    let mut report = Report::new(host);
    if let Some(reached) = connection::check_chain(hosts, host, &mut report) {
        on_host::check_host(hosts, store, &reached, &mut report);
    }
    report.finish(started.elapsed());
    report
}
