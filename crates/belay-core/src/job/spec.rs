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

/// A validated request to run a job.
#[derive(Debug, Clone)]
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
        })
    }
}

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
    let bad = || {
        CoreError::BadInput(format!(
            "bad --env '{item}': expected NAME=VALUE with NAME made of letters, digits and '_'"
        ))
    };
    let (k, v) = item.split_once('=').ok_or_else(bad)?;
    let valid_name = !k.is_empty()
        && !k.as_bytes()[0].is_ascii_digit()
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid_name || v.contains('\0') {
        return Err(bad());
    }
    Ok((k.to_string(), v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for bad in ["NOVALUE", "=v", "1A=v", "A-B=v", "A B=v"] {
            let e = parse_env(bad).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
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
