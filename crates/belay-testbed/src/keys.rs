//! Key material for tests, made by the real `ssh-keygen`: key pairs in any
//! algorithm OpenSSH supports, and a user certificate authority that signs
//! OpenSSH user certificates with chosen principals and validity windows
//! (including windows already in the past, to test expiry messages).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::run;

/// Key algorithm for [`KeyPair::generate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Ed25519,
    Ecdsa,
    Rsa,
}

impl KeyKind {
    fn keygen_args(self) -> &'static [&'static str] {
        match self {
            KeyKind::Ed25519 => &["-t", "ed25519"],
            KeyKind::Ecdsa => &["-t", "ecdsa", "-b", "256"],
            KeyKind::Rsa => &["-t", "rsa", "-b", "2048"],
        }
    }
}

/// A private key file and its `.pub` beside it.
#[derive(Debug, Clone)]
pub struct KeyPair {
    /// Path of the private key (OpenSSH format, mode 0600).
    pub private: PathBuf,
    /// Path of the public key (`<private>.pub`).
    pub public: PathBuf,
}

impl KeyPair {
    /// Generates `dir/name` (+ `.pub`) without a passphrase.
    pub fn generate(dir: &Path, name: &str, kind: KeyKind) -> io::Result<KeyPair> {
        Self::generate_with_passphrase(dir, name, kind, "")
    }

    /// Generates `dir/name` encrypted with `passphrase` ("" for none).
    pub fn generate_with_passphrase(
        dir: &Path,
        name: &str,
        kind: KeyKind,
        passphrase: &str,
    ) -> io::Result<KeyPair> {
        let private = dir.join(name);
        run(Command::new("ssh-keygen")
            .args(["-q"])
            .args(kind.keygen_args())
            .arg("-N")
            .arg(passphrase)
            .arg("-C")
            .arg(format!("belay-testbed-{name}"))
            .arg("-f")
            .arg(&private))?;
        let public = dir.join(format!("{name}.pub"));
        Ok(KeyPair { private, public })
    }

    /// The public key line (`ssh-ed25519 AAAA... comment`), for
    /// authorized_keys.
    pub fn public_line(&self) -> io::Result<String> {
        Ok(std::fs::read_to_string(&self.public)?.trim().to_string())
    }

    /// Where OpenSSH looks for this key's certificate: `<private>-cert.pub`.
    pub fn cert_path(&self) -> PathBuf {
        let mut s = self.private.clone().into_os_string();
        s.push("-cert.pub");
        PathBuf::from(s)
    }
}

/// A user certificate authority (an ed25519 key pair used with
/// `ssh-keygen -s`). Put [`UserCa::public`] in sshd's `TrustedUserCAKeys`.
#[derive(Debug, Clone)]
pub struct UserCa {
    pub key: KeyPair,
}

impl UserCa {
    /// Creates the CA key `dir/user_ca`.
    pub fn new(dir: &Path) -> io::Result<UserCa> {
        Ok(UserCa {
            key: KeyPair::generate(dir, "user_ca", KeyKind::Ed25519)?,
        })
    }

    /// Path of the CA public key (for `TrustedUserCAKeys`).
    pub fn public(&self) -> &Path {
        &self.key.public
    }

    /// Signs `user_key`'s public key for `principals` with `validity` in
    /// `ssh-keygen -V` syntax (e.g. `"-5m:+1h"`, or `"-3h:-2h"` for a
    /// certificate that expired two hours ago). Writes
    /// `<private>-cert.pub` — where OpenSSH and belay look for it — and
    /// returns that path.
    pub fn sign(
        &self,
        user_key: &KeyPair,
        principals: &[&str],
        validity: &str,
    ) -> io::Result<PathBuf> {
        run(Command::new("ssh-keygen")
            .arg("-q")
            .arg("-s")
            .arg(&self.key.private)
            .args(["-I", "belay-testbed"])
            .arg("-n")
            .arg(principals.join(","))
            .arg("-V")
            .arg(validity)
            .arg(&user_key.public))?;
        Ok(user_key.cert_path())
    }
}
