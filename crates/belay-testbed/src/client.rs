//! The client side of a test host: the OpenSSH options every test `Host`
//! block shares, so belay is configured exactly as a user's ~/.ssh/config
//! would configure it — this key only, no agent, never a prompt, a private
//! known_hosts, strict host-key checking, a short connect timeout.

use std::path::Path;

use crate::KeyPair;

/// Options for a `Host` block (indented, one per line), after `HostName`.
pub fn host_options(key: &KeyPair, known_hosts: &Path) -> String {
    format!(
        "  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  IdentityAgent none\n  BatchMode yes\n  \
         UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  ConnectTimeout 5\n",
        key.private.display(),
        known_hosts.display()
    )
}
