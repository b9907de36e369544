//! Host keys: fetching a host's key to show it ([`Hosts::scan_key`]),
//! recording it ([`Hosts::trust_key`]) and forgetting it
//! ([`Hosts::forget_key`]). The CLI shows the fingerprint and asks; the
//! decisions that keep trust safe live here: nothing is ever recorded over
//! a *different* key already on file unless the caller says `replace` —
//! a key that changed is the attack case, and the normal path after a
//! machine was re-created is `forget` then `trust`.

use std::path::PathBuf;

use belay_ssh::{PublicKey, RecordedHostKey, fingerprint, scan_host_key};

use super::Hosts;
use crate::error::{CoreError, Result};
use crate::transport::ssh::{map_error, runtime};

/// Why a host key was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A different key is already recorded for the host.
    #[error(
        "{host} offers a key that differs from the one recorded in {}:{line}: \
         this is what an attack looks like, so nothing was recorded. If the machine \
         was re-created, check the new fingerprint out of band and run \
         `belay host trust {host} --replace` (or `belay host forget {host}` first)",
        file.display()
    )]
    KeyDiffers {
        host: String,
        file: PathBuf,
        line: usize,
    },
    /// The offered key is marked `@revoked`.
    #[error("{host} offers a key marked @revoked in {}:{line}: nothing recorded", file.display())]
    Revoked {
        host: String,
        file: PathBuf,
        line: usize,
    },
    /// The caller pinned a fingerprint and the key has another one.
    #[error("the key's fingerprint is {actual}, not {expected}: nothing recorded")]
    FingerprintMismatch { expected: String, actual: String },
    /// known_hosts could not be read or written.
    #[error(transparent)]
    File(#[from] belay_ssh::HostKeyError),
}

/// A host's key as it offered it just now, not trusted yet.
pub struct ScannedKey {
    pub host: String,
    /// Where the key came from (`hostname`, `port` of the chain's target).
    pub hostname: String,
    pub port: u16,
    /// `ssh-ed25519`, …
    pub algorithm: String,
    /// `SHA256:…`, as OpenSSH prints it.
    pub fingerprint: String,
    /// What known_hosts already holds for the host, compared with this key.
    pub recorded: RecordedHostKey,
    target: belay_ssh::ResolvedHost,
    key: PublicKey,
}

impl ScannedKey {
    /// Whether the key is the one the caller pinned (`--fingerprint`).
    pub fn matches(&self, expected: &str) -> std::result::Result<(), TrustError> {
        if expected == self.fingerprint {
            return Ok(());
        }
        Err(TrustError::FingerprintMismatch {
            expected: expected.to_string(),
            actual: self.fingerprint.clone(),
        })
    }

    /// Whether this key may be recorded: refused when it is revoked, or
    /// when a different key is on file and `replace` was not given.
    pub fn may_record(&self, replace: bool) -> std::result::Result<(), TrustError> {
        may_record(&self.host, &self.recorded, replace)
    }
}

/// Whether a key may be recorded for `host` over what known_hosts holds
/// for it (`recorded`, compared with the key): refused when it is
/// revoked, or when a different key is on file and `replace` was not
/// given. (A client of the daemon decides on the daemon's scan.)
pub fn may_record(
    host: &str,
    recorded: &RecordedHostKey,
    replace: bool,
) -> std::result::Result<(), TrustError> {
    match recorded {
        RecordedHostKey::Revoked(file, line) => Err(TrustError::Revoked {
            host: host.to_string(),
            file: file.clone(),
            line: *line,
        }),
        RecordedHostKey::Different(file, line) if !replace => Err(TrustError::KeyDiffers {
            host: host.to_string(),
            file: file.clone(),
            line: *line,
        }),
        _ => Ok(()),
    }
}

impl Hosts {
    /// Fetches `host`'s key without trusting it (jump hosts on the way must
    /// already be trusted) and compares it with what is recorded.
    pub fn scan_key(&self, host: &str) -> Result<ScannedKey> {
        self.validate(host)?;
        let opts = self.client_options(host);
        let (chain, key) = runtime()
            .block_on(scan_host_key(host, &opts))
            .map_err(|e| CoreError::Transport(map_error(host, e)))?;
        let target = chain.target;
        Ok(ScannedKey {
            host: host.to_string(),
            hostname: target.hostname.clone(),
            port: target.port,
            algorithm: key.algorithm().as_str().to_string(),
            fingerprint: fingerprint(&key),
            recorded: belay_ssh::recorded_host_key(&target, &key),
            target,
            key,
        })
    }

    /// Records a scanned key in the host's first UserKnownHostsFile (after
    /// the user has seen its fingerprint). With `replace`, the entries of a
    /// different recorded key are removed first. Returns the file and line
    /// (the existing entry when this very key is already recorded).
    pub fn trust_key(&self, scanned: &ScannedKey, replace: bool) -> Result<(PathBuf, usize)> {
        scanned.may_record(replace)?;
        match &scanned.recorded {
            RecordedHostKey::Same(file, line) => return Ok((file.clone(), *line)),
            RecordedHostKey::Different(..) => {
                belay_ssh::forget_host_key(&scanned.target).map_err(TrustError::from)?;
            }
            _ => {}
        }
        Ok(belay_ssh::trust_host_key(&scanned.target, &scanned.key).map_err(TrustError::from)?)
    }

    /// Removes `host`'s entries from its known_hosts file(s); returns the
    /// `(file, line)` entries removed.
    pub fn forget_key(&self, host: &str) -> Result<Vec<(PathBuf, usize)>> {
        let chain = self.resolve(host)?;
        Ok(belay_ssh::forget_host_key(&chain.target).map_err(TrustError::from)?)
    }
}
