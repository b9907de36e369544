//! One daemon per `BELAY_HOME`: an exclusive `flock` on `serve.lock`, held
//! for the daemon's life and released by the kernel when it dies (SIGKILL
//! included), so a lock is never stale. The file carries the holder's pid
//! for `belay serve --status` and for tests that must stop it.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another belay daemon serves this BELAY_HOME (pid {pid})")]
    Held { pid: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The held lock; dropping it releases the lock.
pub struct DaemonLock {
    _file: File,
}

fn open(path: &Path) -> Result<File, LockError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|source| LockError::Io {
            path: path.to_path_buf(),
            source,
        })
}

fn try_flock(file: &File) -> bool {
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

impl DaemonLock {
    /// Take the lock, or say who holds it.
    pub fn acquire(path: &Path) -> Result<Self, LockError> {
        let mut file = open(path)?;
        if !try_flock(&file) {
            return Err(LockError::Held {
                pid: holder_pid(path).unwrap_or_else(|| "unknown".into()),
            });
        }
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
}

/// Is the lock free (no daemon alive for this home)? Takes and drops it.
pub fn is_free(path: &Path) -> bool {
    match open(path) {
        Ok(file) => try_flock(&file),
        Err(_) => false,
    }
}

/// The pid written by the daemon holding (or last holding) the lock.
pub fn holder_pid(path: &Path) -> Option<String> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    let pid = text.trim();
    (!pid.is_empty()).then(|| pid.to_string())
}
