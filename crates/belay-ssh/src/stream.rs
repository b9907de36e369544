//! [`ExecStream`]: a remote `/bin/sh` script whose stdin and stdout are byte
//! streams, for bulk data (file transfer). [`crate::Client::run_script`]
//! buffers whole outputs; this does not, so a gigabyte flows through with
//! bounded memory and SSH flow control.
//!
//! The script starts in one of the client's persistent shells, which hands
//! its channel over ([`crate::shell`]: a `stream` request), so a stream
//! does not pay the user's login-shell start-up; the client opens a
//! replacement shell in the background while the data flows. The script
//! text travels on stdin: it never appears in the remote process list and
//! has no size limit.
//!
//! Reads and writes are plain async calls; while a write waits for the
//! peer's window, messages arriving from the script (stderr, stdout, exit
//! status) are set aside, so a chatty script cannot stall the connection.
//! Protocols must still let the script finish reading before it writes a lot
//! to stdout, or both ends wait on each other's buffers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use russh::ChannelMsg;
use russh::client::Msg;
use russh::{ChannelReadHalf, ChannelWriteHalf};
use tokio::sync::OwnedSemaphorePermit;

use crate::error::SshError;
use crate::session::LinkMonitor;
use crate::shell::MAX_CHATTER;

/// Keeps stderr bounded: the head of it is what explains a failure.
const MAX_STDERR: usize = 64 * 1024;

/// How the script ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEnd {
    /// Exit status; 128+N when killed by signal N.
    pub status: i32,
    pub stderr: Vec<u8>,
}

/// A running remote script with streaming stdin/stdout.
pub struct ExecStream {
    write: ChannelWriteHalf<Msg>,
    read: ChannelReadHalf,
    host: String,
    monitor: Arc<LinkMonitor>,
    alive: Box<dyn Fn() -> bool + Send + Sync>,
    /// Longest wait for any progress (a hung remote side with a live link).
    idle: Duration,
    inbox: Inbox,
    /// Most stdout held while a write waits (a script that writes without
    /// reading must not fill local memory): [`crate::ReplyLimits::stdout`].
    max_pending: usize,
    input_closed: bool,
    _permit: OwnedSemaphorePermit,
}

/// What the script sent while we were busy elsewhere.
#[derive(Default)]
struct Inbox {
    stdout: VecDeque<Vec<u8>>,
    /// Bytes in `stdout`.
    pending: usize,
    stderr: Vec<u8>,
    status: Option<i32>,
    /// The peer closed the channel.
    out_done: bool,
}

impl Inbox {
    fn pop(&mut self) -> Option<Vec<u8>> {
        let chunk = self.stdout.pop_front()?;
        self.pending -= chunk.len();
        Some(chunk)
    }

    fn push_front(&mut self, chunk: Vec<u8>) {
        self.pending += chunk.len();
        self.stdout.push_front(chunk);
    }

    fn take(&mut self, msg: Option<ChannelMsg>) {
        match msg {
            Some(ChannelMsg::Data { data }) => {
                self.pending += data.len();
                self.stdout.push_back(data.to_vec())
            }
            Some(ChannelMsg::ExtendedData { data, .. }) => {
                let room = MAX_STDERR.saturating_sub(self.stderr.len());
                self.stderr.extend_from_slice(&data[..data.len().min(room)]);
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => self.status = Some(exit_status as i32),
            Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                self.status = Some(128 + crate::shell::signal_number(&signal_name))
            }
            Some(ChannelMsg::Close) | None => self.out_done = true,
            Some(_) => {}
        }
    }
}

enum Failure {
    Closed(String),
    Idle,
}

impl ExecStream {
    /// Wraps a channel on which the script already runs.
    pub(crate) fn new(
        channel: russh::Channel<Msg>,
        host: &str,
        monitor: Arc<LinkMonitor>,
        alive: Box<dyn Fn() -> bool + Send + Sync>,
        idle: Duration,
        permit: OwnedSemaphorePermit,
        max_pending: usize,
    ) -> ExecStream {
        let (read, write) = channel.split();
        ExecStream {
            write,
            read,
            host: host.to_string(),
            monitor,
            alive,
            idle,
            inbox: Inbox::default(),
            max_pending,
            input_closed: false,
            _permit: permit,
        }
    }

    /// Waits for the shell's echo of `token`, dropping anything queued
    /// before it (late output of an earlier script's background process).
    pub(crate) async fn expect_token(&mut self, token: &str) -> Result<(), SshError> {
        let needle = format!("{token}\n").into_bytes();
        let mut seen: Vec<u8> = Vec::new();
        loop {
            if let Some(p) = seen
                .windows(needle.len())
                .position(|w| w == needle.as_slice())
            {
                let rest = seen.split_off(p + needle.len());
                if !rest.is_empty() {
                    self.inbox.push_front(rest);
                }
                return Ok(());
            }
            if seen.len() > MAX_CHATTER + needle.len() {
                return Err(SshError::Protocol {
                    host: self.host.clone(),
                    detail: format!(
                        "the host sent more than {MAX_CHATTER} bytes before the transfer started \
                         (a broken or hostile host?)"
                    ),
                });
            }
            match self.inbox.pop() {
                Some(chunk) => seen.extend_from_slice(&chunk),
                None if self.inbox.out_done || self.inbox.status.is_some() => {
                    return Err(SshError::Channel {
                        host: self.host.clone(),
                        detail: "the remote shell ended before starting the transfer".into(),
                    });
                }
                None => match tokio::time::timeout(self.idle, self.read.wait()).await {
                    Ok(msg) => self.inbox.take(msg),
                    Err(_) => return Err(self.fail(Failure::Idle).await),
                },
            }
        }
    }

    /// Sends `data` to the script's stdin (waiting for the peer's window).
    pub async fn write_all(&mut self, data: &[u8]) -> Result<(), SshError> {
        let bytes = data.to_vec();
        let send = self.write.data_bytes(bytes);
        tokio::pin!(send);
        loop {
            tokio::select! {
                r = &mut send => {
                    return match r {
                        Ok(()) => Ok(()),
                        Err(e) => Err(self.fail(Failure::Closed(e.to_string())).await),
                    };
                }
                msg = self.read.wait(), if !self.inbox.out_done => {
                    self.inbox.take(msg);
                    if self.inbox.pending > self.max_pending {
                        return Err(SshError::Protocol {
                            host: self.host.clone(),
                            detail: format!(
                                "the remote command sent more than {} bytes of output \
                                 without reading its input (a broken or hostile host?)",
                                self.max_pending
                            ),
                        });
                    }
                    if self.inbox.status.is_some() {
                        // The script ended without reading all of its
                        // input (a full disk, a missing file): no point
                        // waiting for window; `finish` tells why.
                        return Err(SshError::Channel {
                            host: self.host.clone(),
                            detail: "the remote command ended before reading all of its input".into(),
                        });
                    }
                    if self.inbox.out_done {
                        // Closed without an exit status: the channel or the
                        // link died under the script.
                        return Err(self
                            .monitor
                            .error(&self.host, "the channel closed during a transfer")
                            .await);
                    }
                }
                _ = tokio::time::sleep(self.idle) => return Err(self.fail(Failure::Idle).await),
            }
        }
    }

    /// Closes the script's stdin.
    pub async fn close_input(&mut self) -> Result<(), SshError> {
        if self.input_closed {
            return Ok(());
        }
        self.input_closed = true;
        if let Err(e) = self.write.eof().await {
            return Err(self.fail(Failure::Closed(e.to_string())).await);
        }
        Ok(())
    }

    /// The next piece of the script's stdout; `None` once it has ended.
    pub async fn read(&mut self) -> Result<Option<Vec<u8>>, SshError> {
        loop {
            if let Some(chunk) = self.inbox.pop() {
                return Ok(Some(chunk));
            }
            if self.inbox.out_done {
                return Ok(None);
            }
            match tokio::time::timeout(self.idle, self.read.wait()).await {
                Ok(msg) => self.inbox.take(msg),
                Err(_) => return Err(self.fail(Failure::Idle).await),
            }
        }
    }

    /// Closes stdin, drains stdout (discarding it) and returns how the
    /// script ended. An error means the link failed, not the script.
    pub async fn finish(mut self) -> Result<StreamEnd, SshError> {
        let ended = |s: &Self| s.inbox.status.is_some() || s.inbox.out_done;
        if let Err(e) = self.close_input().await
            && !ended(&self)
        {
            return Err(e);
        }
        loop {
            match self.read().await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) if self.inbox.status.is_some() => break,
                Err(e) => return Err(e),
            }
        }
        match self.inbox.status {
            Some(status) => Ok(StreamEnd {
                status,
                stderr: std::mem::take(&mut self.inbox.stderr),
            }),
            None => Err(self
                .fail(Failure::Closed(
                    "channel closed without an exit status".into(),
                ))
                .await),
        }
    }

    /// Gives up on the stream: closes the channel (sshd then hangs up on
    /// the script) without reading what is left.
    pub async fn abort(self) {
        let _ = self.write.close().await;
    }

    async fn fail(&self, f: Failure) -> SshError {
        match f {
            Failure::Idle => SshError::Timeout {
                host: self.host.clone(),
                what: "a data stream (no progress)".into(),
                after: self.idle,
            },
            Failure::Closed(detail) => {
                if self.monitor.is_down() || !(self.alive)() {
                    self.monitor.error(&self.host, detail).await
                } else {
                    SshError::Channel {
                        host: self.host.clone(),
                        detail,
                    }
                }
            }
        }
    }
}
