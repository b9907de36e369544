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

use crate::file_stamp::FileStamp;
use crate::resolve::{ResolvedChain, ResolvedHost};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustStamp(FileStamp);

fn files(host: &ResolvedHost) -> impl Iterator<Item = &PathBuf> {
    host.user_known_hosts_files
        .iter()
        .chain(&host.global_known_hosts_files)
        .chain(&host.revoked_host_keys)
}

impl TrustStamp {
    pub fn of(chain: &ResolvedChain) -> Self {
        TrustStamp(FileStamp::of(
            chain
                .jumps
                .iter()
                .chain(std::iter::once(&chain.target))
                .flat_map(files)
                .cloned()
                .chain(chain.config_file.clone()),
        ))
    }

    /// Has any of the files changed (or appeared, or gone) since?
    pub fn changed(&self) -> bool {
        self.0.changed()
    }
}
