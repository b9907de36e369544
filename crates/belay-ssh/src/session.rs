//! Establishing one SSH connection through its whole chain: TCP (nodelay,
//! ConnectTimeout) or ProxyCommand (`sh -c`, its stdio as the stream) to the
//! first hop, then each further hop through a `direct-tcpip` channel of the
//! previous one (`connect_stream`), key exchange with host-key verification
//! ([`crate::known_hosts`]) and authentication ([`crate::auth`]) per hop.
//!
//! Defaults where ssh_config says nothing:
//! * keepalive: [`DEFAULT_KEEPALIVE_INTERVAL`] × ServerAliveCountMax (ssh's
//!   default 3), i.e. 15 s × 3 — belay always runs with keepalive, because
//!   unattended jobs must notice a dead link; `ServerAliveInterval 0`
//!   (which is also what `ssh -G` prints when unset) means this default;
//! * an operation's liveness: [`OP_SILENCE`] of silence, then a keepalive
//!   unanswered for as long, and the connection is abandoned
//!   (`Connection::watch`) — far sooner than keepalives every 300 s
//!   (what BatchMode makes `ssh -G` say) or TCP's retransmission timer;
//! * connect deadline: [`DEFAULT_CONNECT_TIMEOUT`] per step (TCP, key
//!   exchange), authentication [`AUTH_TIMEOUT`];
//! * windows: [`WINDOW_SIZE`] per channel, [`MAX_PACKET`] packets.
//!
//! [`connect_chain`] builds a connection in named phases (a `Connector`:
//! reach a hop, authenticate on it, finish with one round trip), each
//! logged with its duration through `tracing` (`belay -v`).
//!
//! Every hop's handler reports why its link went down into one shared
//! [`LinkMonitor`], so an operation failing on the target can say that the
//! real cause was, e.g., the jump host not answering keepalives.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use russh::client::{self, DisconnectReason, Handle, Handler};
use russh::keys::{PublicKey, PublicKeyOrCertificate};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::auth::{AuthFailure, authenticate};
use crate::error::SshError;
use crate::known_hosts::{self, HostKeyAccepted, HostKeyError};
use crate::prompt::Prompter;
use crate::quickack::QuickAck;
use crate::resolve::{ResolvedChain, ResolvedHost};
use crate::sanitize::terminal_safe;
use crate::trace::{BannerSniff, Cause, ConnectTrace, Step, TraceEvent, io_cause};

/// Keepalive interval when ServerAliveInterval is unset/0.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// How long an operation waits on a silent connection (nothing received)
/// before it asks for a keepalive answer (ServerAliveInterval instead when
/// shorter), and how long it then waits for that answer
/// (`Connection::watch`).
pub const OP_SILENCE: Duration = Duration::from_secs(3);
/// Deadline for TCP connect and for key exchange when ConnectTimeout is unset.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Deadline for authentication of one hop (agent and server round trips).
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(60);
/// Channel window (bytes in flight per channel).
pub const WINDOW_SIZE: u32 = 4 * 1024 * 1024;
/// Largest SSH packet we accept.
pub const MAX_PACKET: u32 = 32 * 1024;

/// Why a link went down, as recorded by the hop that saw it.
#[derive(Debug, Clone)]
pub(crate) enum LinkDown {
    NotResponding {
        hop: String,
        interval: Duration,
        count_max: u32,
    },
    Closed {
        hop: String,
        detail: String,
    },
}

/// Shared by every hop of one connection: the first cause of its death.
#[derive(Debug, Default)]
pub(crate) struct LinkMonitor {
    cause: Mutex<Option<LinkDown>>,
    notify: tokio::sync::Notify,
}

impl LinkMonitor {
    fn set(&self, d: LinkDown) {
        if let Ok(mut c) = self.cause.lock()
            && c.is_none()
        {
            *c = Some(d);
        }
        self.notify.notify_waiters();
    }

    fn get(&self) -> Option<LinkDown> {
        self.cause.lock().ok().and_then(|c| c.clone())
    }

    /// The error for an operation on `host` that failed with `detail`:
    /// the recorded cause if a hop saw one (waiting up to 300 ms for the
    /// hop's task to report it), else a plain LinkLost.
    pub(crate) async fn error(&self, host: &str, detail: impl ToString) -> SshError {
        if self.get().is_none() {
            let notified = self.notify.notified();
            let _ = tokio::time::timeout(Duration::from_millis(300), notified).await;
        }
        match self.get() {
            Some(LinkDown::NotResponding {
                hop,
                interval,
                count_max,
            }) => SshError::HostNotResponding {
                host: hop,
                interval,
                count_max,
            },
            Some(LinkDown::Closed { hop, detail: d }) => SshError::LinkLost {
                host: host.to_string(),
                detail: if hop == host {
                    d
                } else {
                    format!("via {hop}: {d}")
                },
            },
            None => SshError::LinkLost {
                host: host.to_string(),
                detail: detail.to_string(),
            },
        }
    }

    pub(crate) fn is_down(&self) -> bool {
        self.get().is_some()
    }
}

/// Per-hop russh handler: verifies the host key and reports link death.
pub(crate) struct HopHandler {
    host: Arc<ResolvedHost>,
    alias: String,
    prompter: Arc<dyn Prompter>,
    /// Only record the presented key and refuse (for `host trust`).
    scan_only: bool,
    presented: Arc<Mutex<Option<PublicKey>>>,
    verdict: Arc<Mutex<Option<Result<HostKeyAccepted, HostKeyError>>>>,
    monitor: Arc<LinkMonitor>,
    keepalive: (Duration, u32),
}

impl Handler for HopHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let plain = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(c) => PublicKey::new(c.public_key().clone(), ""),
        };
        if let Ok(mut p) = self.presented.lock() {
            *p = Some(plain);
        }
        if self.scan_only {
            return Ok(false);
        }
        let v = known_hosts::verify(&self.host, &self.alias, key, self.prompter.as_ref());
        let ok = v.is_ok();
        if let Ok(mut slot) = self.verdict.lock() {
            *slot = Some(v);
        }
        Ok(ok)
    }

    async fn auth_banner(
        &mut self,
        banner: &str,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        // The server's text: shown with -v only, quoted (no control
        // sequence reaches the terminal).
        tracing::info!(hop = %self.host.alias, banner = ?banner.trim_end(), "server banner");
        Ok(())
    }

    async fn disconnected(
        &mut self,
        reason: DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        let hop = self.host.alias.clone();
        match reason {
            DisconnectReason::ReceivedDisconnect(info) => {
                self.monitor.set(LinkDown::Closed {
                    hop,
                    detail: format!(
                        "server disconnected: {} ({:?})",
                        terminal_safe(&info.message),
                        info.reason_code
                    ),
                });
                Ok(())
            }
            DisconnectReason::Error(e) => {
                let d = match &e {
                    russh::Error::KeepaliveTimeout => LinkDown::NotResponding {
                        hop,
                        interval: self.keepalive.0,
                        count_max: self.keepalive.1,
                    },
                    other => LinkDown::Closed {
                        hop,
                        detail: other.to_string(),
                    },
                };
                self.monitor.set(d);
                Err(e)
            }
        }
    }
}

/// Timings and outcome for one hop.
#[derive(Debug, Clone)]
pub struct HopInfo {
    /// The hop's name (alias / hop spec host).
    pub alias: String,
    /// `user@hostname:port`.
    pub target: String,
    /// How it was reached: `tcp ADDR`, `proxycommand`, `via HOP`.
    pub via: String,
    /// Time to get a byte stream (TCP connect, ProxyCommand spawn, or the
    /// direct-tcpip channel through the previous hop).
    pub stream: Duration,
    /// Version exchange + key exchange + host-key check.
    pub kex: Duration,
    pub auth: Duration,
    pub host_key: HostKeyAccepted,
    /// The method that authenticated, e.g. `key ~/.ssh/id_ed25519`.
    pub auth_method: String,
}

/// What a connection is, for `belay host check` / `host show`.
#[derive(Debug, Clone)]
pub struct ConnectInfo {
    /// The chain as actually connected (with a fallback first hop, if one
    /// was used).
    pub chain: ResolvedChain,
    /// The first hop actually used (`None` when connecting directly).
    pub first_hop: Option<String>,
    /// Set when `jump_fallbacks` replaced the configured first hop.
    pub fallback_used: Option<String>,
    pub hops: Vec<HopInfo>,
    /// One SSH-level round trip (keepalive ping) right after auth.
    pub first_round_trip: Option<Duration>,
    pub total: Duration,
    pub connected_at: SystemTime,
    pub keepalive_interval: Duration,
    pub keepalive_count_max: u32,
}

/// One live connection (target handle plus everything keeping it up).
pub(crate) struct Connection {
    pub handle: Handle<HopHandler>,
    _jumps: Vec<Handle<HopHandler>>,
    /// The first jump, when it is shared with other connections.
    _shared_jump: Option<crate::jump_cache::JumpUse>,
    _proxy: Option<tokio::process::Child>,
    pub monitor: Arc<LinkMonitor>,
    pub info: ConnectInfo,
    /// When the target's transport last received a byte.
    received: Arc<Received>,
    /// An operation's liveness bound ([`Connection::watch`]).
    silence: Duration,
}

impl Connection {
    pub(crate) fn is_alive(&self) -> bool {
        !self.handle.is_closed() && !self.monitor.is_down()
    }

    /// Resolves only when this connection is dead, as seen by an operation
    /// waiting on it: closed, declared down by a hop, or silent — nothing
    /// received for `silence` ([`OP_SILENCE`], or ServerAliveInterval when
    /// shorter — BatchMode makes `ssh -G` say 300 s), then no answer to a
    /// keepalive within [`OP_SILENCE`] more. A silent
    /// connection is declared down here, so that the client's next
    /// operation connects afresh instead of waiting on TCP's own
    /// retransmission timer after a partition heals. Bytes of any channel
    /// count as an answer: a long script, or a download filling the pipe,
    /// is never cut for taking long.
    pub(crate) async fn watch(&self, host: &str) -> SshError {
        // Silence counts from the operation's start at the earliest: an
        // idle connection's first operation sends no keepalive of its own.
        let started = Instant::now();
        loop {
            if !self.is_alive() {
                return self.monitor.error(host, "the connection closed").await;
            }
            let quiet = self.received.quiet_for().min(started.elapsed());
            if quiet < self.silence {
                let woken = self.monitor.notify.notified();
                tokio::select! {
                    _ = tokio::time::sleep(self.silence - quiet) => {}
                    _ = woken => {}
                }
                continue;
            }
            match tokio::time::timeout(OP_SILENCE, self.handle.send_ping()).await {
                Ok(Ok(())) => {
                    if self.received.quiet_for() >= self.silence {
                        // Answered without a byte (the session ended, which
                        // the next turn sees): never a ping loop.
                        tokio::time::sleep(self.silence).await;
                    }
                }
                Ok(Err(e)) => return self.monitor.error(host, e).await,
                Err(_) => {
                    tracing::info!(
                        host = %host,
                        silent_for = ?self.received.quiet_for(),
                        "no keepalive answer while an operation waited: abandoning the connection"
                    );
                    self.monitor.set(LinkDown::NotResponding {
                        hop: host.to_string(),
                        interval: self.silence,
                        count_max: 1,
                    });
                    return self.monitor.error(host, "not responding").await;
                }
            }
        }
    }
}

/// When a byte last arrived on a transport (ms since `base`).
#[derive(Debug)]
pub(crate) struct Received {
    base: Instant,
    at_ms: std::sync::atomic::AtomicU64,
}

impl Received {
    fn new() -> Self {
        Received {
            base: Instant::now(),
            at_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn mark(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.at_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let at = Duration::from_millis(self.at_ms.load(std::sync::atomic::Ordering::Relaxed));
        self.base.elapsed().saturating_sub(at)
    }
}

/// A transport stream that records when it last received bytes.
struct Watched<S> {
    inner: S,
    received: Arc<Received>,
    /// Sees the server's banner go by (until it is complete).
    sniff: Arc<BannerSniff>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.received.mark();
            if !self.sniff.done() {
                self.sniff.feed(&buf.filled()[before..]);
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

fn unreachable(hop: &str, msg: impl Into<String>) -> SshError {
    SshError::Unreachable {
        hop: hop.to_string(),
        source: std::io::Error::other(msg.into()),
    }
}

fn connect_timeout(h: &ResolvedHost) -> Duration {
    h.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)
}

async fn tcp_stream(
    h: &ResolvedHost,
    trace: Option<&ConnectTrace>,
) -> Result<(QuickAck, String), SshError> {
    let deadline = connect_timeout(h);
    let t = Instant::now();
    let note_dns = |cause: Option<Cause>, seen: String| {
        if let Some(tr) = trace {
            match cause {
                None => tr.ok(&h.alias, Step::Dns, t.elapsed(), seen),
                Some(c) => tr.fail(&h.alias, Step::Dns, t.elapsed(), c, seen),
            }
        }
    };
    let addrs = match tokio::time::timeout(
        deadline,
        tokio::net::lookup_host((h.hostname.as_str(), h.port)),
    )
    .await
    {
        Ok(Ok(a)) => {
            let a = a.collect::<Vec<_>>();
            note_dns(
                None,
                format!(
                    "{} → {}",
                    h.hostname,
                    a.iter()
                        .map(|x| x.ip().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            a
        }
        Ok(Err(e)) => {
            note_dns(
                Some(Cause::NoSuchName),
                format!("cannot resolve {}: {e}", h.hostname),
            );
            return Err(SshError::Unreachable {
                hop: h.alias.clone(),
                source: std::io::Error::new(
                    e.kind(),
                    format!("cannot resolve {}: {e}", h.hostname),
                ),
            });
        }
        Err(_) => {
            let msg = format!("resolving {} timed out after {deadline:?}", h.hostname);
            note_dns(Some(Cause::TimedOut), msg.clone());
            return Err(unreachable(&h.alias, msg));
        }
    };
    let mut last: Option<std::io::Error> = None;
    let t = Instant::now();
    for a in addrs {
        match tokio::time::timeout(deadline, tokio::net::TcpStream::connect(a)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                if let Some(tr) = trace {
                    tr.ok(&h.alias, Step::Tcp, t.elapsed(), a.to_string());
                }
                return Ok((QuickAck::new(s), a.to_string()));
            }
            Ok(Err(e)) => {
                last = Some(std::io::Error::new(
                    e.kind(),
                    format!("connect to {a}: {e}"),
                ));
            }
            Err(_) => {
                last = Some(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connect to {a} timed out after {deadline:?} (ConnectTimeout)"),
                ));
            }
        }
    }
    let last =
        last.unwrap_or_else(|| std::io::Error::other(format!("{} has no addresses", h.hostname)));
    if let Some(tr) = trace {
        tr.fail(
            &h.alias,
            Step::Tcp,
            t.elapsed(),
            io_cause(last.kind()),
            last.to_string(),
        );
    }
    Err(SshError::Unreachable {
        hop: h.alias.clone(),
        source: last,
    })
}

/// Spawns `sh -c PROXYCOMMAND`; its stdout/stdin are the stream. Its
/// stderr is kept (last 4 KiB) for error messages.
/// The last 4 KiB of a ProxyCommand's stderr, and whether it has ended.
#[derive(Default)]
struct ProxyStderr {
    buf: Mutex<Vec<u8>>,
    done: std::sync::atomic::AtomicBool,
}

impl ProxyStderr {
    /// Its text, waiting up to 1 s for the command to finish writing it
    /// (a failed ProxyCommand exits; its message may still be in flight).
    async fn text(&self) -> String {
        let end = Instant::now() + Duration::from_secs(1);
        while !self.done.load(std::sync::atomic::Ordering::Acquire) && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.buf
            .lock()
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_default()
    }
}

type ProxyParts<S> = (S, tokio::process::Child, Arc<ProxyStderr>);

fn proxy_stream(
    h: &ResolvedHost,
    cmd: &str,
) -> Result<ProxyParts<impl Stream + use<>>, Box<SshError>> {
    use std::process::Stdio;
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            Box::new(SshError::Unreachable {
                hop: h.alias.clone(),
                source: std::io::Error::new(e.kind(), format!("cannot start ProxyCommand: {e}")),
            })
        })?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(Box::new(unreachable(&h.alias, "ProxyCommand has no stdio")));
    };
    let errbuf = Arc::new(ProxyStderr::default());
    if let Some(mut stderr) = child.stderr.take() {
        let st = errbuf.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut chunk = [0u8; 1024];
            while let Ok(n) = stderr.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                if let Ok(mut b) = st.buf.lock() {
                    b.extend_from_slice(&chunk[..n]);
                    let len = b.len();
                    if len > 4096 {
                        b.drain(..len - 4096);
                    }
                }
            }
            st.done.store(true, std::sync::atomic::Ordering::Release);
        });
    }
    Ok((tokio::io::join(stdout, stdin), child, errbuf))
}

/// Options for [`connect_chain`].
#[derive(Clone)]
pub(crate) struct ConnectParams {
    pub prompter: Arc<dyn Prompter>,
    /// Alias the user typed (for remedies in host-key errors).
    pub alias: String,
    /// Only fetch the target's host key (for `host trust`).
    pub scan_only: bool,
    /// Where each step is recorded (`belay doctor`), if anywhere.
    pub trace: Option<Arc<ConnectTrace>>,
    /// First jump hops shared with other clients ([`crate::jump_cache`]).
    pub jump_cache: Option<Arc<crate::jump_cache::JumpCache>>,
    /// The agent socket the latest command named ([`crate::AgentSocket`]).
    pub agent_socket: Option<Arc<crate::AgentSocket>>,
}

/// Result of a hop handshake.
struct HopUp {
    handle: Handle<HopHandler>,
    kex: Duration,
    host_key: Option<HostKeyAccepted>,
}

fn client_config(h: &ResolvedHost) -> (Arc<client::Config>, (Duration, u32)) {
    let mut cfg = client::Config::default();
    let interval = h
        .server_alive_interval
        .unwrap_or(DEFAULT_KEEPALIVE_INTERVAL);
    let count = h.server_alive_count_max.max(1);
    cfg.keepalive_interval = Some(interval);
    cfg.keepalive_max = count as usize;
    cfg.nodelay = true;
    cfg.window_size = WINDOW_SIZE;
    cfg.maximum_packet_size = MAX_PACKET;
    cfg.inactivity_timeout = None;
    cfg.client_id = russh::SshId::Standard(std::borrow::Cow::Borrowed(concat!(
        "SSH-2.0-belay_",
        env!("CARGO_PKG_VERSION")
    )));
    // Ciphers in the order the user's config gives, limited to those
    // russh implements; OpenSSH's default list (no choice made) with
    // AES-GCM first on AES hardware (see `cipher_order`).
    if let Some(list) = h.raw.get("ciphers").and_then(|v| v.first()) {
        let wanted = crate::cipher_order::preferred(list, crate::cipher_order::aes_hardware());
        if !wanted.is_empty() {
            cfg.preferred.cipher = std::borrow::Cow::Owned(wanted);
        }
    }
    // Prefer key types already recorded for this host, as OpenSSH does.
    let name = h.known_hosts_name();
    let files = known_hosts::all_files(h);
    let known = known_hosts::known_algorithms(&name, &files);
    if !known.is_empty() {
        let mut prefs: Vec<_> = known.clone();
        for a in cfg.preferred.key.iter() {
            if !prefs.contains(a) {
                prefs.push(a.clone());
            }
        }
        cfg.preferred.key = std::borrow::Cow::Owned(prefs);
    }
    if known_hosts::has_cert_authority(&name, &files) {
        cfg.preferred.host_key_certificates = cfg.preferred.key.clone();
    }
    (Arc::new(cfg), (interval, count))
}

/// What a handshake watches besides the protocol: a ProxyCommand's
/// stderr (for its error), the banner going by (for the trace).
struct Seen<'a> {
    proxy_err: Option<&'a Arc<ProxyStderr>>,
    sniff: &'a BannerSniff,
}

async fn handshake(
    h: &Arc<ResolvedHost>,
    stream: impl Stream,
    params: &ConnectParams,
    monitor: &Arc<LinkMonitor>,
    scan_only: bool,
    presented: Arc<Mutex<Option<PublicKey>>>,
    seen: Seen<'_>,
) -> Result<HopUp, SshError> {
    let Seen { proxy_err, sniff } = seen;
    let (cfg, keepalive) = client_config(h);
    let verdict = Arc::new(Mutex::new(None));
    let handler = HopHandler {
        host: h.clone(),
        alias: if scan_only || h.alias == params.alias {
            params.alias.clone()
        } else {
            h.alias.clone()
        },
        prompter: params.prompter.clone(),
        scan_only,
        presented,
        verdict: verdict.clone(),
        monitor: monitor.clone(),
        keepalive,
    };
    let deadline = connect_timeout(h);
    let t = Instant::now();
    let res = tokio::time::timeout(deadline, client::connect_stream(cfg, stream, handler)).await;
    let kex = t.elapsed();
    let recorded = verdict.lock().ok().and_then(|mut v| v.take());
    if let Some(tr) = &params.trace {
        note_handshake(tr, h, &res, recorded.as_ref(), sniff, kex, deadline);
    }
    match res {
        Ok(Ok(handle)) => {
            let host_key = match recorded {
                Some(Ok(a)) => Some(a),
                Some(Err(e)) => return Err(e.into()),
                None => None,
            };
            Ok(HopUp {
                handle,
                kex,
                host_key,
            })
        }
        Ok(Err(e)) => {
            if let Some(Err(hk)) = recorded {
                return Err(hk.into());
            }
            let mut msg = format!("SSH handshake failed: {e}");
            if let Some(pe) = proxy_err {
                let text = pe.text().await;
                if !text.is_empty() {
                    msg.push_str(&format!("; ProxyCommand said: {}", terminal_safe(&text)));
                }
            }
            Err(unreachable(&h.alias, msg))
        }
        Err(_) => Err(SshError::Timeout {
            host: h.alias.clone(),
            what: "SSH handshake (version + key exchange)".into(),
            after: deadline,
        }),
    }
}

/// Records the banner, and the host key's verdict or the key exchange's
/// failure, of one handshake.
fn note_handshake<T>(
    tr: &ConnectTrace,
    h: &ResolvedHost,
    res: &Result<Result<T, russh::Error>, tokio::time::error::Elapsed>,
    recorded: Option<&Result<HostKeyAccepted, HostKeyError>>,
    sniff: &BannerSniff,
    kex: Duration,
    deadline: Duration,
) {
    let hop = &h.alias;
    match sniff.banner() {
        Some((line, at)) => tr.ok(hop, Step::Banner, at, terminal_safe(&line)),
        None => {
            let (cause, seen) = match res {
                Err(_) => (
                    Cause::TimedOut,
                    format!(
                        "no SSH banner within {deadline:?} (ConnectTimeout): connected, but nothing answers"
                    ),
                ),
                Ok(Err(e)) => (
                    Cause::Closed,
                    format!("no SSH banner: {e} (is an SSH server listening there?)"),
                ),
                Ok(Ok(_)) => return,
            };
            tr.fail(hop, Step::Banner, kex, cause, seen);
            return;
        }
    }
    match recorded {
        Some(Ok(a)) => tr.ok(hop, Step::HostKey, kex, describe_acceptance(Some(a))),
        Some(Err(e)) => tr.fail(hop, Step::HostKey, kex, Cause::Other, e.to_string()),
        None => match res {
            Ok(Err(e)) => tr.fail(
                hop,
                Step::Kex,
                kex,
                Cause::Other,
                format!("key exchange failed: {e}"),
            ),
            Err(_) => tr.fail(
                hop,
                Step::Kex,
                kex,
                Cause::TimedOut,
                format!("key exchange did not finish within {deadline:?}"),
            ),
            Ok(Ok(_)) => {}
        },
    }
}

/// Fetches the server host key of `chain`'s target (authenticating through
/// the jumps, which must already be trusted). Used by `belay host trust`.
pub(crate) async fn scan_host_key(
    chain: &ResolvedChain,
    params: &ConnectParams,
) -> Result<PublicKey, SshError> {
    let presented = Arc::new(Mutex::new(None));
    let mut p = params.clone();
    p.scan_only = true;
    let r = connect_inner(chain, &p, presented.clone()).await;
    if let Some(k) = presented.lock().ok().and_then(|mut k| k.take()) {
        return Ok(k);
    }
    match r {
        Ok(_) => Err(SshError::Protocol {
            host: chain.target.alias.clone(),
            detail: "server presented no host key".into(),
        }),
        Err(e) => Err(e),
    }
}

/// Connects through the whole chain and authenticates every hop.
pub(crate) async fn connect_chain(
    chain: &ResolvedChain,
    params: &ConnectParams,
) -> Result<Connection, SshError> {
    connect_inner(chain, params, Arc::new(Mutex::new(None))).await
}

async fn connect_inner(
    chain: &ResolvedChain,
    params: &ConnectParams,
    target_presented: Arc<Mutex<Option<PublicKey>>>,
) -> Result<Connection, SshError> {
    let mut c = Connector::new(chain, params, target_presented);
    let share = params
        .jump_cache
        .clone()
        .filter(|_| !chain.jumps.is_empty() && !params.scan_only);
    for i in 0..c.hops.len() {
        if i == 0
            && let Some(cache) = &share
        {
            let hop = c.hops[0].clone();
            let shared = cache
                .take(&hop, || async {
                    let t = Instant::now();
                    let (up, via) = c.reach(0).await?;
                    let stream_time = t.elapsed().saturating_sub(up.kex);
                    let mut handle = up.handle;
                    let ta = Instant::now();
                    let method = c.authenticate(0, &mut handle).await?;
                    let info = HopInfo {
                        alias: hop.alias.clone(),
                        target: hop.display_target(),
                        via,
                        stream: stream_time,
                        kex: up.kex,
                        auth: ta.elapsed(),
                        host_key: up.host_key.unwrap_or(HostKeyAccepted::Known {
                            file: Default::default(),
                            line: 0,
                        }),
                        auth_method: method,
                    };
                    Ok((handle, info))
                })
                .await?;
            c.infos.push(shared.info().clone());
            c.shared = Some(shared);
            continue;
        }
        let t = Instant::now();
        let (up, via) = c.reach(i).await?;
        let stream_time = t.elapsed().saturating_sub(up.kex);
        let mut handle = up.handle;
        let ta = Instant::now();
        let method = c.authenticate(i, &mut handle).await?;
        c.hop_up(
            i,
            handle,
            HopInfo {
                alias: c.hops[i].alias.clone(),
                target: c.hops[i].display_target(),
                via,
                stream: stream_time,
                kex: up.kex,
                auth: ta.elapsed(),
                host_key: up.host_key.unwrap_or(HostKeyAccepted::Known {
                    file: Default::default(),
                    line: 0,
                }),
                auth_method: method,
            },
        );
    }
    c.finish().await
}

/// One connection being built, hop by hop: reach a hop (a byte stream and
/// key exchange), authenticate on it, and once the target is up, measure
/// one round trip and hand the whole chain over as a [`Connection`].
struct Connector<'a> {
    chain: &'a ResolvedChain,
    params: &'a ConnectParams,
    /// Where the target's presented key is recorded (for `host trust`).
    target_presented: Arc<Mutex<Option<PublicKey>>>,
    started: Instant,
    monitor: Arc<LinkMonitor>,
    hops: Vec<Arc<ResolvedHost>>,
    /// Authenticated hops so far, in order.
    handles: Vec<Handle<HopHandler>>,
    infos: Vec<HopInfo>,
    proxy_child: Option<tokio::process::Child>,
    /// Fed by the target hop's transport.
    received: Arc<Received>,
    /// Hop 0, when it is a shared jump connection (then not in `handles`).
    shared: Option<crate::jump_cache::JumpUse>,
}

impl<'a> Connector<'a> {
    fn new(
        chain: &'a ResolvedChain,
        params: &'a ConnectParams,
        target_presented: Arc<Mutex<Option<PublicKey>>>,
    ) -> Self {
        Connector {
            chain,
            params,
            target_presented,
            started: Instant::now(),
            monitor: Arc::new(LinkMonitor::default()),
            hops: chain.hops().cloned().map(Arc::new).collect(),
            handles: Vec::new(),
            infos: Vec::new(),
            proxy_child: None,
            received: Arc::new(Received::new()),
            shared: None,
        }
    }

    /// The authenticated handle of hop `i` (the shared jump for hop 0 when
    /// there is one).
    fn handle(&self, i: usize) -> &Handle<HopHandler> {
        match &self.shared {
            Some(s) if i == 0 => s.handle(),
            Some(_) => &self.handles[i - 1],
            None => &self.handles[i],
        }
    }

    /// A byte stream to hop `i` and the key exchange over it; returns the
    /// handshake and how the hop was reached (`tcp ADDR`, `proxycommand`,
    /// `via HOP`).
    async fn reach(&mut self, i: usize) -> Result<(HopUp, String), SshError> {
        let h = self.hops[i].clone();
        let last = self.hops.len() - 1;
        let scan = self.params.scan_only && i == last;
        let presented = if i == last {
            self.target_presented.clone()
        } else {
            Arc::new(Mutex::new(None))
        };
        let received = if i == last {
            self.received.clone()
        } else {
            Arc::new(Received::new())
        };

        let t = Instant::now();
        let sniff = Arc::new(BannerSniff::new());
        let (up, via) = if i == 0 {
            if let Some(pc) = &h.proxy_command {
                let started = proxy_stream(&h, pc);
                if let Some(tr) = &self.params.trace {
                    match &started {
                        Ok(_) => tr.ok(&h.alias, Step::ProxyCommand, t.elapsed(), pc.clone()),
                        Err(e) => tr.fail(
                            &h.alias,
                            Step::ProxyCommand,
                            t.elapsed(),
                            Cause::Other,
                            e.to_string(),
                        ),
                    }
                }
                let (stream, child, errbuf) = started.map_err(|e| *e)?;
                self.proxy_child = Some(child);
                tracing::info!(hop = %h.alias, via = "proxycommand", "connect: ProxyCommand started");
                let up = handshake(
                    &h,
                    Watched {
                        inner: stream,
                        received: received.clone(),
                        sniff: sniff.clone(),
                    },
                    self.params,
                    &self.monitor,
                    scan,
                    presented,
                    Seen {
                        proxy_err: Some(&errbuf),
                        sniff: &sniff,
                    },
                )
                .await?;
                (up, "proxycommand".to_string())
            } else {
                let (stream, addr) = tcp_stream(&h, self.params.trace.as_deref()).await?;
                tracing::info!(hop = %h.alias, via = %format!("tcp {addr}"), elapsed = ?t.elapsed(), "connect: TCP connected");
                let up = handshake(
                    &h,
                    Watched {
                        inner: stream,
                        received: received.clone(),
                        sniff: sniff.clone(),
                    },
                    self.params,
                    &self.monitor,
                    scan,
                    presented,
                    Seen {
                        proxy_err: None,
                        sniff: &sniff,
                    },
                )
                .await?;
                (up, format!("tcp {addr}"))
            }
        } else {
            let ch = self.through_previous(i).await?;
            // The banner's time counts from the channel, not from the start.
            let sniff = Arc::new(BannerSniff::new());
            let prev_alias = &self.hops[i - 1].alias;
            tracing::info!(hop = %h.alias, via = %prev_alias, elapsed = ?t.elapsed(), "connect: channel opened through the previous hop");
            let up = handshake(
                &h,
                Watched {
                    inner: ch.into_stream(),
                    received: received.clone(),
                    sniff: sniff.clone(),
                },
                self.params,
                &self.monitor,
                scan,
                presented,
                Seen {
                    proxy_err: None,
                    sniff: &sniff,
                },
            )
            .await?;
            (up, format!("via {prev_alias}"))
        };
        tracing::info!(
            hop = %h.alias,
            elapsed = ?up.kex,
            host_key = %describe_acceptance(up.host_key.as_ref()),
            "key exchange done"
        );
        Ok((up, via))
    }

    /// A `direct-tcpip` channel from hop `i - 1` to hop `i`.
    async fn through_previous(&self, i: usize) -> Result<russh::Channel<client::Msg>, SshError> {
        let h = &self.hops[i];
        let prev = self.handle(i - 1);
        let prev_alias = &self.hops[i - 1].alias;
        let deadline = connect_timeout(h);
        let t = Instant::now();
        let (cause, msg) = match tokio::time::timeout(
            deadline,
            prev.channel_open_direct_tcpip(h.hostname.clone(), h.port as u32, "127.0.0.1", 0),
        )
        .await
        {
            Ok(Ok(ch)) => {
                if let Some(tr) = &self.params.trace {
                    tr.ok(
                        &h.alias,
                        Step::Channel,
                        t.elapsed(),
                        format!("{prev_alias} → {}:{}", h.hostname, h.port),
                    );
                }
                return Ok(ch);
            }
            Ok(Err(e)) => {
                use russh::ChannelOpenFailure as F;
                let cause = match &e {
                    russh::Error::ChannelOpenFailure(F::AdministrativelyProhibited) => {
                        Cause::Prohibited
                    }
                    russh::Error::ChannelOpenFailure(F::ConnectFailed) => Cause::ConnectFailed,
                    _ => Cause::Other,
                };
                (
                    cause,
                    format!(
                        "{prev_alias} could not connect to {}:{}: {e}",
                        h.hostname, h.port
                    ),
                )
            }
            Err(_) => (
                Cause::TimedOut,
                format!(
                    "{prev_alias} did not open a channel to {}:{} within {deadline:?}",
                    h.hostname, h.port
                ),
            ),
        };
        if let Some(tr) = &self.params.trace {
            tr.fail(&h.alias, Step::Channel, t.elapsed(), cause, msg.clone());
        }
        Err(unreachable(&h.alias, msg))
    }

    /// User authentication on hop `i` ([`crate::auth`]), within
    /// [`AUTH_TIMEOUT`]; returns the method that worked.
    async fn authenticate(
        &self,
        i: usize,
        handle: &mut Handle<HopHandler>,
    ) -> Result<String, SshError> {
        let h = &self.hops[i];
        let t = Instant::now();
        let r = match tokio::time::timeout(
            AUTH_TIMEOUT,
            authenticate(
                handle,
                h,
                self.params.prompter.as_ref(),
                self.params.agent_socket.as_ref().and_then(|a| a.latest()),
            ),
        )
        .await
        {
            Ok(Ok(m)) => {
                if let Some(tr) = &self.params.trace {
                    tr.ok(&h.alias, Step::Auth, t.elapsed(), m.clone());
                }
                Ok(m)
            }
            Ok(Err(AuthFailure::Rejected(e))) => {
                if let Some(tr) = &self.params.trace {
                    tr.push(TraceEvent {
                        hop: h.alias.clone(),
                        step: Step::Auth,
                        took: t.elapsed(),
                        seen: e.to_string(),
                        failure: Some(Cause::Other),
                        attempts: e.attempts.clone(),
                        server_methods: Some(e.server_methods.clone()),
                    });
                }
                Err(e.into())
            }
            Ok(Err(AuthFailure::Link(d, attempts))) => {
                let e = self
                    .monitor
                    .error(&h.alias, format!("during authentication: {d}"))
                    .await;
                if let Some(tr) = &self.params.trace {
                    tr.push(TraceEvent {
                        hop: h.alias.clone(),
                        step: Step::Auth,
                        took: t.elapsed(),
                        seen: e.to_string(),
                        failure: Some(Cause::Closed),
                        attempts,
                        server_methods: None,
                    });
                }
                Err(e)
            }
            Err(_) => {
                if let Some(tr) = &self.params.trace {
                    tr.fail(
                        &h.alias,
                        Step::Auth,
                        t.elapsed(),
                        Cause::TimedOut,
                        format!("authentication did not finish within {AUTH_TIMEOUT:?}"),
                    );
                }
                Err(SshError::Timeout {
                    host: h.alias.clone(),
                    what: "authentication".into(),
                    after: AUTH_TIMEOUT,
                })
            }
        };
        match &r {
            Ok(m) => {
                tracing::info!(hop = %h.alias, user = %h.user, method = %m, elapsed = ?t.elapsed(), "authenticated")
            }
            Err(e) => {
                tracing::info!(hop = %h.alias, user = %h.user, error = %e, elapsed = ?t.elapsed(), "authentication failed")
            }
        }
        r
    }

    /// Hop `i` is up and authenticated.
    fn hop_up(&mut self, i: usize, handle: Handle<HopHandler>, info: HopInfo) {
        debug_assert_eq!(self.handles.len() + usize::from(self.shared.is_some()), i);
        self.handles.push(handle);
        self.infos.push(info);
    }

    /// One SSH-level round trip on the target, then the connection.
    async fn finish(mut self) -> Result<Connection, SshError> {
        let chain = self.chain;
        let Some(target) = self.handles.pop() else {
            return Err(SshError::Protocol {
                host: chain.alias.clone(),
                detail: "empty chain".into(),
            });
        };
        let tp = Instant::now();
        let rtt =
            match tokio::time::timeout(connect_timeout(&chain.target), target.send_ping()).await {
                Ok(Ok(())) => Some(tp.elapsed()),
                _ => None,
            };
        let (_, (ka_i, ka_n)) = client_config(&chain.target);
        tracing::info!(
            host = %chain.alias,
            hops = self.infos.len(),
            round_trip = ?rtt,
            total = ?self.started.elapsed(),
            "connected"
        );
        Ok(Connection {
            handle: target,
            _jumps: self.handles,
            _shared_jump: self.shared,
            _proxy: self.proxy_child,
            monitor: self.monitor,
            received: self.received,
            silence: chain
                .target
                .server_alive_interval
                .map_or(OP_SILENCE, |i| i.min(OP_SILENCE)),
            info: ConnectInfo {
                chain: chain.clone(),
                first_hop: chain.jumps.first().map(|j| j.alias.clone()),
                fallback_used: None,
                hops: self.infos,
                first_round_trip: rtt,
                total: self.started.elapsed(),
                connected_at: SystemTime::now(),
                keepalive_interval: ka_i,
                keepalive_count_max: ka_n,
            },
        })
    }
}

/// How a host key was accepted, for the log.
fn describe_acceptance(a: Option<&HostKeyAccepted>) -> String {
    match a {
        Some(HostKeyAccepted::Known { file, line }) => {
            format!("known ({}:{line})", file.display())
        }
        Some(HostKeyAccepted::Added { file, line }) => {
            format!("added ({}:{line})", file.display())
        }
        None => "not checked (scan)".into(),
    }
}
