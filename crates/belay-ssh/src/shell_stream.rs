//! [`ShellStream`]: a request to one of the persistent shells whose stdout
//! the caller reads as it comes, and after which the shell goes back to
//! its pool — for a script that reads no input and writes framed output
//! until an end it announces itself (a job's output follower).
//!
//! An [`crate::ExecStream`] takes a shell over for good (its channel
//! becomes the script's stdin and stdout), so the pool opens a replacement:
//! a login shell and a loop on the host, a channel on the connection. A
//! follower needs neither stdin nor the channel's end: it runs as an
//! ordinary request, and its stdout arrives piece by piece instead of
//! whole. The caller's framing knows where the script's output ends (its
//! last frame); what it read beyond that goes back with
//! [`ShellStream::release`], which reads the reply's end (sentinel, status,
//! stderr) in the background and returns the shell to the pool. A script
//! that ends without its last frame shows as a line starting with
//! [`ShellStream::end_marker`] where the caller expects a frame. Stopping
//! early ([`ShellStream::abort`]) closes the channel: the shell goes, as an
//! aborted [`crate::ExecStream`]'s does.

use std::sync::Arc;
use std::time::Duration;

use crate::error::SshError;
use crate::session::LinkMonitor;
use crate::shell::Shell;

/// Longest wait, after the caller's release, for the rest of the reply
/// (the script has ended: only its status and stderr are left to come).
const RELEASE_WITHIN: Duration = Duration::from_secs(10);

/// Where a released shell goes: back to the pool of its connection (`None`),
/// or, when the pool is full, back to the caller (to be closed).
pub(crate) type GiveBack = Box<dyn FnOnce(Shell) -> Option<Shell> + Send>;

/// A running request with its stdout streamed (see the module header).
pub struct ShellStream {
    shell: Option<Shell>,
    sentinel: String,
    host: String,
    monitor: Arc<LinkMonitor>,
    /// Longest wait for the next piece of output.
    idle: Duration,
    give_back: Option<GiveBack>,
}

impl ShellStream {
    pub(crate) fn new(
        shell: Shell,
        sentinel: String,
        host: &str,
        monitor: Arc<LinkMonitor>,
        idle: Duration,
        give_back: GiveBack,
    ) -> ShellStream {
        ShellStream {
            shell: Some(shell),
            sentinel,
            host: host.to_string(),
            monitor,
            idle,
            give_back: Some(give_back),
        }
    }

    /// How the request's end shows in its stdout when the script ended
    /// without the last frame its caller waits for: a line starting with
    /// this marker, then the script's status and its stderr's length.
    pub fn end_marker(&self) -> &str {
        &self.sentinel
    }

    /// The next piece of the script's stdout, as it comes.
    pub async fn read(&mut self) -> Result<Vec<u8>, SshError> {
        let Some(shell) = self.shell.as_mut() else {
            return Err(SshError::Channel {
                host: self.host.clone(),
                detail: "the stream was released".into(),
            });
        };
        match tokio::time::timeout(self.idle, shell.next_data(&self.host, &self.monitor)).await {
            Ok(r) => r,
            Err(_) => Err(SshError::Timeout {
                host: self.host.clone(),
                what: "a data stream (no progress)".into(),
                after: self.idle,
            }),
        }
    }

    /// The caller has read the script's output to its end; `rest` is what
    /// it read beyond. The reply's end is read in the background (within
    /// [`RELEASE_WITHIN`]) and the shell goes back to its pool; one that
    /// does not end cleanly is closed. The handle says which (true: back
    /// in the pool); nobody needs to wait for it. Call inside the tokio
    /// runtime.
    pub fn release(mut self, rest: Vec<u8>) -> tokio::task::JoinHandle<bool> {
        let shell = self.shell.take();
        let give_back = self.give_back.take();
        let (sentinel, host) = (std::mem::take(&mut self.sentinel), self.host.clone());
        tokio::spawn(async move {
            let (Some(mut shell), Some(give_back)) = (shell, give_back) else {
                return false;
            };
            match tokio::time::timeout(RELEASE_WITHIN, shell.end_streaming(rest, &sentinel)).await {
                Ok(Ok(_)) => match give_back(shell) {
                    None => true,
                    // A full pool: closed, so the server counts the channel
                    // no more (dropping a channel does not close it).
                    Some(shell) => {
                        shell.close().await;
                        false
                    }
                },
                Ok(Err(detail)) => {
                    tracing::debug!(%host, %detail, "a released stream's shell did not end cleanly");
                    shell.close().await;
                    false
                }
                Err(_) => {
                    tracing::debug!(%host, "a released stream's shell did not end in time");
                    shell.close().await;
                    false
                }
            }
        })
    }

    /// Gives up on the stream: closes the channel (the script ends with
    /// it, on its next write at the latest); the shell is not reused.
    pub async fn abort(mut self) {
        if let Some(shell) = self.shell.take() {
            shell.close().await;
        }
    }
}

impl Drop for ShellStream {
    /// Neither released nor aborted (its reader gave up on an error): the
    /// channel is closed in the background — a dropped channel stays open
    /// on the server, counted against its MaxSessions.
    fn drop(&mut self) {
        if let Some(shell) = self.shell.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(shell.close());
        }
    }
}
