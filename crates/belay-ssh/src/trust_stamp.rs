//! What a live connection's trust was decided from: the known_hosts and
//! revoked-keys files of every hop and the config file, as (size, mtime)
//! when it connected. A long-lived process (the daemon) reuses a
//! connection only while these are unchanged: after `belay host trust` or
//! `forget`, or an edit by hand, the next call reconnects and checks the
//! host key afresh — as a new `ssh` would — instead of riding a connection
//! verified against what the user has since changed. (Keys and
//! certificates are read at every connect, so a renewed certificate is
//! used from the next reconnect on.)

use std::path::PathBuf;
use std::time::SystemTime;

use crate::resolve::{ResolvedChain, ResolvedHost};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustStamp(Vec<(PathBuf, Option<(u64, SystemTime)>)>);

fn look(path: &PathBuf) -> Option<(u64, SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

fn files(host: &ResolvedHost) -> impl Iterator<Item = &PathBuf> {
    host.user_known_hosts_files
        .iter()
        .chain(&host.global_known_hosts_files)
        .chain(&host.revoked_host_keys)
}

impl TrustStamp {
    pub fn of(chain: &ResolvedChain) -> Self {
        let mut paths: Vec<PathBuf> = chain
            .jumps
            .iter()
            .chain(std::iter::once(&chain.target))
            .flat_map(files)
            .cloned()
            .chain(chain.config_file.clone())
            .collect();
        paths.sort();
        paths.dedup();
        TrustStamp(
            paths
                .into_iter()
                .map(|p| {
                    let seen = look(&p);
                    (p, seen)
                })
                .collect(),
        )
    }

    /// Has any of the files changed (or appeared, or gone) since?
    pub fn changed(&self) -> bool {
        self.0.iter().any(|(path, seen)| look(path) != *seen)
    }
}
