//! Host names found valid a moment ago, so that a long-lived process (the
//! daemon) does not check the same name again on every submit.
//!
//! Checking a name runs `ssh -G` (and looks the host name up): measured on
//! a warm daemon, about 4.5 ms of an attached `belay run HOST -- true`
//! whose whole is about 30 ms, all of it before the job is even recorded.
//! An answer is reused while the OpenSSH config files it came from, and the
//! folders their `Include`s usually name, are unchanged (a
//! [`belay_ssh::FileStamp`]: an edited, added, removed or renamed file
//! counts) and for at most [`VALID_FOR`]: what belay cannot see (an
//! `Include` from elsewhere, a DNS change, an edit of the same size within
//! one tick of the file system's clock) counts after that. Only successes
//! are kept: a bad name is checked, and refused, every time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use belay_ssh::FileStamp;

/// Longest an answer is reused.
pub const VALID_FOR: Duration = Duration::from_secs(30);

pub struct ValidatedHosts {
    watched: Vec<PathBuf>,
    seen: Mutex<HashMap<String, (Instant, FileStamp)>>,
}

impl ValidatedHosts {
    /// For names resolved with `ssh -F config_file`, or OpenSSH's own
    /// files when `None`.
    pub fn new(config_file: Option<&Path>) -> Self {
        let watched = match config_file {
            Some(file) => {
                let mut w = vec![file.to_path_buf()];
                w.extend(file.parent().map(Path::to_path_buf));
                w
            }
            None => {
                let mut w = Vec::new();
                if let Some(home) = std::env::home_dir() {
                    w.push(home.join(".ssh/config"));
                    w.push(home.join(".ssh"));
                }
                w.push("/etc/ssh/ssh_config".into());
                w.push("/etc/ssh/ssh_config.d".into());
                w
            }
        };
        Self {
            watched,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// `host` was found valid under the config files as they are now, and
    /// not too long ago.
    pub fn is_valid(&self, host: &str) -> bool {
        let seen = self.seen.lock().expect("validated hosts lock");
        seen.get(host)
            .is_some_and(|(at, stamp)| at.elapsed() < VALID_FOR && !stamp.changed())
    }

    /// `host` was just found valid.
    pub fn remember(&self, host: &str) {
        let stamp = FileStamp::of(self.watched.iter().cloned());
        self.seen
            .lock()
            .expect("validated hosts lock")
            .insert(host.to_string(), (Instant::now(), stamp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_holds_until_the_config_changes() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ssh_config");
        std::fs::write(&config, "Host a\n  HostName 127.0.0.1\n").unwrap();
        let valid = ValidatedHosts::new(Some(&config));
        assert!(!valid.is_valid("a"), "never checked");
        valid.remember("a");
        assert!(valid.is_valid("a"));
        assert!(!valid.is_valid("b"), "only the name checked");
        std::fs::write(&config, "Host a b\n  HostName 127.0.0.1\n").unwrap();
        assert!(!valid.is_valid("a"), "the config file was rewritten");
        valid.remember("a");
        assert!(valid.is_valid("a"));
    }
}
