//! config.toml as it is now, for a process that outlives an edit of it.
//!
//! A CLI reads config.toml when it starts; a daemon lives for hours, and
//! the next command a user types after editing the file (a jump fallback
//! added, a workroot moved) must see the edit through the daemon as it
//! would without one. Each look compares the candidate files with how they
//! were at the last read (a [`belay_ssh::FileStamp`]: a few `stat`s, no
//! read) and reads again when one changed, appeared or went. A file that
//! no longer parses is an error for whoever asks (exit 2, as for a CLI
//! that starts with it), and the last good config stays for the work that
//! cannot fail (a forward's route, a health pass) until the file is fixed.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use belay_ssh::FileStamp;

use crate::config::BelayConfig;
use crate::error::Result;
use crate::home::BelayHome;

pub struct CurrentConfig {
    candidates: Vec<PathBuf>,
    seen: Mutex<Seen>,
}

struct Seen {
    config: Arc<BelayConfig>,
    /// The candidates as they were when `config` was read.
    stamp: FileStamp,
    /// The last read parsed (else `config` is from an earlier one).
    good: bool,
}

/// A look at config.toml: what it says now, and what it said before if
/// that changed since the last look.
pub struct Look {
    pub now: Arc<BelayConfig>,
    pub before: Option<Arc<BelayConfig>>,
}

impl CurrentConfig {
    /// Read config.toml (a bad one is an error, as for any command).
    pub fn load(home: &BelayHome) -> Result<Self> {
        let candidates = BelayConfig::candidates(home);
        let stamp = FileStamp::of(candidates.iter().cloned());
        let config = Arc::new(BelayConfig::load_from(&candidates)?);
        Ok(Self {
            candidates,
            seen: Mutex::new(Seen {
                config,
                stamp,
                good: true,
            }),
        })
    }

    /// The config as the files say now, read again if they changed.
    pub fn look(&self) -> Result<Look> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // A bad file is read again at every look, until it is fixed.
        if seen.good && !seen.stamp.changed() {
            return Ok(Look {
                now: seen.config.clone(),
                before: None,
            });
        }
        // Stamp first: a write after it is seen at the next look.
        let stamp = FileStamp::of(self.candidates.iter().cloned());
        match BelayConfig::load_from(&self.candidates) {
            Ok(config) => {
                let before = std::mem::replace(&mut seen.config, Arc::new(config));
                seen.stamp = stamp;
                seen.good = true;
                Ok(Look {
                    now: seen.config.clone(),
                    before: Some(before),
                })
            }
            Err(e) => {
                seen.good = false;
                Err(e)
            }
        }
    }

    /// The last config that parsed, for work that cannot fail on it.
    pub fn last_good(&self) -> Arc<BelayConfig> {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .config
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_is_seen_at_the_next_look_and_a_bad_one_is_an_error_until_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let home = BelayHome::at(dir.path().to_path_buf());
        let file = dir.path().join("config.toml");
        let current = CurrentConfig::load(&home).unwrap();
        let look = current.look().unwrap();
        assert!(look.before.is_none(), "nothing changed yet");
        assert!(look.now.host("gpu").jump_fallbacks.is_empty());

        std::fs::write(&file, "[hosts.gpu]\njump_fallbacks = [\"j2\"]\n").unwrap();
        let look = current.look().unwrap();
        assert_eq!(look.now.host("gpu").jump_fallbacks, ["j2"]);
        assert!(look.before.unwrap().host("gpu").jump_fallbacks.is_empty());
        assert!(current.look().unwrap().before.is_none(), "seen once");

        std::fs::write(&file, "[hosts.gpu]\njump_fallbacks = 3\n").unwrap();
        let e = current.look().err().expect("a bad file is an error");
        assert!(e.to_string().contains("config.toml"), "{e}");
        assert!(current.look().is_err(), "and stays one");
        assert_eq!(current.last_good().host("gpu").jump_fallbacks, ["j2"]);

        std::fs::write(&file, "[hosts.gpu]\nworkroot = \"/w\"\n").unwrap();
        let look = current.look().unwrap();
        assert_eq!(look.now.host("gpu").workroot.as_deref(), Some("/w"));
        assert!(look.before.is_some());
    }
}
