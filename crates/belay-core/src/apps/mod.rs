//! Apps: a server started as an ordinary belay job and reached through a
//! forward to where it listens on its node (`belay app`).
//!
//! An app is a template (TOML, [`AppTemplate`]): shipped ones (`jupyter`,
//! `http`, built into the binary) and the user's own in
//! `$BELAY_HOME/apps/NAME.toml` or `<config dir>/belay/apps/NAME.toml`.
//! The template's `command` is a POSIX sh script run as the job's command
//! (in the user's login shell, like every job), after a prelude that gives
//! it a private directory and where to listen:
//!
//! - `BELAY_APP_DIR` — `$BELAY_JOB_DIR/app`, mode 0700;
//! - `BELAY_APP_SOCKET` — a Unix socket path in it (or, when the path would
//!   be too long for a socket, in a 0700 directory under `$TMPDIR`);
//! - `BELAY_APP_PORT` — a free port on the node, for `listen = "port"`;
//! - `BELAY_APP_TOKEN_FILE` — where a `token = true` app writes its token
//!   (0600). belay reads it from there over SSH when it prints the URL and
//!   keeps it nowhere: not in the store, spec.json, a log or a command line.
//!
//! The prelude writes `$BELAY_APP_DIR/where` (`socket=`/`port=`, and the
//! template may add `path=`); [`scripts::ready`] reads it back once the app
//! listens. The job is named after the app (or `--name`), so `logs`,
//! `cancel` and `app stop` use that name; it carries `BELAY_APP=NAME` in its
//! environment, which is how `app list` finds apps among jobs.

pub mod scripts;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::HostConfig;
use crate::error::{CoreError, Result};
use crate::home::BelayHome;
use crate::job::JobSpec;

/// The environment variable that marks a job as an app (its value: the
/// template's name).
pub const APP_ENV: &str = "BELAY_APP";

/// Templates built into belay.
const SHIPPED: &[(&str, &str)] = &[
    ("jupyter", include_str!("jupyter.toml")),
    ("http", include_str!("http.toml")),
];

/// Where an app listens on its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Listen {
    /// A Unix socket (`$BELAY_APP_SOCKET`): only its owner can connect.
    Socket,
    /// A TCP port on the node's loopback (`$BELAY_APP_PORT`).
    Port,
}

/// One app template.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppTemplate {
    #[serde(skip)]
    pub name: String,
    /// Where the template came from (`built in`, or its file).
    #[serde(skip)]
    pub source: String,
    pub description: String,
    pub listen: Listen,
    /// An HTTP path that answers once the server is up (any status).
    #[serde(default = "root_path")]
    pub ready_path: String,
    /// The app writes a token to `$BELAY_APP_TOKEN_FILE`; the URL carries
    /// it (`?token=`).
    #[serde(default)]
    pub token: bool,
    /// POSIX sh, run with the arguments given after `--` as `"$@"`.
    pub command: String,
}

fn root_path() -> String {
    "/".into()
}

/// The directories user templates are looked up in, in order.
fn user_dirs(home: &BelayHome) -> Vec<PathBuf> {
    let mut dirs = vec![home.root().join("apps")];
    if let Some(d) = dirs::config_dir() {
        dirs.push(d.join("belay").join("apps"));
    }
    dirs
}

/// An app name: letters, digits, `.`, `_`, `-` (it names a file and a job).
fn check_name(name: &str) -> Result<()> {
    crate::job::spec::validate_name(name)
        .map_err(|_| CoreError::BadInput(format!("bad app name '{name}'")))
}

impl AppTemplate {
    /// The template called `name`: the user's own file first, then the
    /// built-in one. An unknown name is bad input that lists what exists.
    pub fn find(home: &BelayHome, name: &str) -> Result<AppTemplate> {
        check_name(name)?;
        for dir in user_dirs(home) {
            let path = dir.join(format!("{name}.toml"));
            if path.exists() {
                return Self::read(name, &path);
            }
        }
        if let Some((_, text)) = SHIPPED.iter().find(|(n, _)| *n == name) {
            return Self::parse(name, "built in", text);
        }
        let known: Vec<String> = Self::all(home)?.into_iter().map(|t| t.name).collect();
        Err(CoreError::BadInput(format!(
            "unknown app '{name}' (known: {}; your own go in {})",
            known.join(", "),
            home.root()
                .join("apps")
                .join(format!("{name}.toml"))
                .display()
        )))
    }

    /// Every template: built-in ones, and the user's (which win by name).
    pub fn all(home: &BelayHome) -> Result<Vec<AppTemplate>> {
        let mut out: Vec<AppTemplate> = Vec::new();
        for dir in user_dirs(home).iter().rev() {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(name) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".toml"))
                else {
                    continue;
                };
                let t = Self::read(name, &path)?;
                out.retain(|o| o.name != t.name);
                out.push(t);
            }
        }
        for (name, text) in SHIPPED {
            if !out.iter().any(|o| o.name == *name) {
                out.push(Self::parse(name, "built in", text)?);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn read(name: &str, path: &Path) -> Result<AppTemplate> {
        check_name(name)?;
        let text = std::fs::read_to_string(path).map_err(|source| CoreError::Io {
            what: format!("reading app template {}", path.display()),
            source,
        })?;
        Self::parse(name, &path.display().to_string(), &text)
    }

    fn parse(name: &str, source: &str, text: &str) -> Result<AppTemplate> {
        let mut t: AppTemplate = toml::from_str(text).map_err(|e| {
            CoreError::BadInput(format!(
                "bad app template {source}: {}",
                e.to_string().replace('\n', " ")
            ))
        })?;
        if !t.ready_path.starts_with('/') {
            return Err(CoreError::BadInput(format!(
                "bad app template {source}: ready_path must start with /"
            )));
        }
        t.name = name.to_string();
        t.source = source.to_string();
        Ok(t)
    }

    /// The job that runs this app on `host`: named `name` (default: the
    /// app's), marked with [`APP_ENV`], running the prelude then the
    /// template's script with `args`.
    pub fn job_spec(
        &self,
        host: &str,
        name: Option<String>,
        args: &[String],
        host_config: &HostConfig,
    ) -> Result<JobSpec> {
        let mut env = vec![format!("{APP_ENV}={}", self.name)];
        if let Some(jupyter) = &host_config.jupyter {
            env.push(format!("BELAY_APP_JUPYTER={jupyter}"));
        }
        let script = format!("{}{}", scripts::prelude(self.listen), self.command);
        let mut argv = vec![
            "sh".to_string(),
            "-c".to_string(),
            script,
            format!("belay-app-{}", self.name),
        ];
        argv.extend(args.iter().cloned());
        JobSpec::new(
            host,
            Some(name.unwrap_or_else(|| self.name.clone())),
            argv,
            None,
            &env,
        )
    }
}

/// The app a job runs, if it is one.
pub fn app_of(job: &crate::job::Job) -> Option<&str> {
    job.env
        .iter()
        .find(|(k, _)| k == APP_ENV)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_templates_parse_and_their_scripts_are_valid_sh() {
        for (name, text) in SHIPPED {
            let t = AppTemplate::parse(name, "built in", text).unwrap();
            let spec = t
                .job_spec("gpu1", None, &["--x".into()], &HostConfig::default())
                .unwrap();
            assert_eq!(spec.name.as_deref(), Some(*name));
            let out = std::process::Command::new("sh")
                .arg("-n")
                .arg("-c")
                .arg(&spec.command[2])
                .output()
                .unwrap();
            assert!(out.status.success(), "{name}: {out:?}");
        }
    }

    #[test]
    fn an_unknown_app_names_the_known_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let home = BelayHome::at(tmp.path().to_path_buf());
        let err = AppTemplate::find(&home, "nope").unwrap_err().to_string();
        assert!(
            err.contains("'nope'") && err.contains("jupyter") && err.contains("http"),
            "{err}"
        );
        // The user's own template wins over a built-in one of that name.
        std::fs::create_dir_all(tmp.path().join("apps")).unwrap();
        std::fs::write(
            tmp.path().join("apps/http.toml"),
            "description = \"mine\"\nlisten = \"port\"\ncommand = \"exec my-server\"\n",
        )
        .unwrap();
        let t = AppTemplate::find(&home, "http").unwrap();
        assert_eq!(t.description, "mine");
        assert_eq!(t.listen, Listen::Port);
    }
}
