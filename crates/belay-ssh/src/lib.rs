//! belay-ssh: the SSH client engine. It knows hosts, keys and channels, and
//! nothing about jobs. Every connection parameter comes from the user's
//! OpenSSH configuration as resolved by `ssh -G` — one source of truth for
//! every code path (jobs, transfers, shells, tunnels).
//!
//! * [`resolve()`] — `ssh -G` for the host and each ProxyJump hop.
//! * [`known_hosts`] — host-key verification, [`trust_host_key`], [`forget_host_key`],
//!   [`recorded_host_key`] (what is on file for a host, compared with a key).
//! * [`auth`] — agent, identity files, certificates, keyboard-interactive.
//! * [`Client`] / [`Pool`] — pooled, reconnecting connections with
//!   [`Client::run_script`] (persistent `/bin/sh`), [`Client::exec`] and
//!   [`Client::exec_stream`] (bulk data, [`ExecStream`]), and
//!   [`Client::open_sftp`] ([`Sftp`]) for hosts that refuse commands, and
//!   [`Client::open_forward`] ([`forward`]: `ssh -L` to a port or a Unix socket),
//!   [`Client::open_interactive`] ([`Interactive`]: a terminal session),
//!   [`Client::open_command_stream`] ([`CommandStream`]: a relay command's
//!   stdio as a byte stream). A
//!   live connection is reused only while the known_hosts/config files its
//!   trust came from are unchanged (`trust_stamp`, a [`FileStamp`]): a
//!   long-lived daemon re-checks a host key the user has since changed, as a
//!   new `ssh` would.
//!
//! * [`trace`] — what each step of a connection saw ([`ConnectTrace`], for
//!   `belay doctor`), and [`host_match::unmatched_name`] (a hop name no `Host`
//!   block matched).
//!
//! Crypto backend: russh with `ring` (see README.md for the measurement);
//! the cipher order follows the user's config, with AES-GCM first only for
//! OpenSSH's default list on AES hardware (`cipher_order`).

mod agent_socket;
pub mod auth;
mod backoff;
mod calls;
mod cert_info;
mod cipher_order;
mod client;
mod command_stream;
mod error;
mod file_stamp;
pub mod forward;
pub mod host_match;
pub mod jump_cache;
mod key_file;
pub mod known_hosts;
mod prompt;
pub mod pty;
mod quickack;
pub mod resolve;
mod revoked_keys;
mod sanitize;
pub mod session;
pub mod sftp;
mod shell;
mod shell_stream;
mod stream;
mod tokens;
pub mod trace;
mod trust_stamp;

pub use agent_socket::AgentSocket;
pub use auth::{AuthAttempt, AuthError};
pub use backoff::Backoff;
pub use calls::remote_commands;
pub use cert_info::{CertificateTerms, certificate_terms};
pub use client::{
    ChannelIo, Client, ClientOptions, EXTRA_IDLE, MAX_CONNECTIONS, Pool, scan_host_key,
};
pub use command_stream::CommandStream;
pub use error::SshError;
pub use file_stamp::FileStamp;
pub use forward::{ForwardError, ForwardStream, ForwardTarget};
pub use jump_cache::JumpCache;
pub use known_hosts::{HostKeyAccepted, HostKeyError, fingerprint};
pub use prompt::{NoTerminal, Prompter};
pub use pty::{
    Interactive, InteractiveInput, InteractiveOutput, PtySpec, SessionEvent, SessionRequest,
};
pub use resolve::{
    CONFIG_ENV, HopSpec, IdentityAgent, ResolvedChain, ResolvedHost, StrictHostKeyChecking,
    config_file_from_env, resolve,
};
/// The SFTP protocol types [`Sftp::raw`] speaks.
pub use russh_sftp;
pub use sanitize::{terminal_safe, terminal_safe_bytes};
pub use session::{ConnectInfo, HopInfo, OP_SILENCE};
pub use sftp::Sftp;
pub use shell::{ReplyLimits, ScriptOutput, ShellFraming};
pub use shell_stream::ShellStream;
pub use stream::{ExecStream, StreamEnd};
pub use trace::{Cause, ConnectTrace, Step, TraceEvent};

/// A server public key (re-exported so callers need not depend on russh).
pub type PublicKey = russh::keys::PublicKey;

/// Records `key` for `host` (the chain's target) in its first
/// UserKnownHostsFile, honouring HostKeyAlias and `[host]:port`. Call only
/// after showing [`fingerprint`] to the user. Returns the file and line.
pub fn trust_host_key(
    host: &ResolvedHost,
    key: &PublicKey,
) -> Result<(std::path::PathBuf, usize), HostKeyError> {
    known_hosts::trust(host, key)
}

/// What `host`'s known_hosts files already hold for it, compared with
/// `key` (a freshly scanned key): `belay host trust` records nothing over
/// a different key unless told to replace it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedHostKey {
    /// Nothing is recorded for this host.
    Nothing,
    /// `key` itself is recorded (at this file and line).
    Same(std::path::PathBuf, usize),
    /// Another key is recorded for this host (at this file and line).
    Different(std::path::PathBuf, usize),
    /// `key` is marked `@revoked` (at this file and line).
    Revoked(std::path::PathBuf, usize),
}

/// Compares `key` with what is recorded for `host` (the chain's target).
pub fn recorded_host_key(host: &ResolvedHost, key: &PublicKey) -> RecordedHostKey {
    let offered = russh::keys::PublicKeyOrCertificate::PublicKey {
        key: key.clone(),
        hash_alg: None,
    };
    let files = known_hosts::all_files(host);
    match known_hosts::lookup(&host.known_hosts_name(), &offered, &files) {
        known_hosts::Lookup::Known { file, line } => RecordedHostKey::Same(file, line),
        known_hosts::Lookup::Revoked { file, line } => RecordedHostKey::Revoked(file, line),
        known_hosts::Lookup::Changed { file, line } => RecordedHostKey::Different(file, line),
        known_hosts::Lookup::Unknown { others } => match others.into_iter().next() {
            // A key of another type is recorded: the host no longer offers
            // the one belay knows, which is as suspect as a changed key.
            Some((file, line)) => RecordedHostKey::Different(file, line),
            None => RecordedHostKey::Nothing,
        },
    }
}

/// Removes `host`'s entries from its UserKnownHostsFile(s); returns the
/// `(file, line)` entries removed.
pub fn forget_host_key(
    host: &ResolvedHost,
) -> Result<Vec<(std::path::PathBuf, usize)>, HostKeyError> {
    known_hosts::forget(host)
}
