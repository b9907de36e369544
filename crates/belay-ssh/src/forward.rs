//! Forwarded byte streams: a `direct-tcpip` channel to `host:port`, or a
//! `direct-streamlocal@openssh.com` channel to a Unix socket, as seen from
//! the final host of a connection's chain (`ssh -L` / `ssh -L L:/path`).
//! The stream is russh's channel stream (AsyncRead + AsyncWrite; the
//! channel window is the flow control: a slow reader stops the sender).
//!
//! A refused open is a [`ForwardError`] that names the hop that refused
//! and the sshd setting that most likely did it (`AllowTcpForwarding`,
//! `PermitOpen`, `AllowStreamLocalForwarding`), or says that nothing
//! accepts connections there. OpenSSH answers a refused Unix-socket
//! forward and a missing socket the same way (connect failed), so the
//! socket is looked at (`test -S`, nothing removed) to tell them apart.

use std::fmt;

use russh::client::{Handle, Handler, Msg};
use russh::{Channel, ChannelOpenFailure};

use crate::client::Client;
use crate::error::SshError;

/// A forwarded connection's byte stream.
pub type ForwardStream = russh::ChannelStream<Msg>;

/// Where a forward leads, as seen from the final host of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ForwardTarget {
    /// `host:port` (a bare port means `localhost:port`, as `ssh -L`).
    Tcp { host: String, port: u16 },
    /// An absolute Unix socket path.
    Unix(String),
}

impl ForwardTarget {
    /// Parses `PORT`, `HOST:PORT`, `[V6]:PORT` or `/abs/path.sock`; the
    /// error names the bad value.
    pub fn parse(text: &str) -> Result<ForwardTarget, String> {
        if text.starts_with('/') {
            return Ok(ForwardTarget::Unix(text.to_string()));
        }
        if let Some(port) = parse_port(text) {
            return port_target("localhost", port, text);
        }
        let (host, port) = match text.strip_prefix('[') {
            Some(rest) => match rest.split_once("]:") {
                Some((h, p)) => (h, p),
                None => return Err(format!("bad forward target '{text}'")),
            },
            None => match text.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h, p),
                _ => {
                    return Err(format!(
                        "bad forward target '{text}': expected PORT, HOST:PORT or /path.sock"
                    ));
                }
            },
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(format!("bad host '{host}' in forward target '{text}'"));
        }
        match parse_port(port) {
            Some(p) => port_target(host, p, text),
            None => Err(format!(
                "bad port '{port}' in forward target '{text}': a number from 1 to 65535"
            )),
        }
    }
}

fn parse_port(text: &str) -> Option<u32> {
    (!text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

fn port_target(host: &str, port: u32, text: &str) -> Result<ForwardTarget, String> {
    match u16::try_from(port) {
        Ok(p) if p > 0 => Ok(ForwardTarget::Tcp {
            host: host.to_string(),
            port: p,
        }),
        _ => Err(format!(
            "bad port '{port}' in forward target '{text}': a number from 1 to 65535"
        )),
    }
}

impl fmt::Display for ForwardTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardTarget::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            ForwardTarget::Tcp { host, port } => write!(f, "{host}:{port}"),
            ForwardTarget::Unix(path) => f.write_str(path),
        }
    }
}

/// Why a forwarded connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The hop's sshd will not forward there (a setting in its sshd_config).
    #[error("{hop} refuses to forward to {target}: {setting}")]
    Refused {
        hop: String,
        target: String,
        /// The setting(s) that most likely refused it, in words.
        setting: String,
    },
    /// The hop forwards, but nothing accepted the connection there.
    #[error("{hop}: nothing accepts connections at {target} ({detail})")]
    NothingThere {
        hop: String,
        target: String,
        detail: String,
    },
    /// The connection itself failed (link lost, unreachable, auth, ...).
    #[error(transparent)]
    Link(#[from] SshError),
}

impl ForwardError {
    /// True when waiting for the connection to come back may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, ForwardError::Link(e) if e.is_transient())
    }
}

/// Opens the channel for `target` on `handle` (the final hop's session).
pub(crate) async fn open_channel<H: Handler>(
    handle: &Handle<H>,
    target: &ForwardTarget,
) -> Result<Channel<Msg>, russh::Error> {
    match target {
        ForwardTarget::Tcp { host, port } => {
            handle
                .channel_open_direct_tcpip(host.clone(), u32::from(*port), "127.0.0.1", 0)
                .await
        }
        ForwardTarget::Unix(path) => handle.channel_open_direct_streamlocal(path.clone()).await,
    }
}

/// The error for an open the (live) server refused with `reason`.
pub(crate) async fn refusal(
    client: &Client,
    target: &ForwardTarget,
    reason: ChannelOpenFailure,
) -> ForwardError {
    let hop = client.alias().to_string();
    let shown = target.to_string();
    let prohibited = matches!(reason, ChannelOpenFailure::AdministrativelyProhibited);
    match target {
        ForwardTarget::Tcp { .. } if prohibited => ForwardError::Refused {
            hop: hop.clone(),
            target: shown,
            setting: format!(
                "AllowTcpForwarding is no (or PermitOpen does not allow it) in {hop}'s sshd_config"
            ),
        },
        ForwardTarget::Tcp { .. } => ForwardError::NothingThere {
            hop,
            target: shown,
            detail: "connection refused".into(),
        },
        ForwardTarget::Unix(_) if prohibited => ForwardError::Refused {
            hop: hop.clone(),
            target: shown,
            setting: format!("AllowStreamLocalForwarding is no in {hop}'s sshd_config"),
        },
        ForwardTarget::Unix(path) => match socket_kind(client, path).await {
            Some(SocketKind::Socket) => ForwardError::Refused {
                hop: hop.clone(),
                target: shown,
                setting: format!(
                    "the socket exists, so AllowStreamLocalForwarding is likely no in {hop}'s sshd_config (or the socket is stale: nothing listens on it)"
                ),
            },
            Some(SocketKind::Missing) => ForwardError::NothingThere {
                hop,
                target: shown,
                detail: "no such socket".into(),
            },
            Some(SocketKind::NotSocket) => ForwardError::NothingThere {
                hop,
                target: shown,
                detail: "it is not a socket".into(),
            },
            None => ForwardError::NothingThere {
                hop: hop.clone(),
                target: shown,
                detail: format!(
                    "no socket listening there, or AllowStreamLocalForwarding is no in {hop}'s sshd_config"
                ),
            },
        },
    }
}

enum SocketKind {
    Socket,
    Missing,
    NotSocket,
}

/// What is at `path` on the host (None: could not look).
async fn socket_kind(client: &Client, path: &str) -> Option<SocketKind> {
    let quoted = format!("'{}'", path.replace('\'', r"'\''"));
    let script = format!(
        "if [ -S {quoted} ]; then echo socket; elif [ -e {quoted} ]; then echo other; else echo missing; fi"
    );
    let out = client.run_script(&script).await.ok()?;
    match String::from_utf8_lossy(&out.stdout).trim() {
        "socket" => Some(SocketKind::Socket),
        "missing" => Some(SocketKind::Missing),
        "other" => Some(SocketKind::NotSocket),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_as_ssh_l_reads_them() {
        assert_eq!(
            ForwardTarget::parse("8888").unwrap(),
            ForwardTarget::Tcp {
                host: "localhost".into(),
                port: 8888
            }
        );
        assert_eq!(
            ForwardTarget::parse("db.internal:5432")
                .unwrap()
                .to_string(),
            "db.internal:5432"
        );
        assert_eq!(
            ForwardTarget::parse("[::1]:80").unwrap().to_string(),
            "[::1]:80"
        );
        assert_eq!(
            ForwardTarget::parse("/run/user/1000/app.sock").unwrap(),
            ForwardTarget::Unix("/run/user/1000/app.sock".into())
        );
        for bad in ["0", "65536", "host:", "host:x", ":80", "a b:80", "99999999"] {
            let e = ForwardTarget::parse(bad).unwrap_err();
            assert!(
                e.contains(&format!("'{bad}'")) || e.contains("bad"),
                "{bad}: {e}"
            );
        }
    }
}
