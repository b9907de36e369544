//! The client side of a test host: the OpenSSH options every test `Host`
//! block shares, so belay is configured exactly as a user's ~/.ssh/config
//! would configure it — this key only, no agent, never a prompt, a private
//! known_hosts, strict host-key checking, a short connect timeout.

use std::path::Path;

use crate::{HostBlock, KeyPair};

/// Options for a `Host` block (indented, one per line), after `HostName`:
/// [`HostBlock::test_client`]'s, as text to append to a block of one's own.
pub fn host_options(key: &KeyPair, known_hosts: &Path) -> String {
    let block = HostBlock::new("-")
        .test_client(key, known_hosts)
        .to_string();
    block
        .split_once('\n')
        .map(|(_, options)| options.to_string())
        .unwrap_or_default()
}
