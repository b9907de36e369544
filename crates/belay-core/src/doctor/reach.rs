//! Reachability and host-key verdicts from the steps of the doctor's one
//! connection ([`belay_ssh::ConnectTrace`]): DNS, TCP (refused, timed out,
//! unreachable), ProxyCommand, the channel through the previous hop (a
//! jump that refuses to forward), the SSH banner, the key exchange, and
//! the host key (unknown, changed, revoked), each with its timing and fix.

use belay_ssh::{Cause, HostKeyError, SshError, Step, TraceEvent};

use super::report::{Check, Section};

/// The check for one non-authentication step. `prev` is the hop in front
/// of `e.hop` (for channel steps); `error` is the connection's final error
/// (the host key's structured reason).
pub fn check(e: &TraceEvent, prev: Option<&str>, error: Option<&SshError>) -> Check {
    let hop = e.hop.as_str();
    let (section, name) = match e.step {
        Step::Dns => (Section::Reachability, "dns"),
        Step::Tcp => (Section::Reachability, "tcp"),
        Step::ProxyCommand => (Section::Reachability, "proxycommand"),
        Step::Channel => (Section::Reachability, "channel"),
        Step::Banner => (Section::Reachability, "banner"),
        Step::Kex => (Section::Reachability, "kex"),
        Step::HostKey => (Section::HostKey, "known_hosts"),
        Step::Auth => (Section::Authentication, "auth"),
    };
    let Some(cause) = e.failure else {
        return Check::ok(section, hop, name, e.seen.clone()).took(e.took);
    };
    let secs = e.took.as_secs_f64();
    let (check_hop, seen, remedy) = match (e.step, cause) {
        (Step::Dns, _) => (
            hop,
            e.seen.clone(),
            format!(
                "check HostName of '{hop}' in your ssh config (`ssh -G {hop} | grep ^hostname`), or your DNS / VPN"
            ),
        ),
        (Step::Tcp, Cause::Refused) => (
            hop,
            format!("connection refused: {} — nothing listens there", e.seen),
            format!("is sshd running on '{hop}', and is its Port right in your ssh config?"),
        ),
        (Step::Tcp, Cause::TimedOut) => (
            hop,
            format!("no answer after {secs:.1} s: {}", e.seen),
            format!(
                "'{hop}' is down or a firewall drops the packets: check the address, your VPN or the host's allow list"
            ),
        ),
        (Step::Tcp, Cause::Unreachable) => (
            hop,
            format!("no route: {}", e.seen),
            format!(
                "'{hop}' cannot be reached from this network: connect your VPN, or reach it through a jump host (ProxyJump)"
            ),
        ),
        (Step::Channel, Cause::Prohibited) => {
            let jump = prev.unwrap_or("the jump host");
            (
                prev.unwrap_or(hop),
                format!(
                    "jump refuses to forward: {jump} will not open a channel to '{hop}' \
                     (administratively prohibited: `AllowTcpForwarding no` or PermitOpen in its sshd_config)"
                ),
                format!(
                    "ask the admin of {jump} to allow TCP forwarding (`AllowTcpForwarding yes`) for you, \
                     or reach '{hop}' another way (another jump host, ProxyCommand)"
                ),
            )
        }
        (Step::Channel, Cause::ConnectFailed) => (
            hop,
            e.seen.clone(),
            format!(
                "{} cannot connect to '{hop}': is sshd running there, and are HostName/Port of '{hop}' right as seen from {}?",
                prev.unwrap_or("the jump host"),
                prev.unwrap_or("it")
            ),
        ),
        (Step::Banner, Cause::TimedOut) => (
            hop,
            e.seen.clone(),
            format!(
                "the TCP port of '{hop}' answers but its sshd does not: the server is hung or stopped, \
                 or overloaded (MaxStartups)"
            ),
        ),
        (Step::Banner, _) => (
            hop,
            e.seen.clone(),
            format!(
                "check that '{hop}' runs sshd on that port (not another service), and that it accepts you \
                 (MaxStartups, DenyUsers, tcp wrappers)"
            ),
        ),
        (Step::Kex, _) => (
            hop,
            e.seen.clone(),
            format!(
                "client and server share no algorithms, or the server is broken: compare with `ssh -vv {hop}`"
            ),
        ),
        (Step::HostKey, _) => {
            let (seen, remedy) = host_key(hop, error, &e.seen);
            (hop, seen, remedy)
        }
        _ => (
            hop,
            e.seen.clone(),
            format!("see `ssh -vv {hop}` for what OpenSSH makes of it"),
        ),
    };
    Check::fail(section, check_hop, name, seen)
        .remedy(remedy)
        .took(e.took)
}

/// What was seen about a refused host key, and the fix.
fn host_key(hop: &str, error: Option<&SshError>, seen: &str) -> (String, String) {
    match error {
        Some(SshError::HostKey(HostKeyError::Unknown {
            key, files, alias, ..
        })) => (
            format!("unknown host key {key} (not in {files})"),
            format!(
                "if that fingerprint is the server's (ask its admin), record it: `belay host trust {alias}`"
            ),
        ),
        Some(SshError::HostKey(HostKeyError::Changed {
            key,
            file,
            line,
            alias,
            ..
        })) => (
            format!(
                "host key changed: the server offers {key}, {}:{line} holds another",
                file.display()
            ),
            format!(
                "if the host was really re-created, `belay host forget {alias}` (removes {}:{line}) then \
                 `belay host trust {alias}`; otherwise this may be an attack — do not connect",
                file.display()
            ),
        ),
        Some(SshError::HostKey(HostKeyError::Revoked {
            key, file, line, ..
        })) => (
            format!(
                "host key {key} is revoked (@revoked at {}:{line})",
                file.display()
            ),
            format!(
                "do not connect to '{hop}': its key is revoked; get the new key from its admin"
            ),
        ),
        Some(SshError::HostKey(HostKeyError::RevokedByList {
            what,
            key,
            file,
            line,
            ..
        })) => (
            format!(
                "{what} {key} is revoked by RevokedHostKeys {}:{line}",
                file.display()
            ),
            format!(
                "do not connect to '{hop}': its key is revoked; get the new key from its admin"
            ),
        ),
        Some(SshError::HostKey(HostKeyError::Declined { key, .. })) => (
            format!("unknown host key {key}"),
            format!(
                "if that fingerprint is the server's (ask its admin), record it: `belay host trust {hop}`"
            ),
        ),
        _ => (
            seen.to_string(),
            format!("check known_hosts for '{hop}' (`belay host show {hop}`)"),
        ),
    }
}
