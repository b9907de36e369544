//! The daemon's card: `serve.json` beside its lock, written once its socket
//! listens — its pid, its build, the ssh config it resolves hosts with.
//!
//! Every command used to ask a daemon who it was (`GET /v1/daemon`) before
//! its first real request: a round trip measured at 5 % of an attached
//! `run`. A command that finds the card of the lock's current holder (the
//! pid `serve.lock` names), of its own build, and a socket that takes a
//! connection, needs no answer to know it: the card was written by that
//! very daemon after it bound the socket. Anything else — no card, a card
//! of a daemon since replaced or killed, another build — goes the long
//! way, through the question, which also restarts a daemon of another
//! build. The card holds no secret; like everything in `BELAY_HOME` it is
//! the user's alone (0600).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::location::DaemonLocation;

/// What a daemon says of itself without being asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonCard {
    pub pid: u32,
    /// [`crate::build::identity`] of the binary it runs.
    pub build: String,
    /// The OpenSSH config file its hosts are resolved with (None: ssh's
    /// default), as `GET /v1/daemon` says it.
    pub ssh_config: Option<String>,
}

/// Writes `card` whole (a temporary file renamed over the old one).
pub fn write(location: &DaemonLocation, card: &DaemonCard) -> std::io::Result<()> {
    let path = location.card();
    let tmp = path.with_extension(format!("json.tmp.{}", std::process::id()));
    let text = serde_json::to_vec(card).map_err(std::io::Error::other)?;
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&text)?;
        std::fs::rename(&tmp, &path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The card there is, if it can be read.
pub fn read(location: &DaemonLocation) -> Option<DaemonCard> {
    let text = std::fs::read(location.card()).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Removes the card of the daemon `pid` (not a successor's).
pub fn remove(location: &DaemonLocation, pid: u32) {
    if read(location).is_some_and(|c| c.pid == pid) {
        let _ = std::fs::remove_file(location.card());
    }
}

/// Is `card` the word of the daemon serving `location` now: the lock's
/// holder, and a socket that takes a connection (a killed daemon leaves
/// its card, its pid in the lock file and its socket file behind)?
pub fn is_current(location: &DaemonLocation, card: &DaemonCard) -> bool {
    crate::lock::holder_pid(&location.lock()).is_some_and(|pid| pid == card.pid.to_string())
        && takes_a_connection(&location.socket())
}

fn takes_a_connection(socket: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_is_read_back_and_only_its_own_daemon_removes_it() {
        let home = tempfile::tempdir().unwrap();
        let home = belay_core::home::BelayHome::at(home.path().to_path_buf());
        let location = DaemonLocation::new(&home);
        assert_eq!(read(&location), None);
        let card = DaemonCard {
            pid: 4242,
            build: "b1".into(),
            ssh_config: Some("/x/ssh_config".into()),
        };
        write(&location, &card).unwrap();
        assert_eq!(read(&location), Some(card.clone()));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(location.card())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // No lock file names 4242 and nothing listens: not current.
        assert!(!is_current(&location, &card));
        remove(&location, 1);
        assert_eq!(read(&location), Some(card), "another daemon's remove");
        remove(&location, 4242);
        assert_eq!(read(&location), None);
    }
}
