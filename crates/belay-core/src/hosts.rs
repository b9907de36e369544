//! Host names to transports. `local` is the embedded host and always exists;
//! every other name is an SSH destination resolved from the user's OpenSSH
//! configuration (wired in with the SSH transport).

use std::sync::Arc;

use crate::error::{CoreError, Result};
use crate::home::BelayHome;
use crate::transport::Transport;
use crate::transport::local::LocalTransport;

pub struct Hosts {
    local: Arc<LocalTransport>,
}

impl Hosts {
    pub fn new(home: &BelayHome) -> Self {
        Self {
            local: Arc::new(LocalTransport::new(home.local_workroot())),
        }
    }

    /// Check a host name without connecting (bad names are refused before
    /// anything is recorded).
    pub fn validate(&self, host: &str) -> Result<()> {
        self.get(host).map(|_| ())
    }

    /// The transport for `host`.
    pub fn get(&self, host: &str) -> Result<Arc<dyn Transport>> {
        if host == LocalTransport::NAME {
            return Ok(self.local.clone());
        }
        Err(CoreError::UnknownHost {
            host: host.to_string(),
            hint: ": this build knows only the embedded host 'local'".into(),
        })
    }
}
