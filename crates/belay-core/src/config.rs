//! belay's own configuration: per-host extras only. SSH settings (hostname,
//! user, keys, jump hosts, keepalive) stay in the user's OpenSSH config and
//! are never duplicated here.
//!
//! Looked up at `$BELAY_HOME/config.toml`, else `<platform config dir>/belay/config.toml`:
//!
//! ```toml
//! [hosts.gpu1]
//! workroot = "/scratch/me/belay"     # where job directories live (default ~/.belay/jobs)
//! jump_fallbacks = ["jump2", "jump3"] # first hops to try when the configured one is down
//! jupyter = "/opt/conda/bin/jupyter-lab" # what `belay app run gpu1 jupyter` starts
//!
//! [daemon]
//! idle_exit = "10m"                  # an auto-started daemon exits after this long idle
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{CoreError, Result};
use crate::home::BelayHome;
use crate::shell::quote;
use crate::transport::Workroot;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BelayConfig {
    #[serde(default)]
    pub hosts: BTreeMap<String, HostConfig>,
    #[serde(default)]
    pub daemon: DaemonConfig,
}

/// The daemon's own settings (`[daemon]`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// How long an auto-started daemon waits with nothing to do before it
    /// exits (`"10m"`, `"90s"`; humantime syntax).
    pub idle_exit: Option<String>,
}

/// An auto-started daemon's idle exit when config.toml says nothing.
pub const DEFAULT_IDLE_EXIT: std::time::Duration = std::time::Duration::from_secs(600);

impl DaemonConfig {
    pub fn idle_exit(&self) -> Result<std::time::Duration> {
        match &self.idle_exit {
            None => Ok(DEFAULT_IDLE_EXIT),
            Some(text) => humantime::parse_duration(text).map_err(|e| {
                CoreError::BadInput(format!(
                    "bad [daemon] idle_exit '{text}' in config.toml: {e}"
                ))
            }),
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Job directory root on the host; `~/` is the remote home.
    pub workroot: Option<String>,
    /// Alternative first hops, tried in order when the primary is down.
    #[serde(default)]
    pub jump_fallbacks: Vec<String>,
    /// The command `belay app run HOST jupyter` starts there, instead of
    /// `jupyter-lab` (or `jupyter-server`) from the login shell's PATH.
    pub jupyter: Option<String>,
}

impl BelayConfig {
    /// Read the first config file that exists; none is fine.
    pub fn load(home: &BelayHome) -> Result<Self> {
        let candidates = [
            Some(home.root().join("config.toml")),
            dirs::config_dir().map(|d| d.join("belay").join("config.toml")),
        ];
        for path in candidates.into_iter().flatten() {
            if path.exists() {
                return Self::read(&path);
            }
        }
        Ok(Self::default())
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| CoreError::Io {
            what: format!("reading {}", path.display()),
            source,
        })?;
        toml::from_str(&text).map_err(|e| {
            CoreError::BadInput(format!(
                "bad config {}: {}",
                path.display(),
                e.to_string().replace('\n', " ")
            ))
        })
    }

    pub fn host(&self, name: &str) -> HostConfig {
        self.hosts.get(name).cloned().unwrap_or_default()
    }
}

impl HostConfig {
    /// The job-directory root as a shell word on the host.
    pub fn workroot(&self) -> Workroot {
        match self.workroot.as_deref() {
            None => Workroot("\"$HOME\"/.belay/jobs".into()),
            Some("~") => Workroot("\"$HOME\"".into()),
            Some(w) if w.starts_with("~/") => Workroot(format!("\"$HOME\"/{}", quote(&w[2..]))),
            Some(w) => Workroot(quote(w)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_and_refuses_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(
            &p,
            "[hosts.gpu]\nworkroot = \"~/w\"\njump_fallbacks = [\"j2\"]\n",
        )
        .unwrap();
        let c = BelayConfig::read(&p).unwrap();
        assert_eq!(c.host("gpu").jump_fallbacks, ["j2"]);
        assert_eq!(c.host("gpu").workroot().0, "\"$HOME\"/'w'");
        assert_eq!(c.host("other").workroot().0, "\"$HOME\"/.belay/jobs");
        std::fs::write(&p, "[hosts.gpu]\nworkrot = 1\n").unwrap();
        let e = BelayConfig::read(&p).unwrap_err();
        assert!(e.is_bad_input() && e.to_string().contains("workrot"), "{e}");
    }
}
