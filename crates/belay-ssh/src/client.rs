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
//!
//! When every channel of the connection is in use, an operation goes over
//! another connection to the same host (at most [`MAX_CONNECTIONS`] in
//! all) instead of waiting. A server that refuses a channel below our
//! limit (a lower MaxSessions: "administratively prohibited") teaches the
//! client its real limit: the refused operation is retried elsewhere and
//! later connections keep below it. Extra connections never ask the
//! prompter (a passphrase, a second factor — keyboard-interactive would
//! need a new answer each time): a host that needs one keeps to its one
//! connection, and operations there wait for a channel as before. An extra
//! connection left with no channel in use for [`EXTRA_IDLE`] is closed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::backoff::Backoff;
use crate::error::SshError;
use crate::prompt::{NoTerminal, Prompter};
use crate::resolve::{ResolvedChain, resolve};
use crate::session::{
    ConnectInfo, ConnectParams, Connection, connect_chain, scan_host_key as scan_chain_key,
};
use crate::sftp::Sftp;
use crate::shell::{ReplyLimits, ScriptOutput, Shell, ShellFraming, exec_once};
use crate::shell_stream::ShellStream;
use crate::stream::ExecStream;

/// Connections to one host at most (the first and the extra ones opened
/// when its channels are all in use).
pub const MAX_CONNECTIONS: usize = 4;
/// How often an operation whose channel the server refused is tried again
/// (elsewhere, or once the server has closed a channel), and the pause
/// before the first retry (growing by as much each time).
const REFUSAL_RETRIES: u32 = 8;
const REFUSAL_PAUSE: Duration = Duration::from_millis(25);
/// How long an extra connection stays open with no channel in use.
pub const EXTRA_IDLE: Duration = Duration::from_secs(60);
/// How long after a stream took a persistent shell its replacement is
/// opened. A stream usually starts with a job (its output followed, its
/// inputs sent): the replacement's processes on the host (sshd's fork, the
/// login shell, `sh`, `mktemp`, `stat`) would compete with that job's
/// start and the follower's, which are what the user waits for — on a
/// 2-CPU host, 2.7 ms of a 29 ms attached run. A script that needs a shell
/// meanwhile opens one itself, as when none is idle.
const REPLENISH_AFTER: Duration = Duration::from_millis(100);

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
    /// Records every step of every connection made (`belay doctor`).
    pub trace: Option<Arc<crate::trace::ConnectTrace>>,
    /// Share first jump hops with the other clients given the same cache
    /// (one authentication on a jump host for a whole fan-out).
    pub jump_cache: Option<Arc<crate::jump_cache::JumpCache>>,
    /// The agent socket the latest command named, used over this process's
    /// own `SSH_AUTH_SOCK` ([`crate::AgentSocket`]: a daemon).
    pub agent_socket: Option<Arc<crate::AgentSocket>>,
    /// How requests reach the persistent shells.
    pub shell_framing: ShellFraming,
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
            trace: None,
            jump_cache: None,
            agent_socket: None,
            shell_framing: ShellFraming::Auto,
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
            .field("shell_framing", &self.shell_framing)
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
    /// What `channels` was made with, less the permits the server's
    /// refusals took away.
    capacity: std::sync::atomic::AtomicUsize,
    shell_slots: Arc<Semaphore>,
    idle: Mutex<Vec<Shell>>,
    /// When an operation last took this connection.
    last_used: Mutex<Instant>,
    /// Channels being opened now (not yet known to be accepted).
    opening: std::sync::atomic::AtomicUsize,
}

impl Live {
    /// A channel is free, or an idle shell waits for a script.
    fn has_room(&self) -> bool {
        self.channels.available_permits() > 0 || self.idle.lock().is_ok_and(|v| !v.is_empty())
    }

    /// No channel in use but idle shells', for [`EXTRA_IDLE`].
    fn unused(&self) -> bool {
        let idle_shells = self.idle.lock().map_or(0, |v| v.len());
        let capacity = self.capacity.load(std::sync::atomic::Ordering::Relaxed);
        self.channels.available_permits() + idle_shells >= capacity
            && self
                .last_used
                .lock()
                .is_ok_and(|t| t.elapsed() >= EXTRA_IDLE)
    }

    /// Counts a channel as being opened until the guard drops.
    fn opening(&self) -> Opening<'_> {
        self.opening
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Opening(&self.opening)
    }

    /// A new session channel; the error is the detail for
    /// [`Client::channel_err`].
    async fn open_session(&self) -> Result<russh::Channel<russh::client::Msg>, String> {
        self.conn
            .handle
            .channel_open_session()
            .await
            .map_err(|e| format!("cannot open a session channel: {e}"))
    }

    fn touch(&self) {
        if let Ok(mut t) = self.last_used.lock() {
            *t = Instant::now();
        }
    }
}

/// A channel open under way on a [`Live`] (see [`Live::opening`]).
struct Opening<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Extra connections of one client, beyond its first.
type Extras = Arc<tokio::sync::Mutex<Vec<Arc<Live>>>>;

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
    extras: Extras,
    /// No extra connection is tried before then (the last attempt failed:
    /// never a storm of them).
    extras_after: Mutex<Option<Instant>>,
    /// The server's channel limit per connection, once a refusal showed
    /// it (0: not known).
    server_limit: Arc<std::sync::atomic::AtomicUsize>,
    last_info: Mutex<Option<ConnectInfo>>,
    connects: std::sync::atomic::AtomicU32,
    /// A chain resolved for the next connection (used once).
    primed: Mutex<Option<ResolvedChain>>,
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
            extras: Extras::default(),
            extras_after: Mutex::new(None),
            server_limit: Arc::default(),
            last_info: Mutex::new(None),
            connects: std::sync::atomic::AtomicU32::new(0),
            primed: Mutex::new(None),
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

    /// Resolves the chain and keeps it for this client's next connection,
    /// which then runs no `ssh -G` of its own (a caller that needs the
    /// chain before connecting, e.g. to pace handshakes per gateway, pays
    /// for one resolution, not two).
    pub async fn resolve_for_connect(&self) -> Result<ResolvedChain, SshError> {
        let chain = self.resolve().await?;
        if let Ok(mut p) = self.primed.lock() {
            *p = Some(chain.clone());
        }
        Ok(chain)
    }

    /// The chain kept by [`Client::resolve_for_connect`], else a fresh one.
    async fn primed_or_resolve(&self) -> Result<ResolvedChain, SshError> {
        let kept = self.primed.lock().ok().and_then(|mut p| p.take());
        match kept {
            Some(chain) => Ok(chain),
            None => self.resolve().await,
        }
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

    /// Drops the current connections (the next operation reconnects).
    pub async fn disconnect(&self) {
        let mut st = self.state.lock().await;
        st.live = None;
        self.extras.lock().await.clear();
    }

    /// Connections open now (the first and the extra ones).
    pub async fn connections(&self) -> usize {
        let first = self
            .state
            .lock()
            .await
            .live
            .as_ref()
            .is_some_and(|l| l.conn.is_alive());
        let extras = self.extras.lock().await;
        usize::from(first) + extras.iter().filter(|l| l.conn.is_alive()).count()
    }

    fn params(&self, prompter: Arc<dyn Prompter>) -> ConnectParams {
        ConnectParams {
            prompter,
            alias: self.alias.clone(),
            scan_only: false,
            trace: self.opts.trace.clone(),
            jump_cache: self.opts.jump_cache.clone(),
            agent_socket: self.opts.agent_socket.clone(),
        }
    }

    /// A [`Live`] around a new connection, its channels kept below the
    /// server's limit when one is known.
    fn new_live(&self, conn: Connection, stamp: Option<crate::trust_stamp::TrustStamp>) -> Live {
        let mut capacity = self.opts.max_channels.max(1);
        let known = self.server_limit.load(std::sync::atomic::Ordering::Relaxed);
        if known > 0 {
            capacity = capacity.min(known);
        }
        Live {
            conn,
            stamp,
            channels: Arc::new(Semaphore::new(capacity)),
            capacity: std::sync::atomic::AtomicUsize::new(capacity),
            shell_slots: Arc::new(Semaphore::new(self.opts.max_shells.clamp(1, capacity))),
            idle: Mutex::new(Vec::new()),
            last_used: Mutex::new(Instant::now()),
            opening: Default::default(),
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
        // One resolution serves the connection and its trust stamp, taken
        // before connecting: a change made meanwhile is seen next time.
        let chain = match self.primed_or_resolve().await {
            Ok(chain) => chain,
            Err(e) => {
                st.failures = st.failures.saturating_add(1);
                tracing::info!(host = %self.alias, error = %e, "connection failed");
                return Err(e);
            }
        };
        let stamp = Some(crate::trust_stamp::TrustStamp::of(&chain));
        match self.connect_now(chain, self.opts.prompter.clone()).await {
            Ok(conn) => {
                st.failures = 0;
                st.was_connected = true;
                self.connects
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Ok(mut i) = self.last_info.lock() {
                    *i = Some(conn.info.clone());
                }
                let live = Arc::new(self.new_live(conn, stamp));
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

    async fn connect_now(
        &self,
        chain: ResolvedChain,
        prompter: Arc<dyn Prompter>,
    ) -> Result<Connection, SshError> {
        let params = self.params(prompter);
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

    /// A free channel for an operation: on the first connection if it has
    /// one, else on an extra connection (opened if all have theirs in use
    /// and fewer than [`MAX_CONNECTIONS`] are open), else the first
    /// connection's next free one, waited for within `deadline`.
    async fn take_channel(
        &self,
        deadline: Duration,
    ) -> Result<(Arc<Live>, OwnedSemaphorePermit), SshError> {
        let main = self.ensure().await?;
        if let Ok(permit) = main.channels.clone().try_acquire_owned() {
            main.touch();
            return Ok((main, permit));
        }
        if let Some(taken) = self.extra_channel().await {
            return Ok(taken);
        }
        // Every connection full: an idle shell gives its channel up rather
        // than have the operation wait while it sits unused.
        let mut all = vec![main.clone()];
        // (Not waiting on another connection being opened meanwhile.)
        if let Ok(extras) = self.extras.try_lock() {
            all.extend(extras.iter().cloned());
        }
        for live in all {
            let closed = live.idle.lock().ok().and_then(|mut v| v.pop());
            if let Some(shell) = closed {
                drop(shell);
                if let Ok(permit) = live.channels.clone().try_acquire_owned() {
                    live.touch();
                    return Ok((live, permit));
                }
            }
        }
        let permit = tokio::time::timeout(deadline, main.channels.clone().acquire_owned())
            .await
            .map_err(|_| self.timeout("waiting for a free channel", deadline))?
            .map_err(|_| self.lost("client closed"))?;
        main.touch();
        Ok((main, permit))
    }

    /// A channel on an extra connection, opening one if none has a channel
    /// free (`None`: at [`MAX_CONNECTIONS`], or the new connection failed).
    async fn extra_channel(&self) -> Option<(Arc<Live>, OwnedSemaphorePermit)> {
        let mut extras = self.extras.lock().await;
        extras.retain(|l| l.conn.is_alive() && !l.stamp.as_ref().is_some_and(|s| s.changed()));
        for live in extras.iter() {
            if let Ok(permit) = live.channels.clone().try_acquire_owned() {
                live.touch();
                return Some((live.clone(), permit));
            }
        }
        let held_back = self
            .extras_after
            .lock()
            .is_ok_and(|t| t.is_some_and(|t| Instant::now() < t));
        if extras.len() + 1 >= MAX_CONNECTIONS || held_back {
            return None;
        }
        // Never a prompt: a connection that needs an answer is not worth
        // asking again for (the first one stays, and waiting there works).
        let connected = match self.resolve().await {
            Ok(chain) => {
                let stamp = Some(crate::trust_stamp::TrustStamp::of(&chain));
                self.connect_now(chain, Arc::new(NoTerminal))
                    .await
                    .map(|conn| (conn, stamp))
            }
            Err(e) => Err(e),
        };
        match connected {
            Ok((conn, stamp)) => {
                let live = Arc::new(self.new_live(conn, stamp));
                let permit = live.channels.clone().try_acquire_owned().ok()?;
                if extras.is_empty() {
                    spawn_reaper(Arc::downgrade(&self.extras), self.alias.clone());
                }
                extras.push(live.clone());
                tracing::info!(host = %self.alias, connections = extras.len() + 1, "every channel in use: another connection to the host");
                Some((live, permit))
            }
            Err(e) => {
                tracing::info!(host = %self.alias, error = %e, "another connection failed: waiting for a channel on the first");
                if let Ok(mut after) = self.extras_after.lock() {
                    *after = Some(Instant::now() + EXTRA_IDLE);
                }
                None
            }
        }
    }

    /// Whether `e` is the server refusing a new session channel on `live`
    /// (its MaxSessions reached below our own limit). If so, `live` keeps
    /// to the channels it has open now, and later connections to the host
    /// to as many.
    /// Then, for the `refusals`-th time in a row, it pauses a little (the
    /// server may still be closing a channel) and says to try again.
    async fn refused(&self, live: &Live, e: &SshError, refusals: &mut u32) -> bool {
        if *refusals >= REFUSAL_RETRIES || !learn_refusal(live, &self.server_limit, &self.alias, e)
        {
            return false;
        }
        *refusals += 1;
        tokio::time::sleep(REFUSAL_PAUSE * *refusals).await;
        true
    }

    /// Runs a POSIX sh script with `/bin/sh` on the host through a
    /// persistent shell (no login-shell start-up per call). Each script runs
    /// in a subshell; its stdout, stderr and exit status are returned.
    /// Safe to call concurrently.
    pub async fn run_script(&self, script: &str) -> Result<ScriptOutput, SshError> {
        crate::calls::count();
        let mut refusals = 0;
        loop {
            let main = self.ensure().await?;
            let (live, permit) = if main.has_room() {
                main.touch();
                (main, None)
            } else {
                let (live, permit) = self.take_channel(self.opts.op_timeout).await?;
                (live, Some(permit))
            };
            match self
                .guarded(&live, self.run_script_on(&live, permit, script))
                .await
            {
                // Refused before the script was sent: it goes elsewhere.
                Err(e) if self.refused(&live, &e, &mut refusals).await => {}
                r => return r,
            }
        }
    }

    /// `script` in one of `live`'s shells (an idle one, else one opened on
    /// `permit`'s channel, else on the next free one).
    async fn run_script_on(
        &self,
        live: &Arc<Live>,
        permit: Option<OwnedSemaphorePermit>,
        script: &str,
    ) -> Result<ScriptOutput, SshError> {
        let deadline = self.opts.op_timeout;
        let slot = tokio::time::timeout(deadline, live.shell_slots.clone().acquire_owned())
            .await
            .map_err(|_| self.timeout("waiting for a free shell", deadline))?
            .map_err(|_| self.lost("client closed"))?;
        let idle = live.idle.lock().ok().and_then(|mut v| v.pop());
        let mut shell = match idle {
            Some(s) => s,
            None => {
                let permit = match permit {
                    Some(p) => p,
                    None => tokio::time::timeout(deadline, live.channels.clone().acquire_owned())
                        .await
                        .map_err(|_| self.timeout("waiting for a free channel", deadline))?
                        .map_err(|_| self.lost("client closed"))?,
                };
                let t = Instant::now();
                let sh =
                    open_shell(live, permit, &self.alias, deadline, self.shell_setup()).await?;
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
        crate::calls::count();
        let deadline = self.opts.op_timeout;
        self.on_a_channel(deadline, |live, permit| async move {
            let _permit = permit;
            let _opening = live.opening();
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
        })
        .await
    }

    /// Starts a POSIX sh `script` with streaming stdin/stdout (bulk data).
    /// It runs in one of the persistent shells (no login-shell start-up),
    /// which it consumes; a replacement is opened in the background. Holds
    /// one channel until the stream is dropped. `idle` bounds any wait for
    /// progress.
    pub async fn exec_stream(&self, script: &str, idle: Duration) -> Result<ExecStream, SshError> {
        crate::calls::count();
        tracing::debug!(host = %self.alias, script_bytes = script.len(), "stream script");
        self.in_a_shell(idle, |live, shell| async move {
            self.start_stream(&live, shell, script, idle).await
        })
        .await
    }

    /// How a stream gets its shell: an idle one of any connection, the
    /// first one's first, else one opened on a free channel; `start` starts
    /// the stream in it. An idle one may have died since it was last used
    /// (its loop killed, its temp dir cleaned): then a fresh one is opened.
    async fn in_a_shell<T, F, Fut>(&self, idle: Duration, start: F) -> Result<T, SshError>
    where
        F: Fn(Arc<Live>, Shell) -> Fut,
        Fut: std::future::Future<Output = Result<T, SshError>>,
    {
        let main = self.ensure().await?;
        let mut all = vec![main];
        // (Not waiting on another connection being opened meanwhile.)
        if let Ok(extras) = self.extras.try_lock() {
            all.extend(extras.iter().cloned());
        }
        for live in all {
            let idle_shell = live.idle.lock().ok().and_then(|mut v| v.pop());
            if let Some(shell) = idle_shell
                && let Ok(stream) = self.guarded(&live, start(live.clone(), shell)).await
            {
                live.touch();
                return Ok(stream);
            }
        }
        self.on_a_channel(idle, |live, permit| {
            let start = &start;
            async move {
                let shell =
                    open_shell(&live, permit, &self.alias, idle, self.shell_setup()).await?;
                start(live, shell).await
            }
        })
        .await
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

    /// Starts a POSIX sh `script` that reads no input, its stdout read as
    /// it comes (a job's output follower), as a request to one of the
    /// persistent shells: the shell goes back to the pool when the caller
    /// releases the stream after the script's end
    /// ([`ShellStream::release`]), so no replacement has to be opened as
    /// for an [`ExecStream`]. Holds the shell's channel until then. `idle`
    /// bounds any wait for output.
    pub async fn stream_script(
        &self,
        script: &str,
        idle: Duration,
    ) -> Result<ShellStream, SshError> {
        crate::calls::count();
        tracing::debug!(host = %self.alias, script_bytes = script.len(), "streamed script");
        self.in_a_shell(idle, |live, shell| async move {
            self.start_shell_stream(&live, shell, script, idle).await
        })
        .await
    }

    async fn start_shell_stream(
        &self,
        live: &Arc<Live>,
        mut shell: Shell,
        script: &str,
        idle: Duration,
    ) -> Result<ShellStream, SshError> {
        let token = format!("stream-{}", crate::shell::random_hex(8));
        let script = format!("printf '%s\\n' {token}\n{script}");
        let sentinel = shell
            .start_streaming(&script, &token, &self.alias, &live.conn.monitor, idle)
            .await?;
        // A long stream holds its shell: the pool gets another meanwhile
        // (unless this one is back by then).
        self.replenish_shell(live);
        let (pool, most) = (live.clone(), self.opts.max_shells);
        Ok(ShellStream::new(
            shell,
            sentinel,
            &self.alias,
            live.conn.monitor.clone(),
            idle,
            Box::new(move |shell| {
                let Ok(mut idle) = pool.idle.lock() else {
                    return Some(shell);
                };
                if idle.len() < most {
                    idle.push(shell);
                    None
                } else {
                    Some(shell)
                }
            }),
        ))
    }

    /// What a persistent shell of this client is opened with.
    fn shell_setup(&self) -> (ReplyLimits, ShellFraming) {
        (self.opts.reply_limits, self.opts.shell_framing)
    }

    /// Opens a persistent shell in the background (while a stream's data
    /// flows, [`REPLENISH_AFTER`] it started), so the next script does not
    /// wait for a login shell — unless a shell is idle by then (a
    /// [`ShellStream`]'s, back already).
    fn replenish_shell(&self, live: &Arc<Live>) {
        let (live, alias, deadline) = (live.clone(), self.alias.clone(), self.opts.op_timeout);
        let (limits, framing) = (self.opts.reply_limits, self.opts.shell_framing);
        let server_limit = self.server_limit.clone();
        tokio::spawn(async move {
            tokio::time::sleep(REPLENISH_AFTER).await;
            if live.idle.lock().is_ok_and(|idle| !idle.is_empty()) {
                return;
            }
            // The channel is counted from now: a script that needed one
            // in the meantime has had it.
            let Ok(permit) = live.channels.clone().try_acquire_owned() else {
                return;
            };
            match open_shell(&live, permit, &alias, deadline, (limits, framing)).await {
                Ok(shell) => {
                    if let Ok(mut idle) = live.idle.lock() {
                        idle.push(shell);
                    }
                }
                Err(e) => {
                    learn_refusal(&live, &server_limit, &alias, &e);
                }
            }
        });
    }

    /// Opens the host's SFTP subsystem on a new channel (held until the
    /// session is dropped). For hosts that refuse commands; everything else
    /// goes through the persistent shells.
    pub async fn open_sftp(&self) -> Result<Sftp, SshError> {
        crate::calls::count();
        self.on_a_channel(self.opts.op_timeout, |live, permit| async move {
            self.open_sftp_on(&live, permit).await
        })
        .await
    }

    async fn open_sftp_on(
        &self,
        live: &Arc<Live>,
        permit: OwnedSemaphorePermit,
    ) -> Result<Sftp, SshError> {
        let deadline = self.opts.op_timeout;
        let _opening = live.opening();
        let opening = async {
            let mut channel = live.open_session().await?;
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
            Ok(Err(detail)) => return Err(self.channel_err(live, detail).await),
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
            let channel = live.open_session().await?;
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

    /// Starts `command` on the host (through `/bin/sh -c` as sshd runs any
    /// command) and returns its stdin and stdout as one byte stream
    /// ([`crate::CommandStream`]): a relay to where no forwarded channel
    /// reaches. Waits for a free channel like any operation.
    pub async fn open_command_stream(
        &self,
        command: &str,
    ) -> Result<crate::CommandStream, SshError> {
        crate::calls::count();
        let deadline = self.opts.op_timeout;
        let (live, permit) = self.take_channel(deadline).await?;
        let opening = async {
            let channel = live.open_session().await?;
            channel
                .exec(true, command.as_bytes())
                .await
                .map_err(|e| format!("cannot start the relay command: {e}"))?;
            Ok::<_, String>(channel.into_stream())
        };
        match tokio::time::timeout(deadline, opening).await {
            Ok(Ok(stream)) => Ok(crate::CommandStream::new(stream, permit)),
            Ok(Err(detail)) => Err(self.channel_err(&live, detail).await),
            Err(_) => Err(self.timeout("starting a relay command", deadline)),
        }
    }

    /// Opens a forwarded byte stream to `target` as seen from the host
    /// (`direct-tcpip` / `direct-streamlocal`); see [`crate::forward`].
    pub async fn open_forward(
        &self,
        target: &crate::forward::ForwardTarget,
    ) -> Result<crate::forward::ForwardStream, crate::forward::ForwardError> {
        let live = self.ensure().await?;
        let opening = crate::forward::open_channel(&live.conn.handle, target);
        let after = crate::session::DEFAULT_CONNECT_TIMEOUT;
        match tokio::time::timeout(after, opening).await {
            Ok(Ok(channel)) => Ok(channel.into_stream()),
            Ok(Err(russh::Error::ChannelOpenFailure(reason))) if live.conn.is_alive() => {
                Err(crate::forward::refusal(self, target, reason).await)
            }
            Ok(Err(e)) => Err(self
                .channel_err(&live, format!("cannot forward to {target}: {e}"))
                .await
                .into()),
            Err(_) => Err(self.timeout("opening a forwarded connection", after).into()),
        }
    }

    /// How many session channels the server lets one connection have open
    /// at once (its MaxSessions), found by opening bare session channels
    /// on the current connection until one is refused, `bound` at most
    /// (counting the channels this client holds now). `None`: `bound`
    /// channels were open with no refusal. Nothing runs in them; each is
    /// closed before it returns (the server may take a moment to free
    /// them: a channel opened right after may be refused, and
    /// [`Client::run_script`] and the others then try again).
    pub async fn session_limit(&self, bound: usize) -> Result<Option<usize>, SshError> {
        let live = self.ensure().await?;
        let held = live
            .capacity
            .load(std::sync::atomic::Ordering::Relaxed)
            .saturating_sub(live.channels.available_permits());
        let deadline = self
            .opts
            .op_timeout
            .min(crate::session::DEFAULT_CONNECT_TIMEOUT);
        let mut opened = Vec::new();
        let mut limit = None;
        while held + opened.len() < bound {
            match tokio::time::timeout(deadline, live.conn.handle.channel_open_session()).await {
                Ok(Ok(channel)) => opened.push(channel),
                Ok(Err(russh::Error::ChannelOpenFailure(_))) if live.conn.is_alive() => {
                    limit = Some(held + opened.len());
                    break;
                }
                Ok(Err(e)) => {
                    return Err(self
                        .channel_err(&live, format!("cannot open a session channel: {e}"))
                        .await);
                }
                Err(_) => return Err(self.timeout("opening a session channel", deadline)),
            }
        }
        for channel in opened {
            let _ = channel.close().await;
        }
        Ok(limit)
    }

    /// `op` on a channel taken for it ([`Client::take_channel`], waiting
    /// at most `wait`), given again to another channel while the server
    /// refuses the one `op` opens (nothing was started on the host then).
    async fn on_a_channel<T, Fut>(
        &self,
        wait: Duration,
        op: impl Fn(Arc<Live>, OwnedSemaphorePermit) -> Fut,
    ) -> Result<T, SshError>
    where
        Fut: std::future::Future<Output = Result<T, SshError>>,
    {
        let mut refusals = 0;
        loop {
            let (live, permit) = self.take_channel(wait).await?;
            match self.guarded(&live, op(live.clone(), permit)).await {
                Err(e) if self.refused(&live, &e, &mut refusals).await => {}
                r => return r,
            }
        }
    }

    /// `op` on `live`, failed as soon as the connection is found dead
    /// while it waits (`Connection::watch`: closed, or silent past its
    /// liveness bound — then abandoned, and the next operation reconnects).
    async fn guarded<T>(
        &self,
        live: &Live,
        op: impl std::future::Future<Output = Result<T, SshError>>,
    ) -> Result<T, SshError> {
        tokio::select! {
            biased;
            r = op => r,
            dead = live.conn.watch(&self.alias) => Err(dead),
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

/// A persistent shell on `permit`'s channel of `live` (counted as being
/// opened until it answers or fails).
async fn open_shell(
    live: &Live,
    permit: OwnedSemaphorePermit,
    alias: &str,
    deadline: Duration,
    (limits, framing): (ReplyLimits, ShellFraming),
) -> Result<Shell, SshError> {
    let _opening = live.opening();
    Shell::open(
        &live.conn.handle,
        permit,
        alias,
        &live.conn.monitor,
        deadline,
        limits,
        framing,
    )
    .await
}

/// [`Client::refused`], for a task of its own.
fn learn_refusal(
    live: &Live,
    server_limit: &std::sync::atomic::AtomicUsize,
    alias: &str,
    e: &SshError,
) -> bool {
    let SshError::Channel { detail, .. } = e else {
        return false;
    };
    // A session channel refused, whatever the reason code (OpenSSH at
    // MaxSessions answers "open failed", ConnectFailed).
    if !detail.contains("cannot open a session channel: Failed to open channel (") {
        return false;
    }
    // A refusal says the server's limit: at most the channels open then
    // (in use, less those still being opened, which may be refused too;
    // a channel we let go of and the server has not closed yet makes it
    // low, never high). The first refusal sets it for the host.
    use std::sync::atomic::Ordering::Relaxed;
    let capacity = live.capacity.load(Relaxed);
    let in_use = capacity.saturating_sub(live.channels.available_permits());
    let open = in_use.saturating_sub(live.opening.load(Relaxed)).max(1);
    let known = server_limit.load(Relaxed);
    let limit = if known == 0 { open } else { known };
    if known == 0 {
        server_limit.store(limit, Relaxed);
        tracing::info!(host = %alias, channels = limit, "the server refused a channel: keeping below its limit");
    }
    if capacity > limit {
        let forgotten = live
            .channels
            .forget_permits((capacity - limit).min(live.channels.available_permits()));
        live.capacity.fetch_sub(forgotten, Relaxed);
    }
    true
}

/// Closes `extras` that have had no channel in use for [`EXTRA_IDLE`];
/// ends when none is left (the next extra connection starts another).
fn spawn_reaper(extras: std::sync::Weak<tokio::sync::Mutex<Vec<Arc<Live>>>>, alias: String) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(EXTRA_IDLE / 4).await;
            let Some(extras) = extras.upgrade() else {
                return;
            };
            let mut extras = extras.lock().await;
            let (idle, kept): (Vec<_>, Vec<_>) = extras
                .drain(..)
                .partition(|l| !l.conn.is_alive() || l.unused());
            *extras = kept;
            for live in &idle {
                tracing::info!(host = %alias, "extra connection idle: closed");
                let _ = live
                    .conn
                    .handle
                    .disconnect(russh::Disconnect::ByApplication, "idle", "")
                    .await;
            }
            if extras.is_empty() {
                return;
            }
        }
    });
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
        trace: opts.trace.clone(),
        jump_cache: None,
        agent_socket: opts.agent_socket.clone(),
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
