//! The SFTP subsystem on one channel of a client's connection, for hosts
//! that serve files but refuse to run commands (sftp-only accounts:
//! `ForceCommand internal-sftp`, storage boxes). Everything else in belay
//! talks to a host through `/bin/sh`; this is the one path that does not.
//!
//! [`Sftp`] is russh-sftp's raw session (every request is pipelined: many
//! may be in flight at once) plus what the server said it supports, and
//! the channel permit it holds, so that it counts against the client's
//! channel limit like a shell does.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use russh_sftp::client::error::Error as SftpError;
use russh_sftp::client::{Config, RawSftpSession};
use russh_sftp::protocol::{Packet, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, OwnedSemaphorePermit};

/// OpenSSH's rename that replaces an existing target (plain SFTP rename
/// refuses to).
const POSIX_RENAME: &str = "posix-rename@openssh.com";
const FSYNC: &str = "fsync@openssh.com";

/// An open SFTP session.
pub struct Sftp {
    session: RawSftpSession,
    ended: Arc<Ended>,
    extensions: HashMap<String, String>,
    /// Largest write and read the server accepts (`limits@openssh.com`).
    write_len: u32,
    read_len: u32,
    _permit: OwnedSemaphorePermit,
}

/// What a request's failure means.
pub fn is_not_found(e: &SftpError) -> bool {
    matches!(e, SftpError::Status(s) if s.status_code == StatusCode::NoSuchFile)
}

/// The session or the link ended under a request (worth a reconnect).
pub fn is_lost(e: &SftpError) -> bool {
    matches!(
        e,
        SftpError::IO(_) | SftpError::Timeout | SftpError::UnexpectedBehavior(_)
    )
}

impl Sftp {
    /// Starts the protocol on a channel whose subsystem request the server
    /// accepted.
    pub(crate) async fn start<S>(
        channel: S,
        permit: OwnedSemaphorePermit,
    ) -> Result<Sftp, SftpError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let ended = Arc::new(Ended::default());
        let watched = Watched {
            inner: channel,
            ended: ended.clone(),
        };
        // russh-sftp's own per-request timeout is only a last resort: a
        // dead link ends the channel, which ends every request at once
        // (see `guard`), and a slow host file system may take minutes to
        // flush a big file.
        let session = RawSftpSession::new_with_config(
            watched,
            Config {
                request_timeout_secs: 3600,
                ..Config::default()
            },
        );
        let version = session.init().await?;
        // 32 KiB is what every server takes (the draft's minimum); OpenSSH
        // tells its real limits (256 KiB packets) through an extension.
        let (mut write_len, mut read_len) = (32 * 1024, 32 * 1024);
        if version.extensions.contains_key("limits@openssh.com")
            && let Ok(l) = session.limits().await
        {
            // Within the server's limits and below russh-sftp's 256 KiB
            // packet ceiling (a packet carries a header too).
            let cap = |v: u64, default: u32| {
                if v >= 4096 {
                    v.min(128 * 1024) as u32
                } else {
                    default
                }
            };
            write_len = cap(l.max_write_len, write_len);
            read_len = cap(l.max_read_len, read_len);
        }
        Ok(Sftp {
            session,
            ended,
            extensions: version.extensions,
            write_len,
            read_len,
            _permit: permit,
        })
    }

    /// The raw session: open, read, write, stat, readdir... (pipelined).
    /// Await its requests through [`Sftp::guard`].
    pub fn raw(&self) -> &RawSftpSession {
        &self.session
    }

    /// Awaits a request, or fails it as soon as the channel ends (a lost
    /// link, a killed server): russh-sftp alone would leave it waiting for
    /// its timeout.
    pub async fn guard<T>(
        &self,
        request: impl Future<Output = Result<T, SftpError>>,
    ) -> Result<T, SftpError> {
        tokio::select! {
            r = request => r,
            _ = self.ended.wait() => Err(SftpError::IO("the SFTP channel closed".into())),
        }
    }

    pub fn write_len(&self) -> u32 {
        self.write_len
    }

    pub fn read_len(&self) -> u32 {
        self.read_len
    }

    /// Renames `from` to `to`, replacing `to` if it exists — atomically
    /// where the server has OpenSSH's `posix-rename`; elsewhere `to` is
    /// removed first (the one non-atomic step, said in the docs).
    pub async fn replace(&self, from: &str, to: &str) -> Result<(), SftpError> {
        if self.extensions.contains_key(POSIX_RENAME) {
            let reply = self
                .guard(self.session.extended(POSIX_RENAME, two_strings(from, to)))
                .await?;
            return status_ok(reply);
        }
        match self.guard(self.session.remove(to)).await {
            Err(e) if !is_not_found(&e) => return Err(e),
            _ => {}
        }
        self.guard(self.session.rename(from, to)).await.map(|_| ())
    }

    /// Flushes an open file to the host's disk where the server can
    /// (`fsync@openssh.com`); a no-op elsewhere.
    pub async fn fsync(&self, handle: &str) -> Result<(), SftpError> {
        if self.extensions.contains_key(FSYNC) {
            self.guard(self.session.fsync(handle)).await?;
        }
        Ok(())
    }
}

impl Drop for Sftp {
    fn drop(&mut self) {
        let _ = self.session.close_session();
    }
}

/// Set once the channel's read side ends (EOF or error).
#[derive(Default)]
struct Ended {
    flag: AtomicBool,
    notify: Notify,
}

impl Ended {
    fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.flag.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

/// The channel, telling [`Ended`] when its read side ends.
struct Watched<S> {
    inner: S,
    ended: Arc<Ended>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &r {
            Poll::Ready(Err(_)) => self.ended.set(),
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                self.ended.set()
            }
            _ => {}
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Two SSH strings (length-prefixed), an extension request's body.
fn two_strings(a: &str, b: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + a.len() + b.len());
    for s in [a, b] {
        v.extend_from_slice(&(s.len() as u32).to_be_bytes());
        v.extend_from_slice(s.as_bytes());
    }
    v
}

fn status_ok(reply: Packet) -> Result<(), SftpError> {
    match reply {
        Packet::Status(s) if s.status_code == StatusCode::Ok => Ok(()),
        Packet::Status(s) => Err(SftpError::Status(s)),
        _ => Err(SftpError::UnexpectedPacket),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_bodies_are_length_prefixed_strings() {
        assert_eq!(
            two_strings("ab", "c"),
            vec![0, 0, 0, 2, b'a', b'b', 0, 0, 0, 1, b'c']
        );
    }
}
