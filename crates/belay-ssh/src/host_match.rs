//! Whether a host name got anything from the user's ssh config, and which
//! `Host` block it was probably meant to get (the seed-000 story:
//! `ProxyJump ela.example` while only `Host ela` carries the key).
//!
//! "Matched nothing" is decided by OpenSSH itself, never by parsing Host
//! patterns: `ssh -G NAME` is compared with `ssh -G SENTINEL` for a name no
//! config can mean. If the two agree (the sentinel's own name put back),
//! no Host or Match block applied to NAME beyond what applies to every
//! name. Only the names a `Host` line lists are read from the config
//! files, to find the block that resolves to the same machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::SshError;
use crate::resolve::{HopSpec, ResolvedHost, resolve_host};
use crate::tokens::home_dir;

/// A name no ssh config matches except through `*`.
const SENTINEL: &str = "belay-doctor-sentinel.invalid";

/// The most Host names looked at for a similar block.
const MAX_CANDIDATES: usize = 64;

/// `Host` blocks that resolve to the same machine as a name that matched
/// none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimilarBlock {
    /// The block's name as written on its `Host` line.
    pub name: String,
    /// What it sets that the unmatched name does not get (`identityfile`,
    /// `user`, …), lowercase as `ssh -G` prints them.
    pub differs: Vec<String>,
}

/// `Some(similar blocks)` when `host` (as resolved from its spec) matched
/// no `Host`/`Match` block beyond those every name gets; `None` when a
/// block applied to it. `config` is the `-F` file, if any.
pub async fn unmatched_name(
    host: &ResolvedHost,
    config: Option<&Path>,
) -> Result<Option<Vec<SimilarBlock>>, SshError> {
    let sentinel = HopSpec {
        host: SENTINEL.to_string(),
        ..host.spec.clone()
    };
    let other = resolve_host(&sentinel, config).await?;
    let back = |v: &String| v.replace(SENTINEL, &host.spec.host);
    let baseline: BTreeMap<String, Vec<String>> = other
        .raw
        .iter()
        .map(|(k, vs)| (k.clone(), vs.iter().map(back).collect()))
        .collect();
    if baseline != host.raw {
        return Ok(None);
    }
    let mut similar = Vec::new();
    for name in host_names(config).into_iter().take(MAX_CANDIDATES) {
        if name == host.spec.host {
            continue;
        }
        let spec = HopSpec {
            host: name.clone(),
            ..host.spec.clone()
        };
        let Ok(cand) = resolve_host(&spec, config).await else {
            continue;
        };
        let same_machine = cand.hostname == host.hostname
            || host.spec.host.split('.').next() == Some(name.as_str());
        if !same_machine {
            continue;
        }
        let differs: Vec<String> = [
            "user",
            "identityfile",
            "certificatefile",
            "port",
            "proxyjump",
        ]
        .iter()
        .filter(|k| cand.raw.get(**k) != host.raw.get(**k))
        .map(|k| k.to_string())
        .collect();
        similar.push(SimilarBlock { name, differs });
    }
    Ok(Some(similar))
}

/// Is `word` a pattern (`*`, `?`) rather than one host's name?
pub fn is_pattern(word: &str) -> bool {
    word.contains(['*', '?'])
}

/// The plain `Host` names of the config (see [`host_names`]) that the
/// OpenSSH-style pattern `pattern` (`*`, `?`, case-insensitive) matches, in
/// config order — `belay exec 'gpu-*'`. Each is still resolved by `ssh -G`
/// when used.
pub fn matching_host_names(pattern: &str, config: Option<&Path>) -> Vec<String> {
    host_names(config)
        .into_iter()
        .filter(|n| crate::known_hosts::glob(pattern.as_bytes(), n.as_bytes()))
        .collect()
}

/// Every plain name (no wildcard, not negated) on a `Host` line of the
/// config file and the files it Includes (one level of `*` globbing in
/// the file name), in order.
pub fn host_names(config: Option<&Path>) -> Vec<String> {
    let ssh_dir = home_dir().join(".ssh");
    let first = match config {
        Some(f) => f.to_path_buf(),
        None => ssh_dir.join("config"),
    };
    let mut files = vec![first];
    let mut names = Vec::new();
    let mut i = 0;
    while i < files.len() && i < 32 {
        let text = std::fs::read_to_string(&files[i]).unwrap_or_default();
        i += 1;
        for line in text.lines() {
            let line = line.trim();
            let mut words = line.split(|c: char| c.is_whitespace() || c == '=');
            let Some(key) = words.next() else { continue };
            let rest: Vec<&str> = words.filter(|w| !w.is_empty()).collect();
            if key.eq_ignore_ascii_case("host") {
                for w in rest {
                    let w = w.trim_matches('"');
                    if !w.contains(['*', '?', '!']) && !names.iter().any(|n| n == w) {
                        names.push(w.to_string());
                    }
                }
            } else if key.eq_ignore_ascii_case("include") {
                for pat in rest {
                    files.extend(include_files(pat, &ssh_dir));
                }
            }
        }
    }
    names
}

fn include_files(pattern: &str, ssh_dir: &Path) -> Vec<PathBuf> {
    let p = if let Some(rest) = pattern.strip_prefix("~/") {
        home_dir().join(rest)
    } else if pattern.starts_with('/') {
        PathBuf::from(pattern)
    } else {
        ssh_dir.join(pattern)
    };
    let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    if !name.contains('*') {
        return vec![p];
    }
    let (pre, post) = name.split_once('*').unwrap_or((name, ""));
    let dir = p.parent().unwrap_or(Path::new("/"));
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|f| {
                    f.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(pre) && n.ends_with(post))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lists_plain_names_and_follows_includes() {
        let d = tempfile::tempdir().unwrap();
        let inc = d.path().join("more.conf");
        std::fs::write(&inc, "Host extra\n  User x\n").unwrap();
        let cfg = d.path().join("config");
        std::fs::write(
            &cfg,
            format!(
                "Host ela ela2 *.example !bad\n  User u\nHost=other\nInclude {}\nhost ela\n",
                d.path().join("*.conf").display()
            ),
        )
        .unwrap();
        assert_eq!(
            host_names(Some(&cfg)),
            vec!["ela", "ela2", "other", "extra"]
        );
        assert_eq!(matching_host_names("ela*", Some(&cfg)), vec!["ela", "ela2"]);
        assert_eq!(matching_host_names("?XTRA", Some(&cfg)), vec!["extra"]);
        assert!(matching_host_names("gpu-*", Some(&cfg)).is_empty());
        assert!(is_pattern("gpu-*") && is_pattern("n?") && !is_pattern("gpu1"));
    }
}
