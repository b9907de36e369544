//! A connection's trace: what each step of reaching and entering each hop
//! saw and how long it took — DNS, TCP connect, ProxyCommand, the
//! direct-tcpip channel through the previous hop, the server's SSH banner,
//! the host key, authentication. `belay doctor` reads it to name the step
//! that failed and why, from the one connection it makes (no second
//! connection per check). Recording is opt-in ([`crate::ClientOptions`]'s
//! `trace`); without one nothing is kept.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::AuthAttempt;

/// The steps of connecting one hop, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Name to addresses.
    Dns,
    /// TCP connect to one of them.
    Tcp,
    /// ProxyCommand started (its stream replaces DNS and TCP).
    ProxyCommand,
    /// A direct-tcpip channel opened on the previous hop.
    Channel,
    /// The server's identification line (`SSH-2.0-…`).
    Banner,
    /// Key exchange (algorithms agreed) — recorded only when it fails
    /// after the banner for a reason other than the host key.
    Kex,
    /// The host key checked against known_hosts.
    HostKey,
    /// User authentication.
    Auth,
}

/// Why a step failed, where the cause is more than its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The name does not resolve.
    NoSuchName,
    /// Connection refused (nothing listens there).
    Refused,
    /// No answer within ConnectTimeout.
    TimedOut,
    /// No route to the host or network.
    Unreachable,
    /// The previous hop refused to open the channel by policy
    /// (`AllowTcpForwarding no`, `PermitOpen`).
    Prohibited,
    /// The previous hop could not connect onward.
    ConnectFailed,
    /// The server closed the connection (e.g. "Too many authentication
    /// failures").
    Closed,
    /// Anything else; the text says what.
    Other,
}

/// One step of one hop.
#[derive(Debug, Clone)]
pub struct TraceEvent {
    /// The hop's name as in the chain (alias or hop spec host).
    pub hop: String,
    pub step: Step,
    pub took: Duration,
    /// What was seen (`127.0.0.1:22`, `SSH-2.0-OpenSSH_9.2p1`, the method
    /// that authenticated); on failure the real error text.
    pub seen: String,
    /// `None` when the step worked.
    pub failure: Option<Cause>,
    /// Every authentication attempt, for [`Step::Auth`].
    pub attempts: Vec<AuthAttempt>,
    /// What the server said it accepts, for a failed [`Step::Auth`].
    pub server_methods: Option<String>,
}

/// Events in the order they happened. Shared (`Arc`) between the caller
/// and the connection being made.
#[derive(Debug, Default)]
pub struct ConnectTrace {
    events: Mutex<Vec<TraceEvent>>,
}

impl ConnectTrace {
    pub fn new() -> ConnectTrace {
        ConnectTrace::default()
    }

    /// Everything recorded so far.
    pub fn events(&self) -> Vec<TraceEvent> {
        self.events
            .lock()
            .map(|e| e.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub(crate) fn push(&self, event: TraceEvent) {
        tracing::debug!(hop = %event.hop, step = ?event.step, failure = ?event.failure, seen = %event.seen, "trace");
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }

    pub(crate) fn ok(&self, hop: &str, step: Step, took: Duration, seen: impl Into<String>) {
        self.push(TraceEvent {
            hop: hop.to_string(),
            step,
            took,
            seen: seen.into(),
            failure: None,
            attempts: Vec::new(),
            server_methods: None,
        });
    }

    pub(crate) fn fail(
        &self,
        hop: &str,
        step: Step,
        took: Duration,
        cause: Cause,
        seen: impl Into<String>,
    ) {
        self.push(TraceEvent {
            hop: hop.to_string(),
            step,
            took,
            seen: seen.into(),
            failure: Some(cause),
            attempts: Vec::new(),
            server_methods: None,
        });
    }
}

/// The cause of a failed connect, from the OS error.
pub(crate) fn io_cause(kind: std::io::ErrorKind) -> Cause {
    use std::io::ErrorKind as K;
    match kind {
        K::ConnectionRefused => Cause::Refused,
        K::TimedOut => Cause::TimedOut,
        K::HostUnreachable | K::NetworkUnreachable => Cause::Unreachable,
        _ => Cause::Other,
    }
}

/// A server's identification line and when it was complete.
type Banner = (String, Duration);

/// The first line the server sent starting with `SSH-` (its
/// identification), seen as bytes pass by — nothing is consumed.
#[derive(Debug)]
pub(crate) struct BannerSniff {
    started: Instant,
    /// The line so far, and the banner once complete (with its time).
    state: Mutex<(Vec<u8>, Option<Banner>)>,
}

impl BannerSniff {
    pub(crate) fn new() -> BannerSniff {
        BannerSniff {
            started: Instant::now(),
            state: Mutex::new((Vec::new(), None)),
        }
    }

    /// Feeds bytes read from the server (until the banner is complete).
    pub(crate) fn feed(&self, bytes: &[u8]) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let (buf, found) = &mut *st;
        if found.is_some() {
            return;
        }
        for &b in bytes {
            if b == b'\n' {
                let line = String::from_utf8_lossy(buf).trim_end().to_string();
                buf.clear();
                if line.starts_with("SSH-") {
                    *found = Some((line, self.started.elapsed()));
                    return;
                }
            } else if buf.len() < 512 {
                buf.push(b);
            }
        }
    }

    pub(crate) fn done(&self) -> bool {
        self.state.lock().is_ok_and(|s| s.1.is_some())
    }

    /// The banner and when it was complete (from the stream's start).
    pub(crate) fn banner(&self) -> Option<Banner> {
        self.state.lock().ok().and_then(|s| s.1.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_is_the_first_ssh_line_in_any_chunking() {
        let s = BannerSniff::new();
        s.feed(b"hello there\r\nSSH-2.0-Open");
        assert!(!s.done());
        s.feed(b"SSH_9.2p1 Debian\r\n\x00\x00\x01");
        assert_eq!(s.banner().unwrap().0, "SSH-2.0-OpenSSH_9.2p1 Debian");
        s.feed(b"SSH-2.0-other\r\n");
        assert_eq!(s.banner().unwrap().0, "SSH-2.0-OpenSSH_9.2p1 Debian");
    }
}
