//! Where belay keeps its local state. `BELAY_HOME` relocates everything
//! (store, the embedded host's job directories); otherwise the platform's
//! data directory is used.

use std::path::PathBuf;

use crate::error::{CoreError, Result};

/// The resolved local state directory.
#[derive(Debug, Clone)]
pub struct BelayHome {
    root: PathBuf,
}

impl BelayHome {
    /// `BELAY_HOME` if set, else `<platform data dir>/belay`.
    pub fn from_env() -> Result<Self> {
        let root = match std::env::var_os("BELAY_HOME") {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => dirs::data_dir()
                .ok_or_else(|| {
                    CoreError::BadInput(
                        "cannot find a data directory for belay: set BELAY_HOME".into(),
                    )
                })?
                .join("belay"),
        };
        Ok(Self { root })
    }

    pub fn at(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &PathBuf {
        &self.root
    }

    /// The SQLite store.
    pub fn store_path(&self) -> PathBuf {
        self.root.join("belay.db")
    }

    /// Job directories of the embedded `local` host.
    pub fn local_workroot(&self) -> PathBuf {
        self.root.join("jobs")
    }

    /// Where a job's declared outputs are copied unless told otherwise
    /// (`belay fetch`, an attached run, the daemon's pass).
    pub fn results_dir(&self, job_id: &str) -> PathBuf {
        self.root.join("results").join(job_id)
    }

    /// Does the store exist yet? Read-only commands use this to avoid
    /// creating state just to say "no such job".
    pub fn store_exists(&self) -> bool {
        self.store_path().exists()
    }
}
