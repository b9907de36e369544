//! [`Client`]: one pooled, self-healing connection to one host, and the
//! operations the job system calls (`run_script`, `exec`, streams).
//! [`Pool`]: one `Client` per host per process.
//!
//! A client connects lazily, re-resolves the configuration on every
//! (re)connect (so a renewed 24 h certificate is picked up), and after a
//! loss reconnects following its [`Backoff`] — attempts are serialised, so
//! many callers never cause more than one attempt at a time. In-flight
//! operations fail with [`SshError::LinkLost`] /
//! [`SshError::HostNotResponding`]; retrying idempotent steps is the
//! caller's decision. Session channels are limited by a semaphore
//! ([`ClientOptions::max_channels`], default 8, below OpenSSH's default
//! MaxSessions 10); persistent shells for `run_script` hold one each.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;

use crate::backoff::Backoff;
use crate::error::SshError;
use crate::prompt::{NoTerminal, Prompter};
use crate::resolve::{ResolvedChain, resolve};
use crate::session::{
    ConnectInfo, ConnectParams, Connection, connect_chain, scan_host_key as scan_chain_key,
};
use crate::sftp::Sftp;
use crate::shell::{ReplyLimits, ScriptOutput, Shell, exec_once};
use crate::stream::ExecStream;

/// Per-client settings.
#[derive(Clone)]
pub struct ClientOptions {
    /// `ssh -G -F FILE` (else `BELAY_SSH_CONFIG`, else ssh's default).
    pub config_file: Option<PathBuf>,
    /// Alternative first hops (aliases or `[user@]host[:port]`), tried in
    /// order when the configured first jump host is unreachable.
    pub jump_fallbacks: Vec<String>,
    /// Session channels open at once (keep below the server's MaxSessions).
    pub max_channels: usize,
    /// Persistent shells for `run_script` (concurrency of scripts).
    pub max_shells: usize,
    /// Deadline for one `run_script` / `exec`.
    pub op_timeout: Duration,
    pub backoff: Backoff,
    /// Asked for host-key confirmation / passphrases; default: never.
    pub prompter: Arc<dyn Prompter>,
    /// The most a host may send in reply to one script or command.
    pub reply_limits: ReplyLimits,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            config_file: None,
            jump_fallbacks: Vec::new(),
            max_channels: 8,
            max_shells: 2,
            op_timeout: Duration::from_secs(300),
            backoff: Backoff::default(),
            prompter: Arc::new(NoTerminal),
            reply_limits: ReplyLimits::default(),
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("config_file", &self.config_file)
            .field("jump_fallbacks", &self.jump_fallbacks)
            .field("max_channels", &self.max_channels)
            .field("max_shells", &self.max_shells)
            .field("op_timeout", &self.op_timeout)
            .field("backoff", &self.backoff)
            .field("reply_limits", &self.reply_limits)
            .finish()
    }
}

/// A byte stream over an SSH channel (direct-tcpip / direct-streamlocal).
pub trait ChannelIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ChannelIo for T {}

struct Live {
    conn: Connection,
    /// The trust files as they were when this connection was made.
    stamp: Option<crate::trust_stamp::TrustStamp>,
    channels: Arc<Semaphore>,
    shell_slots: Arc<Semaphore>,
    idle: Mutex<Vec<Shell>>,
}

#[derive(Default)]
struct State {
    live: Option<Arc<Live>>,
    failures: u32,
    last_attempt: Option<Instant>,
    /// Set once a connection has existed (the next attempt is a reconnect).
    was_connected: bool,
}

/// A connection to one host that reconnects on loss. Cheap to share
/// (`Arc<Client>` from [`Pool::client`]).
pub struct Client {
    alias: String,
    opts: ClientOptions,
    state: tokio::sync::Mutex<State>,
    last_info: Mutex<Option<ConnectInfo>>,
    connects: std::sync::atomic::AtomicU32,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("alias", &self.alias)
            .finish()
    }
}

impl Client {
    /// A client for `alias` (ssh_config alias or `[user@]host[:port]`).
    /// Does not connect yet.
    pub fn new(alias: &str, opts: ClientOptions) -> Client {
        Client {
            alias: alias.to_string(),
            opts,
            state: tokio::sync::Mutex::new(State::default()),
            last_info: Mutex::new(None),
            connects: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// The alias this client connects to.
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// How many connections were established so far (1 + reconnects).
    pub fn connect_count(&self) -> u32 {
        self.connects.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Resolves the chain as this client would (no connection).
    pub async fn resolve(&self) -> Result<ResolvedChain, SshError> {
        resolve(&self.alias, self.opts.config_file.as_deref()).await
    }

    /// Connects if needed and returns what the connection is: resolved
    /// parameters per hop, the first hop used, timings.
    pub async fn connect_info(&self) -> Result<ConnectInfo, SshError> {
        let live = self.ensure().await?;
        Ok(live.conn.info.clone())
    }

    /// The last connection's info without connecting.
    pub fn last_connect_info(&self) -> Option<ConnectInfo> {
        self.last_info.lock().ok().and_then(|i| i.clone())
    }

    /// Drops the current connection (the next operation reconnects).
    pub async fn disconnect(&self) {
        let mut st = self.state.lock().await;
        st.live = None;
    }

    fn params(&self) -> ConnectParams {
        ConnectParams {
            prompter: self.opts.prompter.clone(),
            alias: self.alias.clone(),
            scan_only: false,
        }
    }

    /// The live connection, connecting (paced by the backoff) if needed.
    async fn ensure(&self) -> Result<Arc<Live>, SshError> {
        let mut st = self.state.lock().await;
        if let Some(l) = &st.live {
            let trust_changed = l.stamp.as_ref().is_some_and(|s| s.changed());
            if l.conn.is_alive() && !trust_changed {
                return Ok(l.clone());
            }
            if trust_changed {
                tracing::info!(host = %self.alias, "known_hosts or config changed since connecting: reconnecting");
            }
            st.live = None;
        }
        if st.was_connected || st.failures > 0 {
            let wait = self.opts.backoff.delay(st.failures);
            if let Some(last) = st.last_attempt {
                let next = last + wait;
                let now = Instant::now();
                if next > now {
                    tracing::info!(host = %self.alias, failures = st.failures, wait = ?(next - now), "reconnecting after a backoff");
                    tokio::time::sleep(next - now).await;
                }
            }
        }
        st.last_attempt = Some(Instant::now());
        // Taken before connecting: a change made meanwhile is seen next time.
        let stamp = self
            .resolve()
            .await
            .ok()
            .map(|chain| crate::trust_stamp::TrustStamp::of(&chain));
        match self.connect_now().await {
            Ok(conn) => {
                st.failures = 0;
                st.was_connected = true;
                self.connects
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Ok(mut i) = self.last_info.lock() {
                    *i = Some(conn.info.clone());
                }
                let live = Arc::new(Live {
                    conn,
                    stamp,
                    channels: Arc::new(Semaphore::new(self.opts.max_channels.max(1))),
                    shell_slots: Arc::new(Semaphore::new(
                        self.opts.max_shells.clamp(1, self.opts.max_channels.max(1)),
                    )),
                    idle: Mutex::new(Vec::new()),
                });
                st.live = Some(live.clone());
                Ok(live)
            }
            Err(e) => {
                st.failures = st.failures.saturating_add(1);
                tracing::info!(host = %self.alias, error = %e, "connection failed");
                Err(e)
            }
        }
    }

    async fn connect_now(&self) -> Result<Connection, SshError> {
        let chain = self.resolve().await?;
        let params = self.params();
        let first_err = match connect_chain(&chain, &params).await {
            Ok(c) => return Ok(c),
            Err(e) => e,
        };
        let Some(first) = chain.jumps.first() else {
            return Err(first_err);
        };
        let first_hop_down = match &first_err {
            SshError::Unreachable { hop, .. } => hop == &first.alias,
            SshError::Timeout { host, .. } | SshError::HostNotResponding { host, .. } => {
                host == &first.alias
            }
            _ => false,
        };
        if !first_hop_down || self.opts.jump_fallbacks.is_empty() {
            return Err(first_err);
        }
        tracing::info!(hop = %first.alias, error = %first_err, "first hop down; trying jump_fallbacks");
        let mut errors = vec![format!("{}: {first_err}", first.alias)];
        for fb in &self.opts.jump_fallbacks {
            let fb_chain = match resolve(fb, self.opts.config_file.as_deref()).await {
                Ok(c) => c,
                Err(e) => {
                    errors.push(format!("{fb}: {e}"));
                    continue;
                }
            };
            let mut alt = chain.clone();
            let mut jumps: Vec<_> = fb_chain.hops().cloned().collect();
            jumps.extend(chain.jumps[1..].iter().cloned());
            alt.jumps = jumps;
            match connect_chain(&alt, &params).await {
                Ok(mut c) => {
                    c.info.fallback_used = Some(fb.clone());
                    c.info.first_hop = alt.jumps.first().map(|j| j.alias.clone());
                    return Ok(c);
                }
                Err(e) => errors.push(format!("{fb}: {e}")),
            }
        }
        Err(SshError::Unreachable {
            hop: first.alias.clone(),
            source: std::io::Error::other(format!(
                "first hop and all jump_fallbacks failed: {}",
                errors.join("; ")
            )),
        })
    }

    /// Runs a POSIX sh script with `/bin/sh` on the host through a
    /// persistent shell (no login-shell start-up per call). Each script runs
    /// in a subshell; its stdout, stderr and exit status are returned.
    /// Safe to call concurrently.
    pub async fn run_script(&self, script: &str) -> Result<ScriptOutput, SshError> {
        let live = self.ensure().await?;
        let deadline = self.opts.op_timeout;
        let slot = tokio::time::timeout(deadline, live.shell_slots.clone().acquire_owned())
            .await
            .map_err(|_| self.timeout("waiting for a free shell", deadline))?
            .map_err(|_| self.lost("client closed"))?;
        let idle = live.idle.lock().ok().and_then(|mut v| v.pop());
        let mut shell = match idle {
            Some(s) => s,
            None => {
                let permit = tokio::time::timeout(deadline, live.channels.clone().acquire_owned())
                    .await
                    .map_err(|_| self.timeout("waiting for a free channel", deadline))?
                    .map_err(|_| self.lost("client closed"))?;
                let t = Instant::now();
                let sh = Shell::open(
                    &live.conn.handle,
                    permit,
                    &self.alias,
                    &live.conn.monitor,
                    deadline,
                    self.opts.reply_limits,
                )
                .await?;
                tracing::debug!(host = %self.alias, elapsed = ?t.elapsed(), "persistent /bin/sh started (through the login shell)");
                sh
            }
        };
        let t = Instant::now();
        let r = shell
            .run(script, &self.alias, &live.conn.monitor, deadline)
            .await;
        // Never the script's text: it may carry values the user passed.
        match &r {
            Ok(o) => tracing::debug!(
                host = %self.alias,
                script_bytes = script.len(),
                status = o.status,
                stdout_bytes = o.stdout.len(),
                stderr_bytes = o.stderr.len(),
                elapsed = ?t.elapsed(),
                "protocol script"
            ),
            Err(e) => tracing::debug!(
                host = %self.alias,
                script_bytes = script.len(),
                error = %e,
                elapsed = ?t.elapsed(),
                "protocol script failed"
            ),
        }
        if r.is_ok()
            && let Ok(mut v) = live.idle.lock()
        {
            v.push(shell);
        }
        drop(slot);
        r
    }

    /// Runs `command` on a plain exec channel (through the user's login
    /// shell — slower; for rare calls), with `stdin` fed and closed.
    pub async fn exec(&self, command: &str, stdin: &[u8]) -> Result<ScriptOutput, SshError> {
        let live = self.ensure().await?;
        let deadline = self.opts.op_timeout;
        let _permit = tokio::time::timeout(deadline, live.channels.clone().acquire_owned())
            .await
            .map_err(|_| self.timeout("waiting for a free channel", deadline))?
            .map_err(|_| self.lost("client closed"))?;
        exec_once(
            &live.conn.handle,
            command,
            stdin,
            &self.alias,
            &live.conn.monitor,
            deadline,
            self.opts.reply_limits,
        )
        .await
    }

    /// Starts a POSIX sh `script` with streaming stdin/stdout (bulk data).
    /// It runs in one of the persistent shells (no login-shell start-up),
    /// which it consumes; a replacement is opened in the background. Holds
    /// one channel until the stream is dropped. `idle` bounds any wait for
    /// progress.
    pub async fn exec_stream(&self, script: &str, idle: Duration) -> Result<ExecStream, SshError> {
        let live = self.ensure().await?;
        tracing::debug!(host = %self.alias, script_bytes = script.len(), "stream script");
        // An idle shell may have died since it was last used (its loop
        // killed, its temp dir cleaned): then a fresh one is opened.
        let idle_shell = live.idle.lock().ok().and_then(|mut v| v.pop());
        if let Some(shell) = idle_shell
            && let Ok(stream) = self.start_stream(&live, shell, script, idle).await
        {
            return Ok(stream);
        }
        let permit = tokio::time::timeout(idle, live.channels.clone().acquire_owned())
            .await
            .map_err(|_| self.timeout("waiting for a free channel", idle))?
            .map_err(|_| self.lost("client closed"))?;
        let shell = Shell::open(
            &live.conn.handle,
            permit,
            &self.alias,
            &live.conn.monitor,
            idle,
            self.opts.reply_limits,
        )
        .await?;
        self.start_stream(&live, shell, script, idle).await
    }

    async fn start_stream(
        &self,
        live: &Arc<Live>,
        shell: Shell,
        script: &str,
        idle: Duration,
    ) -> Result<ExecStream, SshError> {
        let token = format!("stream-{}", crate::shell::random_hex(8));
        let (channel, permit) = match shell.into_stream(script, &token).await {
            Ok(c) => c,
            Err(d) => return Err(self.channel_err(live, d).await),
        };
        let watched = live.clone();
        let mut stream = ExecStream::new(
            channel,
            &self.alias,
            live.conn.monitor.clone(),
            Box::new(move || watched.conn.is_alive()),
            idle,
            permit,
            self.opts.reply_limits.stdout,
        );
        stream.expect_token(&token).await?;
        self.replenish_shell(live);
        Ok(stream)
    }

    /// Opens a persistent shell in the background (while a stream's data
    /// flows), so the next script does not wait for a login shell.
    fn replenish_shell(&self, live: &Arc<Live>) {
        let Ok(permit) = live.channels.clone().try_acquire_owned() else {
            return;
        };
        let (live, alias, deadline) = (live.clone(), self.alias.clone(), self.opts.op_timeout);
        let limits = self.opts.reply_limits;
        tokio::spawn(async move {
            let opened = Shell::open(
                &live.conn.handle,
                permit,
                &alias,
                &live.conn.monitor,
                deadline,
                limits,
            )
            .await;
            if let (Ok(shell), Ok(mut idle)) = (opened, live.idle.lock()) {
                idle.push(shell);
            }
        });
    }

    /// Opens the host's SFTP subsystem on a new channel (held until the
    /// session is dropped). For hosts that refuse commands; everything else
    /// goes through the persistent shells.
    pub async fn open_sftp(&self) -> Result<Sftp, SshError> {
        let live = self.ensure().await?;
        let deadline = self.opts.op_timeout;
        let permit = tokio::time::timeout(deadline, live.channels.clone().acquire_owned())
            .await
            .map_err(|_| self.timeout("waiting for a free channel", deadline))?
            .map_err(|_| self.lost("client closed"))?;
        let opening = async {
            let mut channel = live
                .conn
                .handle
                .channel_open_session()
                .await
                .map_err(|e| format!("cannot open a session channel: {e}"))?;
            channel
                .request_subsystem(true, "sftp")
                .await
                .map_err(|e| format!("requesting the sftp subsystem: {e}"))?;
            loop {
                match channel.wait().await {
                    Some(russh::ChannelMsg::Success) => return Ok(channel),
                    Some(russh::ChannelMsg::Failure) => {
                        return Err("the server refused the sftp subsystem (no Subsystem sftp line in its sshd_config?)".to_string());
                    }
                    Some(russh::ChannelMsg::Eof | russh::ChannelMsg::Close) | None => {
                        return Err("the sftp channel closed before it started".to_string());
                    }
                    Some(_) => {}
                }
            }
        };
        let channel = match tokio::time::timeout(deadline, opening).await {
            Ok(Ok(c)) => c,
            Ok(Err(detail)) => return Err(self.channel_err(&live, detail).await),
            Err(_) => return Err(self.timeout("starting sftp", deadline)),
        };
        match tokio::time::timeout(deadline, Sftp::start(channel.into_stream(), permit)).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(SshError::Protocol {
                host: self.alias.clone(),
                detail: format!("sftp: {e}"),
            }),
            Err(_) => Err(self.timeout("starting sftp", deadline)),
        }
    }

    /// Starts an interactive session ([`crate::pty`]): a terminal if asked,
    /// then a command or the user's shell, on this client's connection.
    /// Holds one session channel until both halves are dropped.
    pub async fn open_interactive(
        &self,
        request: &crate::pty::SessionRequest,
    ) -> Result<crate::pty::Interactive, SshError> {
        let live = self.ensure().await?;
        let deadline = self.opts.op_timeout;
        let permit = tokio::time::timeout(deadline, live.channels.clone().acquire_owned())
            .await
            .map_err(|_| self.timeout("waiting for a free channel", deadline))?
            .map_err(|_| self.lost("client closed"))?;
        let watched = live.clone();
        let opening = async {
            let channel = live
                .conn
                .handle
                .channel_open_session()
                .await
                .map_err(|e| format!("cannot open a session channel: {e}"))?;
            crate::pty::Interactive::start(
                channel,
                request,
                &self.alias,
                live.conn.monitor.clone(),
                Box::new(move || watched.conn.is_alive()),
                permit,
            )
            .await
        };
        match tokio::time::timeout(deadline, opening).await {
            Ok(Ok(session)) => Ok(session),
            Ok(Err(detail)) => Err(self.channel_err(&live, detail).await),
            Err(_) => Err(self.timeout("starting an interactive session", deadline)),
        }
    }

    /// Opens a `direct-tcpip` stream to `host:port` as seen from the remote
    /// host (for tunnels).
    pub async fn open_tcp(&self, host: &str, port: u16) -> Result<Box<dyn ChannelIo>, SshError> {
        let live = self.ensure().await?;
        let fut = live.conn.handle.channel_open_direct_tcpip(
            host.to_string(),
            port as u32,
            "127.0.0.1",
            0,
        );
        match tokio::time::timeout(crate::session::DEFAULT_CONNECT_TIMEOUT, fut).await {
            Ok(Ok(ch)) => Ok(Box::new(ch.into_stream())),
            Ok(Err(e)) => Err(self
                .channel_err(&live, format!("cannot forward to {host}:{port}: {e}"))
                .await),
            Err(_) => Err(self.timeout(
                "opening a forwarded connection",
                crate::session::DEFAULT_CONNECT_TIMEOUT,
            )),
        }
    }

    /// Opens a `direct-streamlocal` stream to a unix socket on the host.
    pub async fn open_unix(&self, path: &str) -> Result<Box<dyn ChannelIo>, SshError> {
        let live = self.ensure().await?;
        let fut = live
            .conn
            .handle
            .channel_open_direct_streamlocal(path.to_string());
        match tokio::time::timeout(crate::session::DEFAULT_CONNECT_TIMEOUT, fut).await {
            Ok(Ok(ch)) => Ok(Box::new(ch.into_stream())),
            Ok(Err(e)) => Err(self
                .channel_err(&live, format!("cannot forward to {path}: {e}"))
                .await),
            Err(_) => Err(self.timeout(
                "opening a forwarded connection",
                crate::session::DEFAULT_CONNECT_TIMEOUT,
            )),
        }
    }

    async fn channel_err(&self, live: &Live, detail: String) -> SshError {
        if live.conn.is_alive() {
            SshError::Channel {
                host: self.alias.clone(),
                detail,
            }
        } else {
            live.conn.monitor.error(&self.alias, detail).await
        }
    }

    fn timeout(&self, what: &str, after: Duration) -> SshError {
        SshError::Timeout {
            host: self.alias.clone(),
            what: what.into(),
            after,
        }
    }

    fn lost(&self, d: &str) -> SshError {
        SshError::LinkLost {
            host: self.alias.clone(),
            detail: d.into(),
        }
    }
}

/// The server host key of `alias`, fetched without trusting it (jumps on
/// the way must already be trusted). Show [`crate::fingerprint`] to the
/// user, then call [`crate::trust_host_key`].
pub async fn scan_host_key(
    alias: &str,
    opts: &ClientOptions,
) -> Result<(ResolvedChain, russh::keys::PublicKey), SshError> {
    let chain = resolve(alias, opts.config_file.as_deref()).await?;
    let params = ConnectParams {
        prompter: opts.prompter.clone(),
        alias: alias.to_string(),
        scan_only: true,
    };
    let key = scan_chain_key(&chain, &params).await?;
    Ok((chain, key))
}

/// One [`Client`] per host per process.
#[derive(Default)]
pub struct Pool {
    defaults: ClientOptions,
    clients: Mutex<HashMap<String, Arc<Client>>>,
}

impl Pool {
    /// A pool whose clients use `defaults`.
    pub fn new(defaults: ClientOptions) -> Pool {
        Pool {
            defaults,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `alias` (created with the pool's defaults on first
    /// use; not connected until used).
    pub fn client(&self, alias: &str) -> Arc<Client> {
        self.client_with(alias, || self.defaults.clone())
    }

    /// The client for `alias`, created with `opts()` if it does not exist
    /// yet (for per-host settings such as `jump_fallbacks`).
    pub fn client_with(&self, alias: &str, opts: impl FnOnce() -> ClientOptions) -> Arc<Client> {
        let mut m = match self.clients.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.entry(alias.to_string())
            .or_insert_with(|| Arc::new(Client::new(alias, opts())))
            .clone()
    }

    /// Drops the client for `alias` (closing its connection when unused).
    pub fn remove(&self, alias: &str) {
        if let Ok(mut m) = self.clients.lock() {
            m.remove(alias);
        }
    }
}
