//! `RevokedHostKeys` (ssh_config): host keys refused wherever they show
//! up. OpenSSH reads either a text file of public keys, one per line, or a
//! binary Key Revocation List (KRL). belay reads the text form; a KRL it
//! cannot read yet, so — like OpenSSH with a file it cannot read — it
//! refuses every host key rather than ignore the list. For a host
//! certificate, the certificate's key and the CA that signed it are both
//! checked (as OpenSSH's `sshkey_check_revoked` does).

use std::path::{Path, PathBuf};

use russh::keys::ssh_key::PublicKey;
use russh::keys::{PublicKeyOrCertificate, ssh_key::public::KeyData};

/// The first bytes of a binary KRL (`ssh-keygen -k`).
const KRL_MAGIC: &[u8] = b"SSHKRL\n\0";

/// What a RevokedHostKeys file says about a presented key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not listed.
    Clear,
    /// Listed at `line`; `what` is `host key` or `CA key`.
    Revoked { line: usize, what: &'static str },
    /// The file cannot be checked (missing, unreadable, a KRL): refuse.
    Unreadable { reason: String },
}

/// Checks `key` against the RevokedHostKeys `file`.
pub(crate) fn check(file: &Path, key: &PublicKeyOrCertificate) -> Verdict {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            return Verdict::Unreadable {
                reason: format!("cannot read it: {e}"),
            };
        }
    };
    if bytes.starts_with(KRL_MAGIC) {
        return Verdict::Unreadable {
            reason: "it is a binary KRL, which belay cannot read yet (list the revoked keys \
                     one per line instead, as `ssh-keygen` public key lines)"
                .into(),
        };
    }
    let candidates: Vec<(&KeyData, &'static str)> = match key {
        PublicKeyOrCertificate::PublicKey { key, .. } => vec![(key.key_data(), "host key")],
        PublicKeyOrCertificate::Certificate(c) => {
            vec![(c.public_key(), "host key"), (c.signature_key(), "CA key")]
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut f = l.split_whitespace();
        let (Some(kt), Some(b64)) = (f.next(), f.next()) else {
            continue;
        };
        let Ok(listed) = PublicKey::from_openssh(&format!("{kt} {b64}")) else {
            continue;
        };
        if let Some((_, what)) = candidates.iter().find(|(k, _)| *k == listed.key_data()) {
            return Verdict::Revoked { line: i + 1, what };
        }
    }
    Verdict::Clear
}

/// RevokedHostKeys as `ssh -G` printed it (`None` when unset or `none`).
pub(crate) fn configured(raw: Option<&str>) -> Option<PathBuf> {
    raw.filter(|v| !v.eq_ignore_ascii_case("none"))
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const K2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB4kFXGNyrq+ASNRLx1KuLoCExhGOXmtr5Gm0IGkZ0Ux";

    fn key(s: &str) -> PublicKeyOrCertificate {
        PublicKeyOrCertificate::PublicKey {
            key: PublicKey::from_openssh(s).unwrap(),
            hash_alg: None,
        }
    }

    #[test]
    fn text_lists_krls_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("revoked");
        std::fs::write(&f, format!("# revoked\n{K2} old box\n")).unwrap();
        assert_eq!(check(&f, &key(K1)), Verdict::Clear);
        assert_eq!(
            check(&f, &key(K2)),
            Verdict::Revoked {
                line: 2,
                what: "host key"
            }
        );
        std::fs::write(&f, b"SSHKRL\n\0ORLKHS rest").unwrap();
        assert!(matches!(check(&f, &key(K1)), Verdict::Unreadable { .. }));
        let missing = dir.path().join("missing");
        assert!(matches!(
            check(&missing, &key(K1)),
            Verdict::Unreadable { .. }
        ));
    }
}
