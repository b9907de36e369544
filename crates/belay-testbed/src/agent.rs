//! A private `ssh-agent` for tests: its own socket in a temporary directory,
//! run in the foreground (`-D`) as our child so we own its pid, killed on
//! drop. Never touches the caller's `SSH_AUTH_SOCK`; tests point the client
//! at [`SshAgent::socket`] through `IdentityAgent` in their ssh config.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::keys::KeyPair;
use crate::process::{run, wait_until};

/// A running `ssh-agent`.
#[derive(Debug)]
pub struct SshAgent {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    child: Child,
}

impl SshAgent {
    /// Starts an agent listening on a fresh socket; returns once the socket
    /// exists (deadline 5 s).
    pub fn start() -> io::Result<SshAgent> {
        let dir = tempfile::Builder::new().prefix("belay-agent.").tempdir()?;
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut agent = SshAgent {
            _dir: dir,
            socket,
            child,
        };
        if !wait_until(Duration::from_secs(5), || agent.socket.exists()) {
            let _ = agent.child.kill();
            return Err(io::Error::other(
                "ssh-agent did not create its socket within 5 s",
            ));
        }
        Ok(agent)
    }

    /// The agent's socket (use as `IdentityAgent` or `SSH_AUTH_SOCK`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Adds a key (and its `-cert.pub`, if present, as `ssh-add` does).
    pub fn add(&self, key: &KeyPair) -> io::Result<()> {
        run(Command::new("ssh-add")
            .arg("-q")
            .arg(&key.private)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stdin(Stdio::null()))?;
        Ok(())
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
