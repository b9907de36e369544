//! The ssh-agent socket a long-lived process uses where the config says
//! `IdentityAgent SSH_AUTH_SOCK` (OpenSSH's default).
//!
//! A daemon's own `SSH_AUTH_SOCK` is that of the terminal it was started
//! from. That socket is gone once its session ends (a forwarded agent on a
//! login node, `eval $(ssh-agent)` in a closed terminal), while the next
//! command, typed in another session, has a live one: a new connection
//! made for it must use the agent that `ssh` typed there would use. The
//! daemon records the socket each local command names ([`AgentSocket`]);
//! connections take the latest at each authentication, else the process's
//! own environment's.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The agent socket named by the latest command served (shared by every
/// connection of a process; see the module docs).
#[derive(Debug, Default)]
pub struct AgentSocket(Mutex<Option<PathBuf>>);

impl AgentSocket {
    /// A command names `path` as its `SSH_AUTH_SOCK`. Only an absolute path
    /// is taken (as ssh-agent makes them); an empty value changes nothing.
    pub fn named(&self, path: &Path) {
        if path.is_absolute() {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(path.to_path_buf());
        }
    }

    /// The latest socket a command named, if any.
    pub fn latest(&self) -> Option<PathBuf> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_absolute_path_wins() {
        let a = AgentSocket::default();
        assert_eq!(a.latest(), None);
        a.named(Path::new("/tmp/ssh-1/agent.1"));
        a.named(Path::new("relative/agent"));
        a.named(Path::new(""));
        assert_eq!(a.latest(), Some(PathBuf::from("/tmp/ssh-1/agent.1")));
        a.named(Path::new("/tmp/ssh-2/agent.2"));
        assert_eq!(a.latest(), Some(PathBuf::from("/tmp/ssh-2/agent.2")));
    }
}
