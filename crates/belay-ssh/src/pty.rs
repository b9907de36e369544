//! [`Interactive`]: a session channel for a person at a terminal (`belay
//! shell`): optionally a pseudo-terminal (`pty-req` with TERM, size and
//! modes), then a command (`exec`) or the user's shell (`shell`), with
//! stdin forwarded, window changes, and the exit status or signal at the
//! end.
//!
//! It runs on the client's pooled connection and holds one of its session
//! channels (the client's semaphore) until dropped. The requests are sent
//! back to back and their replies read afterwards, so opening costs one
//! round trip after the channel itself, as `ssh -t` does.
//!
//! [`Interactive::split`] gives an [`InteractiveOutput`] (read by one task)
//! and an [`InteractiveInput`] (shared, `&self` methods: stdin bytes,
//! window changes, EOF), so typing never waits on output and the other way
//! round.

use std::sync::Arc;

use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Pty};
use tokio::sync::OwnedSemaphorePermit;

use crate::error::SshError;
use crate::session::LinkMonitor;

/// The pseudo-terminal asked for: `TERM`, size in characters, and terminal
/// modes as RFC 4254 opcode/value pairs (opcodes unknown to russh are left
/// out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtySpec {
    pub term: String,
    pub cols: u32,
    pub rows: u32,
    pub modes: Vec<(u8, u32)>,
}

/// What to start on the channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRequest {
    /// `None`: no terminal (plain pipes, stderr apart, like `ssh host cmd`).
    pub pty: Option<PtySpec>,
    /// `None`: the user's login shell (a `shell` request).
    pub command: Option<String>,
}

/// One thing the remote side did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Output (with a pty, stdout and stderr together).
    Stdout(Vec<u8>),
    /// Stderr (only without a pty).
    Stderr(Vec<u8>),
    /// The channel closed: the exit status (128+N for signal N), or `None`
    /// when the server sent none (an sshd that lost its child).
    Ended(Option<i32>),
}

/// An interactive session channel; [`Interactive::split`] it to use it.
pub struct Interactive {
    read: ChannelReadHalf,
    write: ChannelWriteHalf<Msg>,
    /// Output that arrived while the requests' replies were awaited.
    early: Vec<ChannelMsg>,
    host: String,
    monitor: Arc<LinkMonitor>,
    alive: Box<dyn Fn() -> bool + Send + Sync>,
    permit: OwnedSemaphorePermit,
}

/// The reading side: output events until the end.
pub struct InteractiveOutput {
    read: ChannelReadHalf,
    early: std::collections::VecDeque<ChannelMsg>,
    host: String,
    monitor: Arc<LinkMonitor>,
    alive: Box<dyn Fn() -> bool + Send + Sync>,
    status: Option<i32>,
    ended: bool,
    _permit: OwnedSemaphorePermit,
}

/// The writing side: stdin, window size, EOF.
pub struct InteractiveInput {
    write: ChannelWriteHalf<Msg>,
    host: String,
}

impl Interactive {
    /// Sends `request` on a freshly opened session channel and waits for
    /// the server's replies (a refused pty or command is an error naming
    /// the host).
    pub(crate) async fn start(
        channel: russh::Channel<Msg>,
        request: &SessionRequest,
        host: &str,
        monitor: Arc<LinkMonitor>,
        alive: Box<dyn Fn() -> bool + Send + Sync>,
        permit: OwnedSemaphorePermit,
    ) -> Result<Interactive, String> {
        let mut replies = Vec::new();
        if let Some(pty) = &request.pty {
            let modes: Vec<(Pty, u32)> = pty
                .modes
                .iter()
                .filter_map(|(op, v)| Pty::from_u8(*op).map(|p| (p, *v)))
                .filter(|(p, _)| *p != Pty::TTY_OP_END)
                .collect();
            channel
                .request_pty(true, &pty.term, pty.cols, pty.rows, 0, 0, &modes)
                .await
                .map_err(|e| format!("requesting a terminal: {e}"))?;
            replies.push("the server refused a terminal (pty-req)");
        }
        match &request.command {
            Some(command) => {
                channel
                    .exec(true, command.as_bytes())
                    .await
                    .map_err(|e| format!("starting the command: {e}"))?;
                replies.push("the server refused to run the command (exec)");
            }
            None => {
                channel
                    .request_shell(true)
                    .await
                    .map_err(|e| format!("starting the shell: {e}"))?;
                replies.push("the server refused a shell");
            }
        }
        let (mut read, write) = channel.split();
        let mut early = Vec::new();
        let mut pending = replies.into_iter();
        let mut next = pending.next();
        while let Some(refusal) = next {
            match read.wait().await {
                Some(ChannelMsg::Success) => next = pending.next(),
                Some(ChannelMsg::Failure) => return Err(refusal.to_string()),
                Some(ChannelMsg::Close) | None => {
                    return Err("the session channel closed before it started".into());
                }
                Some(msg) => early.push(msg),
            }
        }
        Ok(Interactive {
            read,
            write,
            early,
            host: host.to_string(),
            monitor,
            alive,
            permit,
        })
    }

    /// The output side and the input side.
    pub fn split(self) -> (InteractiveOutput, InteractiveInput) {
        (
            InteractiveOutput {
                read: self.read,
                early: self.early.into(),
                host: self.host.clone(),
                monitor: self.monitor,
                alive: self.alive,
                status: None,
                ended: false,
                _permit: self.permit,
            },
            InteractiveInput {
                write: self.write,
                host: self.host,
            },
        )
    }
}

impl InteractiveOutput {
    /// The next thing the remote side did. After [`SessionEvent::Ended`],
    /// returns it again. A link lost before the end is an error
    /// ([`SshError::LinkLost`] / [`SshError::HostNotResponding`]).
    pub async fn next(&mut self) -> Result<SessionEvent, SshError> {
        loop {
            if self.ended {
                return Ok(SessionEvent::Ended(self.status));
            }
            let msg = match self.early.pop_front() {
                Some(m) => Some(m),
                None => self.read.wait().await,
            };
            match msg {
                Some(ChannelMsg::Data { data }) => return Ok(SessionEvent::Stdout(data.to_vec())),
                Some(ChannelMsg::ExtendedData { data, .. }) => {
                    return Ok(SessionEvent::Stderr(data.to_vec()));
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    self.status = Some(exit_status as i32)
                }
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    self.status = Some(128 + crate::shell::signal_number(&signal_name))
                }
                Some(ChannelMsg::Close) => self.ended = true,
                None => {
                    // The channel's sender went away: a clean close was
                    // seen above, so this is a dropped link (or a status
                    // that came just before it).
                    if self.status.is_some() {
                        self.ended = true;
                    } else {
                        return Err(self.lost().await);
                    }
                }
                Some(_) => {}
            }
        }
    }

    async fn lost(&self) -> SshError {
        let detail = "the connection dropped during the session";
        if (self.alive)() && !self.monitor.is_down() {
            SshError::Channel {
                host: self.host.clone(),
                detail: detail.into(),
            }
        } else {
            self.monitor.error(&self.host, detail).await
        }
    }
}

impl InteractiveInput {
    /// Sends bytes to the remote stdin (waits for the peer's window).
    pub async fn send(&self, data: &[u8]) -> Result<(), SshError> {
        self.write
            .data_bytes(data.to_vec())
            .await
            .map_err(|e| self.closed(e))
    }

    /// Tells the remote pty its new size.
    pub async fn resize(&self, cols: u32, rows: u32) -> Result<(), SshError> {
        self.write
            .window_change(cols, rows, 0, 0)
            .await
            .map_err(|e| self.closed(e))
    }

    /// No more input (local stdin reached its end).
    pub async fn close_stdin(&self) -> Result<(), SshError> {
        self.write.eof().await.map_err(|e| self.closed(e))
    }

    /// Closes the channel (the client went away): the server hangs up the
    /// remote side as when a terminal closes.
    pub async fn close(&self) {
        let _ = self.write.eof().await;
        let _ = self.write.close().await;
    }

    fn closed(&self, e: russh::Error) -> SshError {
        SshError::Channel {
            host: self.host.clone(),
            detail: format!("the session channel is closed: {e}"),
        }
    }
}
