//! The doctor's look at what the SSH servers of the chain allow, tried on
//! the doctor's own fresh connection: the SFTP subsystem (belay copies
//! through its shells without it, other tools do not), TCP and stream-local
//! forwarding (what `belay forward` and `belay app` need), on the target and
//! on each jump hop (the chain reaching the next hop through a jump proves
//! that jump forwards TCP), and MaxSessions (how many session channels one
//! connection may have).
//!
//! Forwarding is judged by the server's answer: a direct-tcpip to a closed
//! port answers "connect failed" where forwarding is allowed and
//! "administratively prohibited" where it is not. OpenSSH refuses a
//! stream-local forward with "connect failed", the same answer a missing
//! socket gets, so the doctor tries it against a socket that listens (the
//! host facts leave one listening for a few seconds; see
//! [`super::host_facts`]).

use belay_ssh::{Client, ForwardError, ForwardTarget};

use super::connection::Reached;
use super::host_facts::HostFacts;
use super::report::{Check, Section};
use crate::transport::ssh::runtime;

/// Session channels opened at most to find MaxSessions (OpenSSH's default).
pub const SESSION_BOUND: usize = 10;
/// Fewer sessions per connection than this is worth a warning.
pub const FEW_SESSIONS: usize = 3;

/// The capability checks that need nothing from the host facts: SFTP and
/// TCP forwarding on each hop.
pub fn sftp_and_tcp(reached: &Reached, host: &str) -> Vec<Check> {
    let Some(ssh) = &reached.ssh else {
        return vec![Check::ok(
            Section::Capabilities,
            host,
            "ssh",
            "no SSH (the embedded host): nothing to check",
        )];
    };
    let client = ssh.client();
    let mut out = vec![sftp(client, host)];
    if let Some(info) = &reached.info {
        for pair in info.hops.windows(2) {
            out.push(
                Check::ok(
                    Section::Capabilities,
                    &pair[0].alias,
                    "tcp forwarding",
                    format!(
                        "allowed: the connection to {} goes through it",
                        pair[1].alias
                    ),
                )
                .took(pair[1].stream),
            );
        }
    }
    out.push(tcp_forwarding(client, host));
    out
}

fn sftp(client: &Client, host: &str) -> Check {
    let started = std::time::Instant::now();
    let result = runtime().block_on(async { client.open_sftp().await.map(drop) });
    let took = started.elapsed();
    match result {
        Ok(()) => Check::ok(Section::Capabilities, host, "sftp", "the SFTP subsystem answers"),
        Err(e) => Check::warn(Section::Capabilities, host, "sftp", e.to_string()).remedy(format!(
            "belay still copies through the shell; other tools (sftp, scp in SFTP mode, IDEs) need `Subsystem sftp …` in {host}'s sshd_config"
        )),
    }
    .took(took)
}

fn tcp_forwarding(client: &Client, host: &str) -> Check {
    // Port 1 (tcpmux) is closed nearly everywhere; a listener there would
    // only prove the same thing.
    let target = ForwardTarget::Tcp {
        host: "127.0.0.1".into(),
        port: 1,
    };
    let started = std::time::Instant::now();
    // The stream is dropped inside the runtime (its close needs it).
    let result = runtime().block_on(async { client.open_forward(&target).await.map(drop) });
    let took = started.elapsed();
    match result {
        Ok(_) => Check::ok(
            Section::Capabilities,
            host,
            "tcp forwarding",
            format!("allowed (a direct-tcpip to {target} connected)"),
        ),
        Err(ForwardError::NothingThere { detail, .. }) => Check::ok(
            Section::Capabilities,
            host,
            "tcp forwarding",
            format!("allowed (a direct-tcpip to closed {target} answered '{detail}', not 'prohibited')"),
        ),
        Err(e @ ForwardError::Refused { .. }) => {
            Check::warn(Section::Capabilities, host, "tcp forwarding", e.to_string()).remedy(format!(
                "`belay forward` and `belay app` to ports will fail on {host}: set `AllowTcpForwarding yes` (or `local`) in its sshd_config, or ask its admin"
            ))
        }
        Err(e) => Check::warn(Section::Capabilities, host, "tcp forwarding", e.to_string()),
    }
    .took(took)
}

/// Stream-local forwarding, tried against the facts' listening socket
/// (then stopped) or, without one, a missing path.
pub fn streamlocal(reached: &Reached, facts: Option<&HostFacts>, host: &str) -> Option<Check> {
    let client = reached.ssh.as_ref()?.client();
    let socket = facts.and_then(|f| f.get("sock"));
    let path = socket
        .map(str::to_string)
        .unwrap_or_else(|| "/nonexistent/belay-doctor.sock".to_string());
    let target = ForwardTarget::Unix(path.clone());
    let started = std::time::Instant::now();
    // The stream is dropped inside the runtime (its close needs it).
    let result = runtime().block_on(async { client.open_forward(&target).await.map(drop) });
    let took = started.elapsed();
    if let (Some(f), Some(sock)) = (facts, socket)
        && let Some(pid) = f.get("sock_pid")
    {
        let _ =
            runtime().block_on(client.run_script(&super::host_facts::socket_cleanup(pid, sock)));
    }
    let refused = |e: ForwardError| {
        Check::warn(Section::Capabilities, host, "stream-local forwarding", e.to_string()).remedy(
            format!(
                "`belay app` (Unix sockets) and `belay forward` to a socket will fail on {host}: set `AllowStreamLocalForwarding yes` (or `local`) in its sshd_config, or ask its admin"
            ),
        )
    };
    let check = match (result, socket) {
        (Ok(_), _) => Check::ok(
            Section::Capabilities,
            host,
            "stream-local forwarding",
            "allowed (a direct-streamlocal reached a test socket)",
        ),
        (Err(e @ ForwardError::Refused { .. }), _) => refused(e),
        (Err(ForwardError::NothingThere { detail, .. }), None) => Check::ok(
            Section::Capabilities,
            host,
            "stream-local forwarding",
            format!(
                "not proven: a missing socket answered '{detail}', as OpenSSH also answers when it refuses (no python3 there to listen on a test socket)"
            ),
        ),
        (Err(e), _) => refused(e),
    };
    Some(check.took(took))
}

/// MaxSessions, by opening bare session channels (last: it needs the
/// facts' shell idle, and the server's answer to each close).
pub fn max_sessions(reached: &Reached, host: &str) -> Option<Check> {
    let client = reached.ssh.as_ref()?.client();
    let started = std::time::Instant::now();
    let result = runtime().block_on(client.session_limit(SESSION_BOUND));
    let took = started.elapsed();
    let check = match result {
        Ok(None) => Check::ok(
            Section::Capabilities,
            host,
            "MaxSessions",
            format!("at least {SESSION_BOUND} sessions per connection"),
        ),
        Ok(Some(n)) if n >= FEW_SESSIONS => Check::ok(
            Section::Capabilities,
            host,
            "MaxSessions",
            format!("{n} sessions per connection"),
        ),
        Ok(Some(n)) => Check::warn(
            Section::Capabilities,
            host,
            "MaxSessions",
            format!("the server refused a session channel with {n} open (its MaxSessions)"),
        )
        .remedy(format!(
            "belay keeps below it, learning it from the first refusal, and opens up to {} connections instead (a login each); raise MaxSessions (default 10) in {host}'s sshd_config",
            belay_ssh::MAX_CONNECTIONS
        )),
        Err(e) => Check::warn(Section::Capabilities, host, "MaxSessions", e.to_string()),
    };
    Some(check.took(took))
}
