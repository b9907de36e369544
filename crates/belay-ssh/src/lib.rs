//! belay-ssh: the SSH client engine. It knows hosts, keys and channels, and
//! nothing about jobs. Every connection parameter comes from the user's
//! OpenSSH configuration as resolved by `ssh -G` — one source of truth for
//! every code path (jobs, transfers, shells, tunnels).
//!
//! * [`resolve()`] — `ssh -G` for the host and each ProxyJump hop.
//! * [`known_hosts`] — host-key verification, [`trust_host_key`], [`forget_host_key`].
//! * [`auth`] — agent, identity files, certificates, keyboard-interactive.
//! * [`Client`] / [`Pool`] — pooled, reconnecting connections with
//!   [`Client::run_script`] (persistent `/bin/sh`), [`Client::exec`] and
//!   [`Client::exec_stream`] (bulk data, [`ExecStream`]), and
//!   [`Client::open_sftp`] ([`Sftp`]) for hosts that refuse commands.
//!
//! Crypto backend: russh with `ring` (see README.md for the measurement).

pub mod auth;
mod backoff;
mod client;
mod error;
mod key_file;
pub mod known_hosts;
mod prompt;
mod quickack;
pub mod resolve;
mod revoked_keys;
mod sanitize;
pub mod session;
pub mod sftp;
mod shell;
mod stream;
mod tokens;

pub use auth::{AuthAttempt, AuthError};
pub use backoff::Backoff;
pub use client::{ChannelIo, Client, ClientOptions, Pool, scan_host_key};
pub use error::SshError;
pub use known_hosts::{HostKeyAccepted, HostKeyError, fingerprint};
pub use prompt::{NoTerminal, Prompter};
pub use resolve::{
    CONFIG_ENV, HopSpec, IdentityAgent, ResolvedChain, ResolvedHost, StrictHostKeyChecking, resolve,
};
/// The SFTP protocol types [`Sftp::raw`] speaks.
pub use russh_sftp;
pub use sanitize::{terminal_safe, terminal_safe_bytes};
pub use session::{ConnectInfo, HopInfo};
pub use sftp::Sftp;
pub use shell::{ReplyLimits, ScriptOutput};
pub use stream::{ExecStream, StreamEnd};

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

/// Removes `host`'s entries from its UserKnownHostsFile(s); returns the
/// `(file, line)` entries removed.
pub fn forget_host_key(
    host: &ResolvedHost,
) -> Result<Vec<(std::path::PathBuf, usize)>, HostKeyError> {
    known_hosts::forget(host)
}
