//! Which hosts a fan-out command means: each word is `local`, an ssh_config
//! alias or `[user@]host[:port]` (taken as is, checked as `belay run`
//! checks a host), or a pattern (`gpu-*`, `node?`) matched against the
//! plain names on the `Host` lines of the user's OpenSSH config and its
//! Includes (the same listing the doctor uses). A pattern that matches no
//! name is bad input. Each chosen name is resolved by `ssh -G` when used.

use std::path::Path;

use belay_ssh::host_match::{is_pattern, matching_host_names};

use crate::error::{CoreError, Result};
use crate::hosts::Hosts;

/// The host names `words` stand for, in order, each once. `config` is the
/// `--ssh-config` file (else `BELAY_SSH_CONFIG`, else `~/.ssh/config`).
pub fn expand(hosts: &Hosts, words: &[String], config: Option<&Path>) -> Result<Vec<String>> {
    let config = belay_ssh::config_file_from_env(config);
    let mut names: Vec<String> = Vec::new();
    for word in words {
        if word.trim().is_empty() {
            return Err(CoreError::BadInput("empty host name ''".into()));
        }
        let found = if is_pattern(word) {
            let found = matching_host_names(word, config.as_deref());
            if found.is_empty() {
                let file = config
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "~/.ssh/config".into());
                return Err(CoreError::BadInput(format!(
                    "host pattern '{word}' matches no Host name in {file} (or its Includes)"
                )));
            }
            found
        } else {
            hosts.validate(word)?;
            vec![word.clone()]
        };
        for name in found {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Ok(names)
}
