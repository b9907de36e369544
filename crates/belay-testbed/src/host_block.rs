//! ssh_config `Host` blocks for test hosts, built rather than pasted.
//!
//! Tests configure belay exactly as a user's `~/.ssh/config` would; a
//! [`HostBlock`] writes one `Host` stanza. Options keep their order (the
//! first value wins in ssh_config) and setting one again replaces it in
//! place, so a test says "this host, but as user bob" or "without
//! BatchMode" instead of editing config text.

use std::fmt;
use std::path::Path;

use crate::KeyPair;

/// One `Host ALIAS` stanza. See the module docs.
#[derive(Debug, Clone)]
pub struct HostBlock {
    alias: String,
    options: Vec<(String, String)>,
}

impl HostBlock {
    pub fn new(alias: &str) -> HostBlock {
        HostBlock {
            alias: alias.to_string(),
            options: Vec::new(),
        }
    }

    /// Set `key value` (replacing an earlier value of `key`).
    pub fn option(mut self, key: &str, value: impl fmt::Display) -> HostBlock {
        let value = value.to_string();
        match self
            .options
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
        {
            Some(slot) => slot.1 = value,
            None => self.options.push((key.to_string(), value)),
        }
        self
    }

    /// Set `key value` unless the block already has `key`.
    pub fn option_or(self, key: &str, value: impl fmt::Display) -> HostBlock {
        if self
            .options
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(key))
        {
            self
        } else {
            self.option(key, value)
        }
    }

    /// Drop `key` (e.g. `BatchMode`, for a config that may prompt).
    pub fn without(mut self, key: &str) -> HostBlock {
        self.options.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self
    }

    pub fn hostname(self, host: &str) -> HostBlock {
        self.option("HostName", host)
    }

    pub fn port(self, port: u16) -> HostBlock {
        self.option("Port", port)
    }

    pub fn user(self, user: &str) -> HostBlock {
        self.option("User", user)
    }

    pub fn proxy_jump(self, chain: &str) -> HostBlock {
        self.option("ProxyJump", chain)
    }

    /// The options every test host shares, where the block does not say
    /// otherwise: root, this key only, no agent, never a prompt, a private
    /// known_hosts, strict host-key checking, a short connect timeout.
    pub fn test_client(self, key: &KeyPair, known_hosts: &Path) -> HostBlock {
        self.option_or("User", "root")
            .option_or("IdentityFile", key.private.display())
            .option_or("IdentitiesOnly", "yes")
            .option_or("IdentityAgent", "none")
            .option_or("BatchMode", "yes")
            .option_or("UserKnownHostsFile", known_hosts.display())
            .option_or("GlobalKnownHostsFile", "/dev/null")
            .option_or("StrictHostKeyChecking", "yes")
            .option_or("ConnectTimeout", 5)
    }
}

impl fmt::Display for HostBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Host {}", self.alias)?;
        for (k, v) in &self.options {
            writeln!(f, "  {k} {v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_keep_their_order_and_a_second_value_replaces_the_first() {
        let b = HostBlock::new("h")
            .hostname("127.0.0.1")
            .user("root")
            .port(22)
            .user("bob")
            .option("BatchMode", "yes")
            .without("batchmode")
            .option_or("User", "root")
            .option_or("Compression", "no");
        assert_eq!(
            b.to_string(),
            "Host h\n  HostName 127.0.0.1\n  User bob\n  Port 22\n  Compression no\n"
        );
    }
}
