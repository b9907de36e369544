//! Secret values for `run --secret NAME`: what they are, where they wait
//! until their job is launched, and how they reach the host.
//!
//! A job records only the *names* of its secrets (spec, store, spec.json,
//! `show`). The values live in this process's memory ([`keep`], [`take`]:
//! a process-wide vault, so the daemon's later passes find what its submit
//! left) while the job is `queued`/`submitting`, and nowhere else. At
//! launch they travel on an SSH channel's stdin ([`store_script`]) into a
//! 0600 file in a private 0700 directory on the host, which the wrapper
//! reads into the command's environment and removes before the command
//! starts (see `remote/wrapper.rs`). A process that restages a job whose
//! values it never had (after a crash) fails it: it never runs without them.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{CoreError, Result};
use crate::shell::quote;

/// One secret: its name (an environment variable name) and value. Its
/// `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SecretValue {
    pub name: String,
    pub value: String,
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValue({}=***)", self.name)
    }
}

/// A valid secret name: an environment variable name the shell accepts
/// (letters, digits, `_`, not starting with a digit).
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.starts_with("BELAY_");
    if ok {
        Ok(())
    } else {
        Err(CoreError::BadInput(format!(
            "bad --secret name '{name}': use letters, digits and '_', not starting with a digit (nor BELAY_)"
        )))
    }
}

/// Checks a list of names: each valid, none twice.
pub fn check_names(names: &[String]) -> Result<()> {
    for (i, n) in names.iter().enumerate() {
        check_name(n)?;
        if names[..i].contains(n) {
            return Err(CoreError::BadInput(format!(
                "bad --secret '{n}': given twice"
            )));
        }
    }
    Ok(())
}

/// Checks values against the names a spec declares: the same set, no
/// value with a NUL byte (no environment can carry it).
pub fn check_values(names: &[String], values: &[SecretValue]) -> Result<()> {
    for v in values {
        if !names.contains(&v.name) {
            return Err(CoreError::BadInput(format!(
                "bad --secret '{}': a value for a name the job does not declare",
                v.name
            )));
        }
        if v.value.contains('\0') {
            return Err(CoreError::BadInput(format!(
                "bad --secret '{}': its value contains a NUL byte (value not shown)",
                v.name
            )));
        }
    }
    if let Some(missing) = names.iter().find(|n| !values.iter().any(|v| &v.name == *n)) {
        return Err(CoreError::BadInput(format!(
            "bad --secret '{missing}': no value given"
        )));
    }
    Ok(())
}

/// The values waiting for their job's launch, by job id.
static VAULT: Mutex<Option<HashMap<String, Vec<SecretValue>>>> = Mutex::new(None);

/// Keep `values` in memory until job `id` is launched (or given up).
pub fn keep(id: &str, values: Vec<SecretValue>) {
    if values.is_empty() {
        return;
    }
    let mut v = VAULT.lock().unwrap_or_else(|p| p.into_inner());
    v.get_or_insert_with(HashMap::new)
        .insert(id.to_string(), values);
}

/// The values kept for job `id`, if this process has them.
pub fn get(id: &str) -> Option<Vec<SecretValue>> {
    let v = VAULT.lock().unwrap_or_else(|p| p.into_inner());
    v.as_ref().and_then(|m| m.get(id).cloned())
}

/// Forget job `id`'s values: it was launched, or will never be.
pub fn forget(id: &str) {
    let mut v = VAULT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(m) = v.as_mut() {
        m.remove(id);
    }
}

/// The reason a job whose values are gone fails with.
pub fn lost_reason(name: &str) -> String {
    format!("secret {name} was lost with the crash; resubmit (it never ran without it)")
}

/// What the host's secret file holds: one `NAME='value'` assignment per
/// line (shell-quoted), read by the wrapper with `.` into unexported
/// variables (so no process it starts before the command sees them).
pub fn file_content(values: &[SecretValue]) -> String {
    values
        .iter()
        .map(|v| format!("{}={}\n", v.name, quote(&v.value)))
        .collect()
}

/// The name of the file in a job directory that says where its secret
/// file is (a path, never a value).
pub const WHERE_FILE: &str = "secrets.where";

/// A script for [`crate::transport::Transport::open_stream`] that stores
/// its stdin as job `key`'s secret file: in a private 0700 directory on a
/// tmpfs (`$XDG_RUNTIME_DIR`, else `/dev/shm/belay-UID`) or, when the job
/// runs on another node (`shared`: a batch scheduler) or no tmpfs is
/// usable, in `.secrets/` (0700) in the job directory on the shared home.
/// The file is 0600 and written atomically; its path goes to
/// [`WHERE_FILE`]. Prints `stored`, or `locked` if the job was launched
/// already (then nothing is written: its launch had the secrets).
pub fn store_script(dir_word: &str, key: &str, shared: bool) -> String {
    let tmpfs = if shared {
        ""
    } else {
        r#"for belay_c in "${XDG_RUNTIME_DIR:+$XDG_RUNTIME_DIR/belay}" "/dev/shm/belay-$(id -u)"; do
  [ -n "$belay_c" ] || continue
  mkdir -m 700 "$belay_c" 2>/dev/null
  # Ours alone, not a link someone planted: else try the next place.
  if [ -d "$belay_c" ] && [ ! -L "$belay_c" ] && [ -O "$belay_c" ] && chmod 700 "$belay_c" 2>/dev/null; then
    belay_sd=$belay_c; break
  fi
done
"#
    };
    format!(
        r#"umask 077
cd {dir} 2>/dev/null || {{ echo "no job directory" >&2; exit 3; }}
if [ -e launch.lock ]; then cat >/dev/null; echo locked; exit 0; fi
belay_sd=
{tmpfs}if [ -z "$belay_sd" ]; then
  mkdir -m 700 .secrets 2>/dev/null; chmod 700 .secrets || exit 3
  belay_sd=$PWD/.secrets
fi
belay_sf=$belay_sd/{key}
rm -f "$belay_sf.tmp"
cat > "$belay_sf.tmp" && mv -f "$belay_sf.tmp" "$belay_sf" || {{ rm -f "$belay_sf.tmp"; exit 3; }}
printf '%s\n' "$belay_sf" > {where}.tmp && mv -f {where}.tmp {where} || exit 3
echo stored
"#,
        dir = dir_word,
        key = quote(key),
        where = WHERE_FILE,
    )
}

/// Shell lines that remove a job's secret file, if any (run in its job
/// directory): for a launch the scheduler refused, a job cancelled before
/// it started.
pub const REMOVE_LINES: &str = "if [ -f secrets.where ]; then belay_sf=; read -r belay_sf < secrets.where; [ -n \"$belay_sf\" ] && rm -f \"$belay_sf\"; rm -f secrets.where; fi\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_env_names() {
        assert!(check_name("API_TOKEN").is_ok());
        assert!(check_name("_x1").is_ok());
        for bad in ["", "1A", "A-B", "A=B", "BELAY_JOB_ID", "A B"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_names(&["A".into(), "A".into()]).is_err());
    }

    #[test]
    fn debug_hides_the_value() {
        let s = SecretValue {
            name: "T".into(),
            value: "canary".into(),
        };
        assert!(!format!("{s:?}").contains("canary"));
    }

    #[test]
    fn values_must_match_names() {
        let v = |n: &str| SecretValue {
            name: n.into(),
            value: "x".into(),
        };
        assert!(check_values(&["A".into()], &[v("A")]).is_ok());
        assert!(check_values(&["A".into()], &[]).is_err());
        assert!(check_values(&[], &[v("A")]).is_err());
    }

    #[test]
    fn file_content_reads_back_in_sh() {
        let values = vec![SecretValue {
            name: "S".into(),
            value: "it's $(x)\nline2".into(),
        }];
        let script = format!("{}printf '%s' \"$S\"", file_content(&values));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's $(x)\nline2");
    }

    #[test]
    fn store_script_is_valid_sh() {
        for shared in [false, true] {
            let s = store_script("'/tmp/x'", "k-1", shared);
            let out = std::process::Command::new("sh")
                .args(["-n", "-c", &s])
                .output()
                .unwrap();
            assert!(out.status.success());
        }
    }
}
