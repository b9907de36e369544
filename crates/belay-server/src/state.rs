//! What every request shares: the home, the hosts (one pooled SSH
//! connection per host for the daemon's life), and how busy the daemon is
//! (the idle exit reads it). Nothing here is a second truth: jobs live in
//! the store, which each request opens for itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use belay_core::home::BelayHome;
use belay_core::hosts::{Hosts, HostsOptions};
use belay_core::time::now_ms;
use tokio::sync::Notify;

use crate::prompts::{PromptRoutes, RelayPrompter};

pub struct DaemonState {
    pub home: BelayHome,
    /// The OpenSSH config file hosts are resolved with (`--ssh-config` or
    /// `BELAY_SSH_CONFIG` when the daemon started); clients that use
    /// another work without the daemon.
    pub ssh_config: Option<std::path::PathBuf>,
    pub hosts: Arc<Hosts>,
    pub started_at: i64,
    /// Requests in progress, log streams included (an attached `run` keeps
    /// the daemon alive however long its job runs).
    pub in_flight: AtomicUsize,
    /// Requests served since the daemon started (this one included).
    pub served: std::sync::atomic::AtomicU64,
    /// When the last request ended (ms since the epoch).
    pub last_activity: AtomicI64,
    /// Asked to stop (`DELETE /v1/daemon`, `belay serve --stop`).
    pub shutdown: Notify,
    /// Wakes the background loop to read the hosts with work again (a
    /// submit).
    pub nudge: Notify,
    /// Hosts a submit just gave a job: looked at again soon, whatever their
    /// schedule said (an idle host's next pass may be a minute away).
    pub woken: std::sync::Mutex<Vec<String>>,
    /// Hosts with a job being followed or waited for, and how many
    /// clients do so: their passes run at the fast interval.
    followed: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    /// Questions from connections, relayed to clients with a terminal.
    pub prompts: Arc<PromptRoutes>,
    /// The ssh-agent socket the latest local command named (its
    /// `SSH_AUTH_SOCK`): new connections use it, not the one of the
    /// terminal this daemon was started from.
    pub agent_socket: Arc<belay_ssh::AgentSocket>,
    /// The forwards this daemon serves (`belay forward`), recorded in the
    /// store; while any listens, the daemon does not idle-exit.
    pub forwards: Arc<crate::forwards::Forwards>,
    /// Where the API is served on TCP (`serve --listen`), once bound.
    pub listen: std::sync::OnceLock<Listening>,
    /// The hash of the admin token `serve --listen` made for this run (the
    /// dashboard URL it prints): held in memory only, gone with the
    /// daemon.
    pub session_token: std::sync::OnceLock<String>,
    /// The one store watcher every live view shares (`GET /v1/events`).
    pub watch: Arc<crate::watch::Watch>,
    /// Store connections kept open between requests (see
    /// [`crate::store_pool`]).
    stores: Arc<crate::store_pool::StorePool>,
}

/// Where the API is served on TCP, and whether with TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listening {
    pub addr: std::net::SocketAddr,
    pub tls: bool,
}

impl Listening {
    /// `https://ADDR` (with TLS) or `http://ADDR`: the API's base URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
}

pub type Shared = Arc<DaemonState>;

impl DaemonState {
    pub fn new(
        home: BelayHome,
        ssh_config: Option<std::path::PathBuf>,
    ) -> belay_core::error::Result<Self> {
        // The daemon has no terminal: a question goes to the client asking
        // about that host, if it has one; otherwise the connection fails
        // with today's clear error.
        let prompts = Arc::new(PromptRoutes::default());
        let relay = prompts.clone();
        let agent_socket = Arc::new(belay_ssh::AgentSocket::default());
        let hosts = Hosts::new(
            &home,
            HostsOptions {
                ssh_config: ssh_config.clone(),
                prompter: None,
                // The background passes pace attempts per host (a quarter
                // of the time away, at most 5 s apart); the connection's
                // own backoff must not add minutes on top once it heals.
                reconnect: Some(belay_ssh::Backoff {
                    min_interval: std::time::Duration::from_secs(1),
                    base: std::time::Duration::from_secs(1),
                    cap: std::time::Duration::from_secs(4),
                }),
                prompter_for: Some(Arc::new(move |host: &str| {
                    Arc::new(RelayPrompter {
                        host: host.to_string(),
                        routes: relay.clone(),
                    }) as Arc<dyn belay_ssh::Prompter>
                })),
                agent_socket: Some(agent_socket.clone()),
            },
        )?;
        let hosts = Arc::new(hosts);
        Ok(Self {
            watch: Arc::new(crate::watch::Watch::new(home.clone(), hosts.clone())),
            home,
            ssh_config,
            hosts,
            started_at: now_ms(),
            in_flight: AtomicUsize::new(0),
            served: std::sync::atomic::AtomicU64::new(0),
            last_activity: AtomicI64::new(now_ms()),
            shutdown: Notify::new(),
            nudge: Notify::new(),
            woken: Default::default(),
            followed: Default::default(),
            prompts,
            agent_socket,
            forwards: Arc::new(crate::forwards::Forwards::new(true)),
            listen: std::sync::OnceLock::new(),
            session_token: std::sync::OnceLock::new(),
            stores: Default::default(),
        })
    }

    /// An engine over the shared hosts, for one request (on a blocking
    /// thread: engine calls block on SSH I/O), on a store connection kept
    /// from an earlier request where one is idle (see [`crate::store_pool`]).
    pub fn engine(&self) -> belay_core::error::Result<crate::store_pool::RequestEngine> {
        self.stores.engine(&self.home, self.hosts.clone())
    }

    /// A connection came: activity, as a request's end is.
    pub fn touch(&self) {
        self.last_activity.store(now_ms(), Ordering::SeqCst);
    }

    /// Mark a request in progress until the guard drops.
    pub fn busy(self: &Arc<Self>) -> BusyGuard {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.served.fetch_add(1, Ordering::Relaxed);
        BusyGuard(self.clone())
    }

    /// A submit gave `host` a job: have the background loop look at it soon.
    pub fn wake(&self, host: &str) {
        self.woken
            .lock()
            .expect("woken lock")
            .push(host.to_string());
        self.nudge.notify_one();
    }

    /// Mark `host` followed until the guard drops.
    pub fn follow(self: &Arc<Self>, host: &str) -> FollowGuard {
        *self
            .followed
            .lock()
            .expect("followed lock")
            .entry(host.to_string())
            .or_default() += 1;
        FollowGuard(self.clone(), host.to_string())
    }

    pub fn is_followed(&self, host: &str) -> bool {
        self.followed
            .lock()
            .expect("followed lock")
            .get(host)
            .is_some_and(|n| *n > 0)
    }

    /// When the last request ended (ms since the epoch), while none runs.
    pub fn last_request_end_ms(&self) -> Option<i64> {
        (self.in_flight.load(Ordering::SeqCst) == 0)
            .then(|| self.last_activity.load(Ordering::SeqCst))
    }

    pub fn idle_for_ms(&self) -> Option<i64> {
        self.last_request_end_ms().map(|at| now_ms() - at)
    }
}

pub struct BusyGuard(Arc<DaemonState>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.last_activity.store(now_ms(), Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct FollowGuard(Arc<DaemonState>, String);

impl Drop for FollowGuard {
    fn drop(&mut self) {
        let mut map = self.0.followed.lock().expect("followed lock");
        if let Some(n) = map.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.1);
            }
        }
    }
}
