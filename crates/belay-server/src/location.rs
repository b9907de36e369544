//! Where a daemon's files live: all inside `BELAY_HOME` (created 0700 by
//! the store), so one daemon belongs to one `BELAY_HOME` and a test's
//! temporary home never meets another's daemon.

use std::path::PathBuf;

use belay_core::home::BelayHome;

#[derive(Debug, Clone)]
pub struct DaemonLocation {
    pub home: BelayHome,
}

impl DaemonLocation {
    pub fn new(home: &BelayHome) -> Self {
        Self { home: home.clone() }
    }

    /// The API socket (mode 0600).
    pub fn socket(&self) -> PathBuf {
        self.home.root().join("belay.sock")
    }

    /// Held (flock) by the running daemon; holds its pid.
    pub fn lock(&self) -> PathBuf {
        self.home.root().join("serve.lock")
    }

    /// The daemon's card ([`crate::card`]): who serves, without asking.
    pub fn card(&self) -> PathBuf {
        self.home.root().join("serve.json")
    }

    /// A background daemon's stdout and stderr.
    pub fn log(&self) -> PathBuf {
        self.home.root().join("serve.log")
    }
}
