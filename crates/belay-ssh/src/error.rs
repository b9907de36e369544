//! The crate's error type. Every failure a caller can act on has its own
//! variant, and each carries the real underlying text (ssh's stderr, the OS
//! error, the server's message) so that nothing is swallowed on its way to
//! the user.

use std::time::Duration;

use crate::auth::AuthError;
use crate::known_hosts::HostKeyError;

/// Errors from resolving, connecting to and talking with an SSH host.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// `ssh -G` rejected the host or the configuration (bad config file,
    /// bad option, unreadable Include, ...). `message` is ssh's own stderr.
    #[error("cannot resolve ssh configuration for {host}: {message}")]
    Resolve { host: String, message: String },

    /// The server's host key is unknown, changed or revoked.
    #[error(transparent)]
    HostKey(#[from] HostKeyError),

    /// No authentication method worked; lists what was tried and why each
    /// failed.
    #[error(transparent)]
    Auth(#[from] AuthError),

    /// A hop could not be reached (DNS, connection refused, no route,
    /// timeout, ProxyCommand failure, jump host refused to forward).
    #[error("{hop} is unreachable: {source}")]
    Unreachable {
        hop: String,
        #[source]
        source: std::io::Error,
    },

    /// An established connection went away (TCP reset, server closed,
    /// jump host lost). In-flight operations fail with this.
    #[error("link to {host} lost: {detail}")]
    LinkLost { host: String, detail: String },

    /// The host (or a hop on the way) stopped answering keepalives.
    #[error(
        "{host} is not responding: no answer to keepalives (every {interval:?}, gave up after {count_max} unanswered)"
    )]
    HostNotResponding {
        host: String,
        interval: Duration,
        count_max: u32,
    },

    /// An operation did not finish within its deadline.
    #[error("{host}: {what} timed out after {after:?}")]
    Timeout {
        host: String,
        what: String,
        after: Duration,
    },

    /// The server refused a channel or request (e.g. MaxSessions reached,
    /// forwarding disabled), with the server's reason.
    #[error("{host}: {detail}")]
    Channel { host: String, detail: String },

    /// The host will not run `/bin/sh` for this account: the session ended
    /// or was refused before the shell started (`ForceCommand
    /// internal-sftp`, a `nologin` shell). `detail` has what it printed.
    #[error("{host}: cannot run commands there: {detail}")]
    NoShell { host: String, detail: String },

    /// The remote side broke belay's framing protocol (e.g. no `/bin/sh`).
    #[error("{host}: protocol error: {detail}")]
    Protocol { host: String, detail: String },
}

impl SshError {
    /// True for errors after which reconnecting may help (link lost, host
    /// not responding, unreachable, timeouts) as opposed to errors that need
    /// the user (auth, host key, configuration).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SshError::LinkLost { .. }
                | SshError::HostNotResponding { .. }
                | SshError::Unreachable { .. }
                | SshError::Timeout { .. }
        )
    }
}
