//! The API socket: `$BELAY_HOME/belay.sock`, mode 0600, inside the 0700
//! `BELAY_HOME`; and a listener that drops every connection whose peer is
//! not this user (checked with `SO_PEERCRED`, so a socket made reachable by
//! a looser directory still serves nobody else).
//!
//! A socket file left by a dead daemon is removed only by the process that
//! holds the daemon lock (the lock is free only when no daemon lives), and
//! only after a connect to it failed.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tokio::net::{UnixListener, UnixStream};

/// Bind the API socket. The caller holds the daemon lock.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} answers: another daemon serves it", path.display()),
            ));
        }
        tracing::info!(socket = %path.display(), "removing a stale socket file");
        std::fs::remove_file(path)?;
    }
    // umask first: the socket is never reachable with looser permissions,
    // not even between bind and chmod.
    // SAFETY: umask is process-wide and always succeeds; restored below.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    unsafe { libc::umask(old) };
    let listener = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Accepts only connections from this process's user.
pub struct SameUserListener {
    inner: UnixListener,
    uid: u32,
    /// Called at each connection accepted from this user.
    on_accept: Option<Box<dyn Fn() + Send + Sync>>,
}

impl SameUserListener {
    pub fn new(inner: UnixListener) -> Self {
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        Self {
            inner,
            uid,
            on_accept: None,
        }
    }

    /// Calls `hook` at each connection accepted (the daemon counts a
    /// connection as activity: a command that found its card connects
    /// before its first request, and must not meet an idle exit between).
    pub fn on_accept(mut self, hook: Box<dyn Fn() + Send + Sync>) -> Self {
        self.on_accept = Some(hook);
        self
    }
}

impl axum::serve::Listener for SameUserListener {
    type Io = UnixStream;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => match stream.peer_cred() {
                    Ok(cred) if cred.uid() == self.uid => {
                        if let Some(hook) = &self.on_accept {
                            hook();
                        }
                        return (stream, addr);
                    }
                    Ok(cred) => {
                        tracing::warn!(uid = cred.uid(), "refused a connection from another user");
                    }
                    Err(e) => tracing::warn!("refused a connection: no peer credentials: {e}"),
                },
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}
