//! `--secret NAME[=@FILE]`: where a secret's value comes from on this
//! machine, and masking it (`***`) in what belay prints.
//!
//! A value comes from the environment variable NAME, from FILE, or from a
//! prompt with echo off when stdin is a terminal — never from the command
//! line (`--secret NAME=value` is refused: argv is visible to every user
//! through `ps`). With none of them it is bad input naming NAME.
//!
//! Masking knows the values this process has: the ones it submitted, and
//! for a job read later (`logs`, `logs -f`) the values of its secrets'
//! names that are set in this process's environment. A value given by
//! file or prompt to another process is not known here, so a later
//! `belay logs` shows it as the job printed it: the limit is that only the
//! process holding a value can mask it.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use belay_core::CoreError;
use belay_core::secrets::{SecretValue, check_name};

/// Resolves `--secret` arguments into names (for the spec) and values.
pub fn resolve(args: &[String]) -> Result<(Vec<String>, Vec<SecretValue>), CoreError> {
    let mut names = Vec::new();
    let mut values = Vec::new();
    for arg in args {
        let (name, source) = match arg.split_once('=') {
            None => (arg.as_str(), None),
            Some((n, s)) => (n, Some(s)),
        };
        check_name(name)?;
        let value = match source {
            Some(s) if s.starts_with('@') => from_file(name, &s[1..])?,
            Some(_) => {
                return Err(CoreError::BadInput(format!(
                    "bad --secret '{name}': a value on the command line is visible to other users (ps); \
                     set the environment variable {name} or give --secret {name}=@FILE (value not shown)"
                )));
            }
            None => match std::env::var_os(name) {
                Some(v) => v.into_string().map_err(|_| {
                    CoreError::BadInput(format!(
                        "bad --secret '{name}': the environment variable {name} is not UTF-8"
                    ))
                })?,
                None if std::io::stdin().is_terminal() => {
                    crate::prompt::ask_secret(&format!("Value for secret {name}: ")).ok_or_else(
                        || CoreError::BadInput(format!("bad --secret '{name}': no value entered")),
                    )?
                }
                None => {
                    return Err(CoreError::BadInput(format!(
                        "bad --secret '{name}': no value: set the environment variable {name}, \
                         give --secret {name}=@FILE, or run on a terminal to be asked"
                    )));
                }
            },
        };
        names.push(name.to_string());
        values.push(SecretValue {
            name: name.to_string(),
            value,
        });
    }
    belay_core::secrets::check_names(&names)?;
    belay_core::secrets::check_values(&names, &values)?;
    // A daemon this command starts must not inherit them.
    belay_server::autostart::withhold_env(&names);
    remember(values.iter().map(|v| v.value.clone()));
    Ok((names, values))
}

/// A value read from FILE: its contents, less one final newline (as
/// `echo TOKEN > FILE` leaves it).
fn from_file(name: &str, path: &str) -> Result<String, CoreError> {
    let expanded = match path.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map(|h| std::path::Path::new(&h).join(rest))
            .unwrap_or_else(|| path.into()),
        None => path.into(),
    };
    let text = std::fs::read(&expanded).map_err(|e| {
        CoreError::BadInput(format!(
            "bad --secret '{name}=@{path}': cannot read it: {e}"
        ))
    })?;
    let mut text = String::from_utf8(text).map_err(|_| {
        CoreError::BadInput(format!(
            "bad --secret '{name}=@{path}': the file is not UTF-8"
        ))
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

/// The values to mask, and per output stream (0 stdout, 1 stderr) the
/// bytes held back because they may begin a value split across writes.
struct Masker {
    values: Vec<Vec<u8>>,
    held: [Vec<u8>; 2],
}

static MASK: Mutex<Masker> = Mutex::new(Masker {
    values: Vec::new(),
    held: [Vec::new(), Vec::new()],
});

fn masker() -> std::sync::MutexGuard<'static, Masker> {
    MASK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Values this process will print as `***` from now on (empty ones are
/// ignored: they would match everywhere).
pub fn remember(values: impl IntoIterator<Item = String>) {
    let mut m = masker();
    for v in values {
        if !v.is_empty() && !m.values.iter().any(|x| x == v.as_bytes()) {
            m.values.push(v.into_bytes());
        }
    }
    // Longest first: a value inside another is masked as the longer one.
    m.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
}

/// For a job read by a later command: its secrets' values as set in this
/// process's environment, if any.
pub fn remember_from_env(names: &[String]) {
    remember(
        names
            .iter()
            .filter_map(|n| std::env::var(n).ok())
            .collect::<Vec<_>>(),
    );
}

/// `text` with every known value replaced by `***`.
pub fn mask_text(text: &str) -> String {
    let m = masker();
    let mut out = text.to_string();
    for v in &m.values {
        if let Ok(v) = std::str::from_utf8(v) {
            out = out.replace(v, "***");
        }
    }
    out
}

/// Writes `data` to stream `which` (0 stdout, 1 stderr) masked. The tail
/// that could begin a value is held back until the next write (or
/// [`flush_held`]), so a value split between two writes is masked too.
pub fn write_masked(which: usize, out: &mut dyn Write, data: &[u8]) -> std::io::Result<()> {
    let mut m = masker();
    if m.values.is_empty() {
        return out.write_all(data).and_then(|()| out.flush());
    }
    let mut buf = std::mem::take(&mut m.held[which]);
    buf.extend_from_slice(data);
    let (ready, held) = mask_bytes(&m.values, &buf, false);
    m.held[which] = held;
    out.write_all(&ready).and_then(|()| out.flush())
}

/// Writes what [`write_masked`] held back for stream `which`.
pub fn flush_held(which: usize, out: &mut dyn Write) -> std::io::Result<()> {
    let mut m = masker();
    let buf = std::mem::take(&mut m.held[which]);
    if buf.is_empty() {
        return Ok(());
    }
    let (ready, _) = mask_bytes(&m.values, &buf, true);
    out.write_all(&ready).and_then(|()| out.flush())
}

/// Masks `buf`; unless `last`, returns separately the tail that is a
/// proper prefix of some value (it may complete in the next write).
fn mask_bytes(values: &[Vec<u8>], buf: &[u8], last: bool) -> (Vec<u8>, Vec<u8>) {
    let mut out = Vec::with_capacity(buf.len());
    let mut i = 0;
    'scan: while i < buf.len() {
        for v in values {
            if buf[i..].starts_with(v) {
                out.extend_from_slice(b"***");
                i += v.len();
                continue 'scan;
            }
            if !last && buf.len() - i < v.len() && v.starts_with(&buf[i..]) {
                return (out, buf[i..].to_vec());
            }
        }
        out.push(buf[i]);
        i += 1;
    }
    (out, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_split_between_writes_is_masked() {
        let values = vec![b"s3cr3t".to_vec()];
        let (a, held) = mask_bytes(&values, b"token=s3c", false);
        assert_eq!(a, b"token=");
        let mut next = held;
        next.extend_from_slice(b"r3t done s3");
        let (b, held) = mask_bytes(&values, &next, false);
        assert_eq!(b, b"*** done ");
        let (c, _) = mask_bytes(&values, &held, true);
        assert_eq!(c, b"s3");
    }

    #[test]
    fn argv_values_are_refused_without_echo() {
        let e = resolve(&["TOKEN=hunter2".into()]).unwrap_err().to_string();
        assert!(e.contains("TOKEN") && !e.contains("hunter2"), "{e}");
        let e = resolve(&["9X".into()]).unwrap_err().to_string();
        assert!(e.contains("9X"), "{e}");
    }
}
