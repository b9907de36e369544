//! The seam between the job system and a host. A transport runs a POSIX sh
//! script on its host and returns the script's output; the whole remote
//! protocol is built from that one operation, so the embedded `local` host
//! and SSH hosts exercise exactly the same protocol code.
//!
//! Bulk data (file transfer) and followed output need streams rather than
//! buffered output: [`Transport::open_stream`] starts a script whose stdin
//! and stdout are byte streams ([`DataStream`]).
//!
//! Implementations: [`local::LocalTransport`] (this machine, `/bin/sh`) and
//! [`ssh::SshTransport`] (belay-ssh's persistent remote shell).

pub mod local;
pub mod ssh;

use std::fmt;

/// What a script printed and how it ended.
#[derive(Debug, Clone)]
pub struct ScriptOutput {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ScriptOutput {
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
}

/// Why a transport could not run a script. The message always carries the
/// real underlying error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The link to the host broke or could not be made; the host may be fine.
    #[error("host {host} unreachable: {message}")]
    Unreachable { host: String, message: String },
    /// The host (or a hop) stopped answering within the keepalive bound.
    #[error("host {host} not responding: {message}")]
    NotResponding { host: String, message: String },
    /// Authentication or host-key verification refused us: retrying will not
    /// help until the user acts.
    #[error("host {host}: {message}")]
    Refused { host: String, message: String },
    /// The host name itself is wrong: not an ssh_config alias and not a
    /// resolvable name, or the ssh configuration rejects it.
    #[error("unknown host '{host}': {message}")]
    BadHost { host: String, message: String },
    /// The host serves this account but will not run commands for it
    /// (an sftp-only account); what it printed is in the message.
    #[error("host {host}: {message}")]
    NoShell { host: String, message: String },
    /// Could not even start the local machinery (spawn failed).
    #[error("host {host}: {message}")]
    Local { host: String, message: String },
}

impl TransportError {
    /// The variant as a stable word (recorded with host health, shown in
    /// `host list --json` as `last_error_kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            TransportError::Unreachable { .. } => "unreachable",
            TransportError::NotResponding { .. } => "not_responding",
            TransportError::Refused { .. } => "refused",
            TransportError::BadHost { .. } => "bad_host",
            TransportError::NoShell { .. } => "no_shell",
            TransportError::Local { .. } => "local",
        }
    }

    /// Worth retrying later without user action?
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            TransportError::Unreachable { .. } | TransportError::NotResponding { .. }
        )
    }
}

/// Where a host keeps job directories, as a shell word evaluated there
/// (`"$HOME"/.belay/jobs` by default on remote hosts).
#[derive(Clone, PartialEq, Eq)]
pub struct Workroot(pub String);

impl fmt::Debug for Workroot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub trait Transport: Send + Sync {
    /// The host's name as the user gave it (`local`, an ssh alias).
    fn host(&self) -> &str;

    /// The job-directory root on this host, as a shell expression.
    fn workroot(&self) -> Workroot;

    /// Make sure the host can be reached (connecting if needed), so that a
    /// job is only recorded for a host that answers. No side effects.
    fn connect(&self) -> Result<(), TransportError> {
        Ok(())
    }

    /// How the last connection reached the host (`via jump2` when a jump
    /// fallback was used); `None` for direct connections.
    fn route(&self) -> Option<String> {
        None
    }

    /// Run `script` with `/bin/sh` on the host. Must not pay the user's
    /// login-shell start-up. A non-zero exit status is not an error here:
    /// protocol scripts report their own outcome.
    fn run_script(&self, script: &str) -> Result<ScriptOutput, TransportError>;

    /// Start `script` with `/bin/sh` on the host, its stdin and stdout
    /// streamed. Pays the login shell's start-up once (SSH exec channel).
    fn open_stream(&self, script: &str) -> Result<Box<dyn DataStream>, TransportError>;

    /// Start `script`, which reads no input and announces its own end in
    /// its framed stdout (a job's output follower), its stdout streamed.
    /// Where the transport pools shells, the script runs as a request to
    /// one of them, which goes back to the pool once the caller has read
    /// to the end ([`DataStream::release`]) — no shell to replace, as
    /// after [`Self::open_stream`]. By default, [`Self::open_stream`].
    fn open_output_stream(&self, script: &str) -> Result<Box<dyn DataStream>, TransportError> {
        self.open_stream(script)
    }

    /// The host's SFTP subsystem, for hosts that refuse commands. `None`
    /// where there is no such thing (the embedded `local` host).
    fn open_sftp(&self) -> Result<Option<belay_ssh::Sftp>, TransportError> {
        Ok(None)
    }
}

/// A running script with streaming stdin and stdout (see
/// [`Transport::open_stream`]). The protocol on top must let the script
/// read all of its input before it writes much output.
pub trait DataStream: Send {
    /// Feed the script's stdin.
    fn write_all(&mut self, data: &[u8]) -> Result<(), TransportError>;
    /// Close the script's stdin.
    fn close_input(&mut self) -> Result<(), TransportError>;
    /// The next piece of the script's stdout; `None` once it has ended.
    fn read_chunk(&mut self) -> Result<Option<Vec<u8>>, TransportError>;
    /// Close stdin, drain stdout and return how the script ended (its
    /// status and the head of its stderr).
    fn finish(self: Box<Self>) -> Result<ScriptOutput, TransportError>;
    /// Give up: stop the script without reading the rest of its output (a
    /// local disk filled up; there is no point receiving 40 GB more).
    fn abort(self: Box<Self>);
    /// For a stream from [`Transport::open_output_stream`] that runs as a
    /// pooled request: a line of its stdout starting with this marker is
    /// the request's end (the script ended without the last frame its
    /// reader waits for). `None`: the stream just ends.
    fn end_marker(&self) -> Option<&str> {
        None
    }
    /// The caller has read the script's output to its end (its last frame,
    /// or the [`Self::end_marker`] line); `rest` is what it read beyond.
    /// A pooled request's shell goes back to its pool; any other stream is
    /// closed, as by [`Self::abort`].
    fn release(self: Box<Self>, rest: Vec<u8>) {
        let _ = rest;
        self.abort()
    }
}
