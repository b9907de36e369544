//! The local end of a forward: a TCP listener on 127.0.0.1 or a Unix
//! socket (mode 0600). A port in use, or a socket something answers on, is
//! bad input naming it; a socket file nothing answers on is stale and is
//! replaced (probed with a connect first, never removed blindly).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use belay_core::CoreError;

use super::spec::LocalEnd;

/// A bound listener, not yet serving (std: bound on any thread, served on
/// the SSH runtime).
pub enum Bound {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener, std::path::PathBuf),
}

impl Bound {
    /// Where it listens, as recorded and shown: `127.0.0.1:PORT` or the path.
    pub fn address(&self) -> String {
        match self {
            Bound::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "127.0.0.1:?".into()),
            Bound::Unix(_, path) => path.display().to_string(),
        }
    }
}

pub fn bind(local: &LocalEnd) -> Result<Bound, CoreError> {
    match local {
        LocalEnd::Port(port) => {
            let listener =
                std::net::TcpListener::bind(("127.0.0.1", *port)).map_err(|e| match e.kind() {
                    std::io::ErrorKind::AddrInUse => {
                        CoreError::BadInput(format!("local port {port} is in use"))
                    }
                    _ => CoreError::BadInput(format!("cannot listen on local port {port}: {e}")),
                })?;
            listener.set_nonblocking(true).map_err(io)?;
            Ok(Bound::Tcp(listener))
        }
        LocalEnd::Socket(path) => bind_socket(path),
    }
}

fn bind_socket(path: &Path) -> Result<Bound, CoreError> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(CoreError::BadInput(format!(
                "local socket {} is in use",
                path.display()
            )));
        }
        let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_socket()
        });
        if !is_socket {
            return Err(CoreError::BadInput(format!(
                "local socket {} exists and is not a socket",
                path.display()
            )));
        }
        // A socket nothing answers on: stale.
        let _ = std::fs::remove_file(path);
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .map_err(|e| CoreError::BadInput(format!("cannot listen on {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    listener.set_nonblocking(true).map_err(io)?;
    Ok(Bound::Unix(listener, path.to_path_buf()))
}

fn io(source: std::io::Error) -> CoreError {
    CoreError::Io {
        what: "a forward's local listener".into(),
        source,
    }
}
