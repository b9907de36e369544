//! Reading a private key file the way OpenSSH does: a file that its owner
//! lets group or others read is refused before it is read (OpenSSH's
//! "UNPROTECTED PRIVATE KEY FILE!" — the key is ignored), and an encrypted
//! key's passphrase is asked only when a terminal is there and BatchMode is
//! off. Errors are the reason, worded for the attempt list of
//! [`crate::AuthError`], with the fix where there is one.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use russh::keys::PrivateKey;

use crate::prompt::Prompter;

/// Who may be asked for a passphrase.
pub(crate) struct PassphrasePolicy<'a> {
    pub prompter: &'a dyn Prompter,
    /// `BatchMode yes`: never ask, terminal or not.
    pub batch_mode: bool,
}

/// OpenSSH's `sshkey_perm_ok`: a key file owned by the caller must not be
/// accessible by group or others. `Err` names the mode and the fix.
pub(crate) fn check_permissions(path: &Path) -> Result<(), String> {
    let Ok(meta) = std::fs::metadata(path) else {
        // Missing or unreadable: the load below says so.
        return Ok(());
    };
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let mode = meta.mode() & 0o777;
    if meta.uid() == uid && mode & 0o077 != 0 {
        let who = match (mode & 0o070 != 0, mode & 0o007 != 0) {
            (true, true) => "group and others",
            (true, false) => "its group",
            _ => "others",
        };
        return Err(format!(
            "refused: UNPROTECTED PRIVATE KEY FILE: permissions {mode:04o} let {who} \
             access it, so it is ignored (as ssh ignores it); fix: chmod 600 {}",
            path.display()
        ));
    }
    Ok(())
}

/// Loads a private key, asking for its passphrase only as `policy` allows.
pub(crate) fn load_private(
    path: &Path,
    policy: &PassphrasePolicy<'_>,
) -> Result<PrivateKey, String> {
    check_permissions(path)?;
    match russh::keys::load_secret_key(path, None) {
        Ok(k) => Ok(k),
        Err(russh::keys::Error::KeyIsEncrypted) => {
            if policy.batch_mode {
                return Err(
                    "encrypted, and BatchMode yes forbids asking for its passphrase \
                     (add it to ssh-agent)"
                        .into(),
                );
            }
            if !policy.prompter.has_terminal() {
                return Err(
                    "encrypted, and no terminal to ask for its passphrase (add it to ssh-agent)"
                        .into(),
                );
            }
            let Some(pass) = policy.prompter.passphrase(path) else {
                return Err("encrypted; no passphrase given".into());
            };
            russh::keys::load_secret_key(path, Some(&pass))
                .map_err(|e| format!("cannot decrypt: {e}"))
        }
        Err(russh::keys::Error::IO(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            Err("private key file not found (only the .pub exists)".into())
        }
        Err(e) => Err(format!("unreadable: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn group_or_world_access_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("id");
        std::fs::write(&f, "x").unwrap();
        for (mode, ok) in [(0o600, true), (0o400, true), (0o640, false), (0o604, false)] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            let r = check_permissions(&f);
            assert_eq!(r.is_ok(), ok, "{mode:o}: {r:?}");
            if let Err(e) = r {
                assert!(e.contains(&format!("chmod 600 {}", f.display())), "{e}");
                assert!(e.contains(&format!("{mode:04o}")), "{e}");
            }
        }
    }
}
