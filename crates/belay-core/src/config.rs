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
//! [hosts.cluster]
//! scheduler = "slurm"                # hand jobs to Slurm on this login node (default "direct")
//! poll_interval = "10s"              # at most one scheduler query (squeue) per this interval
//!
//! [hosts.cluster.slurm]              # default resources of jobs on cluster (run flags win)
//! partition = "gpu"
//! time = "4:00:00"
//! gpus = "1"
//! sbatch_args = ["--exclusive"]
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

#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
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
    /// Which scheduler runs jobs there: `direct` (default) or `slurm`.
    pub scheduler: Option<String>,
    /// The least time between two scheduler queries (`squeue`) on this host,
    /// whoever asks (humantime: `"10s"`): sites ban tools that poll often.
    pub poll_interval: Option<String>,
    /// Default Slurm resources of this host's jobs; `run` flags win.
    #[serde(default)]
    pub slurm: SlurmResources,
}

/// Slurm resources of a job (`run --partition …`) or a host's defaults
/// (`[hosts.H.slurm]`): each becomes one `#SBATCH` line of the wrapper.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmResources {
    pub partition: Option<String>,
    pub time: Option<String>,
    pub nodes: Option<String>,
    pub ntasks: Option<String>,
    pub cpus: Option<String>,
    pub mem: Option<String>,
    pub gpus: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub constraint: Option<String>,
    /// Passed to sbatch as given (`--sbatch-arg`), after the above.
    #[serde(default)]
    pub sbatch_args: Vec<String>,
}

impl SlurmResources {
    /// `self`, with each value it lacks taken from `defaults` (extra
    /// arguments: the defaults' first, then these, so these win).
    pub fn over(&self, defaults: &SlurmResources) -> SlurmResources {
        let pick = |a: &Option<String>, b: &Option<String>| a.clone().or_else(|| b.clone());
        SlurmResources {
            partition: pick(&self.partition, &defaults.partition),
            time: pick(&self.time, &defaults.time),
            nodes: pick(&self.nodes, &defaults.nodes),
            ntasks: pick(&self.ntasks, &defaults.ntasks),
            cpus: pick(&self.cpus, &defaults.cpus),
            mem: pick(&self.mem, &defaults.mem),
            gpus: pick(&self.gpus, &defaults.gpus),
            account: pick(&self.account, &defaults.account),
            qos: pick(&self.qos, &defaults.qos),
            constraint: pick(&self.constraint, &defaults.constraint),
            sbatch_args: defaults
                .sbatch_args
                .iter()
                .chain(&self.sbatch_args)
                .cloned()
                .collect(),
        }
    }

    /// Nothing asked for.
    pub fn is_empty(&self) -> bool {
        *self == SlurmResources::default()
    }

    /// The flags these came from, for messages (`--partition`, …).
    pub fn flags_given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        for (flag, val) in self.named() {
            if val.is_some() {
                v.push(flag);
            }
        }
        if !self.sbatch_args.is_empty() {
            v.push("--sbatch-arg");
        }
        v
    }

    fn named(&self) -> [(&'static str, &Option<String>); 10] {
        [
            ("--partition", &self.partition),
            ("--time", &self.time),
            ("--nodes", &self.nodes),
            ("--ntasks", &self.ntasks),
            ("--cpus-per-task", &self.cpus),
            ("--mem", &self.mem),
            ("--gpus", &self.gpus),
            ("--account", &self.account),
            ("--qos", &self.qos),
            ("--constraint", &self.constraint),
        ]
    }

    /// The sbatch options, one per `#SBATCH` line: `--partition=gpu`, …,
    /// then the pass-through arguments. A value with a line break is bad
    /// input (it would end the `#SBATCH` line).
    pub fn sbatch_options(&self) -> Result<Vec<String>> {
        let mut v = Vec::new();
        for (flag, val) in self.named() {
            if let Some(val) = val {
                let shown = flag.replace("--cpus-per-task", "--cpus");
                if val.trim().is_empty() || val.contains(['\n', '\r', '\0']) {
                    return Err(CoreError::BadInput(format!(
                        "bad {shown} '{}': give one value on one line",
                        val.escape_debug()
                    )));
                }
                v.push(format!("{flag}={}", val.trim()));
            }
        }
        for a in &self.sbatch_args {
            if !a.starts_with('-') || a.contains(['\n', '\r', '\0']) {
                return Err(CoreError::BadInput(format!(
                    "bad --sbatch-arg '{}': give one sbatch option, e.g. --sbatch-arg=--exclusive",
                    a.escape_debug()
                )));
            }
            v.push(a.clone());
        }
        Ok(v)
    }
}

/// The schedulers belay knows, as named in config.toml and `--scheduler`.
pub const SCHEDULERS: [&str; 2] = ["direct", "slurm"];

/// How often a Slurm host is asked (squeue) at most, when config.toml
/// says nothing.
pub const DEFAULT_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

impl BelayConfig {
    /// Read the first config file that exists; none is fine.
    pub fn load(home: &BelayHome) -> Result<Self> {
        Self::load_from(&Self::candidates(home))
    }

    /// Where config.toml is looked for, first first.
    pub fn candidates(home: &BelayHome) -> Vec<std::path::PathBuf> {
        [
            Some(home.root().join("config.toml")),
            dirs::config_dir().map(|d| d.join("belay").join("config.toml")),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Read the first of `candidates` that exists; none is fine.
    pub fn load_from(candidates: &[std::path::PathBuf]) -> Result<Self> {
        match candidates.iter().find(|p| p.exists()) {
            Some(path) => Self::read(path),
            None => Ok(Self::default()),
        }
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
    /// The scheduler of this host's jobs (`direct` unless configured).
    pub fn scheduler(&self, host: &str) -> Result<&str> {
        match self.scheduler.as_deref() {
            None => Ok("direct"),
            Some(s) if SCHEDULERS.contains(&s) => Ok(s),
            Some(s) => Err(CoreError::BadInput(format!(
                "bad scheduler '{s}' for [hosts.{host}] in config.toml: use direct or slurm"
            ))),
        }
    }

    /// The least time between two scheduler queries on this host.
    pub fn poll_interval(&self, host: &str) -> Result<std::time::Duration> {
        match &self.poll_interval {
            None => Ok(DEFAULT_POLL_INTERVAL),
            Some(text) => humantime::parse_duration(text).map_err(|e| {
                CoreError::BadInput(format!(
                    "bad poll_interval '{text}' for [hosts.{host}] in config.toml: {e}"
                ))
            }),
        }
    }

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
