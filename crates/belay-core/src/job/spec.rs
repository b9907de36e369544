//! What the user asked for: command, working directory, environment, name.
//! Validation lives here so that bad input is refused before anything is
//! written to the store or a host.

use crate::error::{CoreError, Result};
use crate::shell::quote;

/// How the command is run. One argument is a shell command line (`belay run
/// h -- 'make && ./a.out'`), as with `ssh host CMD`; two or more are an exact
/// argv, each word passed through untouched (`belay run h -- sh -c 'echo hi'`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    argv: Vec<String>,
}

impl Command {
    pub fn from_argv(argv: Vec<String>) -> Self {
        Self { argv }
    }

    /// The command line the job's shell evaluates.
    pub fn shell_line(&self) -> String {
        match self.argv.as_slice() {
            [one] => one.clone(),
            many => many.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
        }
    }

    /// For display: like `shell_line`, quoting only where needed.
    pub fn display(&self) -> String {
        match self.argv.as_slice() {
            [one] => one.clone(),
            many => many
                .iter()
                .map(|a| {
                    if !a.is_empty()
                        && a.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
                    {
                        a.clone()
                    } else {
                        quote(a)
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// A validated request to run a job. (Serialised as the daemon API's
/// submit body; the daemon validates it again with [`JobSpec::checked`].)
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobSpec {
    pub host: String,
    pub name: Option<String>,
    pub command: Vec<String>,
    pub workdir: Option<String>,
    pub env: Vec<(String, String)>,
    /// Run the command in the user's login shell (so `module load` works).
    pub login_shell: bool,
    /// Copied into the job's `inputs/` directory before launch.
    pub inputs: Vec<Input>,
    /// Paths (relative to the working directory) `belay fetch` copies back.
    pub outputs: Vec<String>,
    /// `--hold-on-failure`: keep a failed job's machine this many seconds
    /// (state `held`) for `belay shell`, until `belay release`.
    #[serde(default)]
    pub hold_on_failure: Option<u32>,
    /// `run --scheduler`: overrides the host's configured scheduler.
    #[serde(default)]
    pub scheduler: Option<String>,
    /// `run --partition …`: Slurm resources (the host's defaults fill in).
    #[serde(default)]
    pub slurm: crate::config::SlurmResources,
    /// `run --secret NAME`: the names only; the values never enter a spec
    /// (see [`crate::secrets`]).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Whose job it is on the API (the token's name); `None`: the local
    /// user's. Never taken from a client: the daemon sets it from the
    /// caller after [`JobSpec::checked`], which clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// `--input LOCAL[:NAME]`: a local file or tree, and its name under the
/// job's `inputs/` directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Input {
    /// Absolute local path (a resumed submit may run from anywhere).
    pub local: String,
    pub name: String,
}

impl Input {
    /// Parses and checks `LOCAL[:NAME]`; LOCAL must exist. A `:` belongs to
    /// LOCAL when the whole argument names an existing path.
    pub fn parse(arg: &str) -> Result<Input> {
        let whole = std::path::Path::new(arg);
        let (local, name) = match arg.rsplit_once(':') {
            Some((l, n)) if !whole.exists() && !l.is_empty() => (l, Some(n)),
            _ => (arg, None),
        };
        let path = std::path::Path::new(local);
        let abs = std::fs::canonicalize(path).map_err(|_| {
            CoreError::BadInput(format!(
                "bad --input: no such local file or directory '{local}'"
            ))
        })?;
        // The default name is the one typed (`train.csv`), not that of
        // what a symlink points to; `.` or `/` take the real directory's.
        let name = match name {
            Some(n) => n.to_string(),
            None => match crate::paths::base_name(local) {
                Some(b) => b.to_string(),
                None => abs
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            },
        };
        let clean = crate::paths::safe_relative(&name).map_err(|why| {
            CoreError::BadInput(format!(
                "bad --input '{arg}': name '{name}' must be a relative path inside the job ({why})"
            ))
        })?;
        let local = abs.to_str().ok_or_else(|| {
            CoreError::BadInput(format!("bad --input '{arg}': the path is not UTF-8"))
        })?;
        Ok(Input {
            local: local.to_string(),
            name: clean.to_string_lossy().into_owned(),
        })
    }
}

/// Refuses inputs that would land on each other (`a/x` and `b/x` both as
/// `x`, or `d` and `d/f`): one would silently replace the other.
pub fn check_inputs(inputs: &[Input]) -> Result<()> {
    for (i, a) in inputs.iter().enumerate() {
        for b in &inputs[i + 1..] {
            let under = |x: &str, y: &str| y.starts_with(&format!("{x}/"));
            if a.name == b.name || under(&a.name, &b.name) || under(&b.name, &a.name) {
                return Err(CoreError::BadInput(format!(
                    "bad --input: '{}' and '{}' would both land as '{}'; name one with LOCAL:NAME",
                    a.local,
                    b.local,
                    a.name.as_str().min(b.name.as_str())
                )));
            }
        }
    }
    Ok(())
}

/// Checks `--output PATH` values.
pub fn check_output(path: &str) -> Result<()> {
    if path.trim().is_empty() || path.contains('\0') || path.contains('\n') {
        return Err(CoreError::BadInput(format!("bad --output '{path}'")));
    }
    Ok(())
}

/// Checks every `--output` and refuses two that would land on each other
/// in `results/<id>/` (the same path, or one inside the other): one would
/// silently replace the other.
pub fn check_outputs(outputs: &[String]) -> Result<()> {
    for o in outputs {
        check_output(o)?;
    }
    let landings: Vec<(&String, String)> = outputs
        .iter()
        .filter_map(|o| Some((o, output_landing(o)?.1)))
        .collect();
    for (i, (a, la)) in landings.iter().enumerate() {
        for (b, lb) in &landings[i + 1..] {
            let under = |x: &str, y: &str| y.starts_with(&format!("{x}/"));
            if la == lb || under(la, lb) || under(lb, la) {
                return Err(CoreError::BadInput(format!(
                    "bad --output '{b}': it would land on '{a}' as '{}' in the results directory",
                    la.as_str().min(lb.as_str())
                )));
            }
        }
    }
    Ok(())
}

/// Where a declared output lands under the results directory, as
/// `(directory to pull into, path of the copy)`, both relative: a plain
/// relative path keeps its directories (`a/x` and `b/x` stay apart);
/// an absolute path, a `~` path or one that climbs (`..`) lands by its
/// final name. `None` for outputs without a name of their own (`.`,
/// `..`, `/`): they are pulled into the results directory itself.
pub fn output_landing(output: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = output
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let base = *parts.last()?;
    if base == ".." || base == "~" {
        return None;
    }
    let keeps_path = !output.starts_with('/') && !output.starts_with('~') && !parts.contains(&"..");
    if !keeps_path {
        return Some((String::new(), base.to_string()));
    }
    let dir = parts[..parts.len() - 1].join("/");
    Some((dir, parts.join("/")))
}

impl JobSpec {
    /// Validate user input. Every refusal names the offending value.
    pub fn new(
        host: &str,
        name: Option<String>,
        command: Vec<String>,
        workdir: Option<String>,
        env: &[String],
    ) -> Result<Self> {
        if command.is_empty() || command.iter().all(|a| a.trim().is_empty()) {
            return Err(CoreError::BadInput(
                "missing command: give it after `--`, e.g. `belay run HOST -- echo hello`".into(),
            ));
        }
        if let Some(n) = &name {
            validate_name(n)?;
        }
        if let Some(w) = workdir
            .as_ref()
            .filter(|w| w.is_empty() || w.contains('\0') || w.contains('\n'))
        {
            return Err(CoreError::BadInput(format!("bad --workdir '{w}'")));
        }
        let env = env
            .iter()
            .map(|e| parse_env(e))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            host: host.to_string(),
            name,
            command,
            workdir,
            env,
            login_shell: true,
            inputs: Vec::new(),
            outputs: Vec::new(),
            hold_on_failure: None,
            scheduler: None,
            slurm: Default::default(),
            secrets: Vec::new(),
            owner: None,
        })
    }

    /// Sets `--scheduler` and the Slurm resource flags. A scheduler belay
    /// does not know is bad input; whether the resources suit the host's
    /// scheduler is checked at submit, where its config is known.
    pub fn with_scheduler(
        mut self,
        scheduler: Option<String>,
        slurm: crate::config::SlurmResources,
    ) -> Result<Self> {
        if let Some(s) = scheduler
            .as_deref()
            .filter(|s| !crate::config::SCHEDULERS.contains(s))
        {
            return Err(CoreError::BadInput(format!(
                "bad --scheduler '{s}': use direct or slurm"
            )));
        }
        slurm.sbatch_options()?;
        self.scheduler = scheduler;
        self.slurm = slurm;
        Ok(self)
    }

    /// Sets the `--secret` names: each an environment variable name, none
    /// twice.
    pub fn with_secrets(mut self, names: Vec<String>) -> Result<Self> {
        crate::secrets::check_names(&names)?;
        if let Some((k, _)) = self.env.iter().find(|(k, _)| names.contains(k)) {
            return Err(CoreError::BadInput(format!(
                "bad --secret '{k}': also given with --env"
            )));
        }
        self.secrets = names;
        Ok(self)
    }

    /// Sets `--hold-on-failure`: from one second to [`MAX_HOLD_SECS`].
    pub fn with_hold(mut self, secs: Option<u64>) -> Result<Self> {
        self.hold_on_failure = match secs {
            None => None,
            Some(s) if (1..=MAX_HOLD_SECS as u64).contains(&s) => Some(s as u32),
            Some(s) => {
                return Err(CoreError::BadInput(format!(
                    "bad --hold-on-failure '{s}s': give 1s to {} days",
                    MAX_HOLD_SECS / 86_400
                )));
            }
        };
        Ok(self)
    }

    /// The same checks as [`JobSpec::new`], [`check_inputs`] and
    /// [`check_outputs`], for a spec that arrived already built (the
    /// daemon's API): what a client sends is validated again, never trusted.
    pub fn checked(self) -> Result<Self> {
        let env: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut spec = Self::new(&self.host, self.name, self.command, self.workdir, &env)?;
        check_inputs(&self.inputs)?;
        check_outputs(&self.outputs)?;
        spec.login_shell = self.login_shell;
        spec.inputs = self.inputs;
        spec.outputs = self.outputs;
        spec = spec.with_secrets(self.secrets)?;
        spec.with_hold(self.hold_on_failure.map(u64::from))?
            .with_scheduler(self.scheduler, self.slurm)
    }
}

/// The longest debug hold: a week (a machine kept longer is forgotten).
pub const MAX_HOLD_SECS: u32 = 7 * 86_400;

/// A job name: letters, digits, `.`, `_`, `-`; not all hex digits (that would
/// read as an id).
pub fn validate_name(n: &str) -> Result<()> {
    let ok_chars = n
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if n.is_empty() || n.len() > 64 || !ok_chars || n.starts_with('-') {
        return Err(CoreError::BadInput(format!(
            "bad --name '{n}': use 1-64 letters, digits, '.', '_' or '-'"
        )));
    }
    if crate::job::id::looks_like_id_prefix(n) {
        return Err(CoreError::BadInput(format!(
            "bad --name '{n}': a name made only of hex digits would read as a job id"
        )));
    }
    Ok(())
}

/// `K=V` with a shell-safe variable name.
pub fn parse_env(item: &str) -> Result<(String, String)> {
    // The value is the user's data: an error names the NAME, never echoes
    // the value (it may be a token pasted in by mistake).
    let Some((k, v)) = item.split_once('=') else {
        return Err(CoreError::BadInput(format!(
            "bad --env '{item}': expected NAME=VALUE"
        )));
    };
    let valid_name = !k.is_empty()
        && !k.as_bytes()[0].is_ascii_digit()
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if k.is_empty() {
        return Err(CoreError::BadInput(
            "bad --env: the NAME before '=' is empty (value not shown)".into(),
        ));
    }
    if !valid_name {
        return Err(CoreError::BadInput(format!(
            "bad --env name '{k}': use letters, digits and '_', not starting with a digit (value not shown)"
        )));
    }
    if v.contains('\0') {
        return Err(CoreError::BadInput(format!(
            "bad --env '{k}': its value contains a NUL byte (value not shown)"
        )));
    }
    Ok((k.to_string(), v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_keep_their_relative_path_and_true_collisions_are_refused() {
        let land = |o: &str| output_landing(o).map(|(_, p)| p);
        assert_eq!(land("a/x"), Some("a/x".into()));
        assert_eq!(land("./a//x/"), Some("a/x".into()));
        assert_eq!(land("/scratch/run/x"), Some("x".into()));
        assert_eq!(land("~/x"), Some("x".into()));
        assert_eq!(land("../up/x"), Some("x".into()));
        assert_eq!(land("."), None);
        assert_eq!(output_landing("a/b/x").unwrap().0, "a/b");
        assert!(check_outputs(&["a/x".into(), "b/x".into(), "x".into()]).is_ok());
        let err = check_outputs(&["a/x".into(), "./a/x".into()]).unwrap_err();
        assert!(err.to_string().contains("'./a/x'"), "{err}");
        assert!(check_outputs(&["/s/x".into(), "x".into()]).is_err());
        assert!(check_outputs(&["d".into(), "d/f".into()]).is_err());
    }

    #[test]
    fn a_bad_env_name_is_named_without_its_value() {
        let err = parse_env("BAD-NAME=s3cret").unwrap_err().to_string();
        assert!(err.contains("BAD-NAME"), "{err}");
        assert!(!err.contains("s3cret"), "echoes the value: {err}");
        let err = parse_env("X=a\0b").unwrap_err().to_string();
        assert!(err.contains("'X'") && !err.contains("a\0b"), "{err}");
        assert_eq!(parse_env("X=a=b").unwrap(), ("X".into(), "a=b".into()));
    }

    #[test]
    fn one_argument_is_a_command_line_several_are_argv() {
        let one = Command::from_argv(vec!["make && ./a.out".into()]);
        assert_eq!(one.shell_line(), "make && ./a.out");
        let many = Command::from_argv(vec!["sh".into(), "-c".into(), "echo hi; exit 3".into()]);
        assert_eq!(many.shell_line(), "'sh' '-c' 'echo hi; exit 3'");
        assert_eq!(many.display(), "sh -c 'echo hi; exit 3'");
    }

    #[test]
    fn env_must_be_name_equals_value() {
        assert_eq!(
            parse_env("A_1=x=y").unwrap(),
            ("A_1".to_string(), "x=y".to_string())
        );
        // Named by what is wrong: the argument without '=', else the NAME
        // (never the value).
        for (bad, named) in [
            ("NOVALUE", "NOVALUE"),
            ("=v", "NAME before '=' is empty"),
            ("1A=v", "'1A'"),
            ("A-B=v", "'A-B'"),
            ("A B=v", "'A B'"),
        ] {
            let e = parse_env(bad).unwrap_err();
            assert!(e.to_string().contains(named), "{e}");
            assert!(e.is_bad_input());
        }
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("train-1.b_2").is_ok());
        assert!(validate_name("deadbeef").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name("").is_err());
    }

    #[test]
    fn missing_command_is_bad_input() {
        let e = JobSpec::new("local", None, vec![], None, &[]).unwrap_err();
        assert!(e.is_bad_input());
        assert!(e.to_string().contains("missing command"));
    }
}
