//! SSH hosts: a blocking adapter over belay-ssh's async [`Client`]. One
//! client (one connection, reconnecting) per host per process; every
//! protocol script goes through the client's persistent `/bin/sh`, so no
//! call pays the user's login-shell start-up.
//!
//! belay's job system is synchronous (a CLI process does one thing at a
//! time); a single current-thread tokio runtime per process drives all SSH
//! I/O while a call is in progress. The daemon, which serves many hosts,
//! forwards and shells at once, asks for worker threads instead
//! ([`use_worker_threads`]): a session through a jump host carries two
//! layers of encryption, and on one thread they shared one core where
//! OpenSSH (`ssh -W` in a second process) uses two.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use belay_ssh::{Client, SshError};

use super::{DataStream, ScriptOutput, Transport, TransportError, Workroot};

/// Worker threads of the SSH runtime (0: a current-thread runtime).
static WORKERS: AtomicUsize = AtomicUsize::new(0);

/// Before the runtime's first use: drive SSH I/O on `n` worker threads of
/// its own (the daemon) rather than on whichever thread waits for it.
/// Too late once [`runtime`] has been called: it keeps its kind.
pub fn use_worker_threads(n: usize) {
    WORKERS.store(n, Ordering::SeqCst);
}

/// The process's runtime for SSH I/O.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let mut builder = match WORKERS.load(Ordering::SeqCst) {
            0 => tokio::runtime::Builder::new_current_thread(),
            n => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(n).thread_name("belay-ssh-io");
                b
            }
        };
        builder
            .enable_all()
            .build()
            .expect("a tokio runtime can be built")
    })
}

/// Keep the SSH runtime turning when no call is in progress: a
/// long-lived process (the daemon) holds connections between requests,
/// and their keepalives and channel closes must be served meanwhile. One
/// thread parks in the runtime for the process's life; calls from other
/// threads still `block_on` it, their I/O driven by that thread.
pub fn drive_in_background() {
    // Worker threads drive it already.
    if WORKERS.load(Ordering::SeqCst) > 0 {
        return;
    }
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        std::thread::Builder::new()
            .name("belay-ssh-io".into())
            .spawn(|| runtime().block_on(std::future::pending::<()>()))
            .expect("a thread can be started");
    });
}

pub struct SshTransport {
    alias: String,
    client: Arc<Client>,
    workroot: Workroot,
}

impl SshTransport {
    pub fn new(alias: &str, client: Arc<Client>, workroot: Workroot) -> Self {
        Self {
            alias: alias.to_string(),
            client,
            workroot,
        }
    }

    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }
}

impl Transport for SshTransport {
    fn host(&self) -> &str {
        &self.alias
    }

    fn workroot(&self) -> Workroot {
        self.workroot.clone()
    }

    fn connect(&self) -> Result<(), TransportError> {
        runtime()
            .block_on(self.client.connect_info())
            .map(|_| ())
            .map_err(|e| map_error(&self.alias, e))
    }

    fn route(&self) -> Option<String> {
        let info = self.client.last_connect_info()?;
        match (&info.fallback_used, &info.first_hop) {
            (Some(f), _) => Some(format!("via {f} (fallback)")),
            (None, Some(h)) => Some(format!("via {h}")),
            (None, None) => Some("direct".into()),
        }
    }

    fn run_script(&self, script: &str) -> Result<ScriptOutput, TransportError> {
        // Every protocol script is idempotent, so a script cut by a dropped
        // link is simply run again once on a fresh connection (the client
        // reconnects, with its backoff). A host that stops answering is not
        // retried here: that must fail within the keepalive bound.
        let out = match runtime().block_on(self.client.run_script(script)) {
            Err(SshError::LinkLost { .. }) => runtime().block_on(self.client.run_script(script)),
            other => other,
        }
        .map_err(|e| map_error(&self.alias, e))?;
        Ok(ScriptOutput {
            status: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    fn open_stream(&self, script: &str) -> Result<Box<dyn DataStream>, TransportError> {
        let stream = opened(|| runtime().block_on(self.client.exec_stream(script, STREAM_IDLE)))
            .map_err(|e| map_error(&self.alias, e))?;
        Ok(Box::new(SshStream {
            alias: self.alias.clone(),
            inner: Some(stream),
        }))
    }

    fn open_output_stream(&self, script: &str) -> Result<Box<dyn DataStream>, TransportError> {
        let stream = opened(|| runtime().block_on(self.client.stream_script(script, STREAM_IDLE)))
            .map_err(|e| map_error(&self.alias, e))?;
        Ok(Box::new(SshOutputStream {
            alias: self.alias.clone(),
            inner: Some(stream),
        }))
    }

    fn open_sftp(&self) -> Result<Option<belay_ssh::Sftp>, TransportError> {
        self.sftp_session().map(Some)
    }
}

impl SshTransport {
    /// The SFTP session is opened like a stream: a link that dropped since
    /// the last call is re-made once.
    fn sftp_session(&self) -> Result<belay_ssh::Sftp, TransportError> {
        opened(|| runtime().block_on(self.client.open_sftp()))
            .map_err(|e| map_error(&self.alias, e))
    }
}

/// Opening a stream or a session is idempotent: a link that dropped since
/// the last call is re-made once, as for scripts.
fn opened<T>(open: impl Fn() -> Result<T, SshError>) -> Result<T, SshError> {
    match open() {
        Err(SshError::LinkLost { .. }) => open(),
        other => other,
    }
}

/// Keep the real SSH error text; classify it by what the user can do.
pub fn map_error(host: &str, e: SshError) -> TransportError {
    let host = host.to_string();
    let message = e.to_string();
    match e {
        SshError::Unreachable { .. } | SshError::LinkLost { .. } => {
            TransportError::Unreachable { host, message }
        }
        SshError::HostNotResponding { .. } | SshError::Timeout { .. } => {
            TransportError::NotResponding { host, message }
        }
        SshError::Resolve { .. } => TransportError::BadHost { host, message },
        SshError::NoShell { .. } => TransportError::NoShell { host, message },
        SshError::HostKey(_)
        | SshError::Auth(_)
        | SshError::Channel { .. }
        | SshError::Protocol { .. } => TransportError::Refused { host, message },
    }
}

/// How long a data stream may make no progress before it is abandoned: a
/// hung remote command on a live link. Generous, because a host may sum a
/// 50 GB file on a slow file system before it answers; a dead link or host
/// is caught much sooner by keepalive.
const STREAM_IDLE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

struct SshStream {
    alias: String,
    inner: Option<belay_ssh::ExecStream>,
}

impl SshStream {
    fn inner(&mut self) -> &mut belay_ssh::ExecStream {
        self.inner.as_mut().expect("stream used after finish")
    }
}

impl DataStream for SshStream {
    fn write_all(&mut self, data: &[u8]) -> Result<(), TransportError> {
        let alias = self.alias.clone();
        runtime()
            .block_on(self.inner().write_all(data))
            .map_err(|e| map_error(&alias, e))
    }

    fn close_input(&mut self) -> Result<(), TransportError> {
        let alias = self.alias.clone();
        runtime()
            .block_on(self.inner().close_input())
            .map_err(|e| map_error(&alias, e))
    }

    fn read_chunk(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        let alias = self.alias.clone();
        runtime()
            .block_on(self.inner().read())
            .map_err(|e| map_error(&alias, e))
    }

    fn abort(mut self: Box<Self>) {
        if let Some(inner) = self.inner.take() {
            runtime().block_on(inner.abort());
        }
    }

    fn finish(mut self: Box<Self>) -> Result<ScriptOutput, TransportError> {
        let inner = self.inner.take().expect("stream finished once");
        let end = runtime()
            .block_on(inner.finish())
            .map_err(|e| map_error(&self.alias, e))?;
        Ok(ScriptOutput {
            status: end.status,
            stdout: Vec::new(),
            stderr: end.stderr,
        })
    }
}

/// A pooled request's streamed stdout ([`Transport::open_output_stream`]):
/// no input; its end is the caller's to find (see
/// [`DataStream::end_marker`]).
struct SshOutputStream {
    alias: String,
    inner: Option<belay_ssh::ShellStream>,
}

impl DataStream for SshOutputStream {
    fn write_all(&mut self, _data: &[u8]) -> Result<(), TransportError> {
        Err(TransportError::Refused {
            host: self.alias.clone(),
            message: "an output stream takes no input".into(),
        })
    }

    fn close_input(&mut self) -> Result<(), TransportError> {
        Ok(())
    }

    fn read_chunk(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        let alias = self.alias.clone();
        let inner = self.inner.as_mut().expect("stream used after its end");
        runtime()
            .block_on(inner.read())
            .map(Some)
            .map_err(|e| map_error(&alias, e))
    }

    fn finish(self: Box<Self>) -> Result<ScriptOutput, TransportError> {
        // Never reached by a reader that finds the end marker; a stream
        // given up on this way does not go back to the pool.
        let host = self.alias.clone();
        self.abort();
        Err(TransportError::Refused {
            host,
            message: "an output stream ends at its end marker".into(),
        })
    }

    fn abort(mut self: Box<Self>) {
        if let Some(inner) = self.inner.take() {
            runtime().block_on(inner.abort());
        }
    }

    fn end_marker(&self) -> Option<&str> {
        self.inner.as_ref().map(|s| s.end_marker())
    }

    fn release(mut self: Box<Self>, rest: Vec<u8>) {
        if let Some(inner) = self.inner.take() {
            let _inside = runtime().enter();
            // (In the background: the follower's end is already here.)
            drop(inner.release(rest));
        }
    }
}
