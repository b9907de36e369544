//! The daemon's life: take the lock, bind the socket, serve the API, run
//! the background loop, and exit when asked (`DELETE /v1/daemon`), when
//! idle for `idle_exit` (auto-started daemons only, and never while a
//! forward listens), or when its
//! `BELAY_HOME` has gone (a removed test directory must not leave a daemon
//! behind).
//!
//! With `listen`, the same API is served on TCP too, every request behind
//! a token ([`crate::api::access`]), over TLS when a certificate was given
//! ([`crate::tls`]), and the dashboard at `/`; it stops with the socket's
//! server. An admin token for this run only is made then, and the
//! dashboard's URL with it printed on stdout.
//!
//! Shutting down is safe at any moment, SIGKILL included: the store
//! holds every intent and each remote step is idempotent.

use std::sync::Arc;
use std::time::Duration;

use belay_core::home::BelayHome;

use crate::listener::{SameUserListener, bind};
use crate::location::DaemonLocation;
use crate::lock::{DaemonLock, LockError};
use crate::state::{DaemonState, Listening};
use crate::tls::{TlsFiles, TlsListener};

#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `--ssh-config` / `BELAY_SSH_CONFIG`, as resolved by the caller.
    pub ssh_config: Option<std::path::PathBuf>,
    /// Exit after this long with no request, no stream and no work in
    /// hand; `None`: never (a daemon run by systemd or by hand).
    pub idle_exit: Option<Duration>,
    /// `--listen`: also serve the API on TCP here, every request with a
    /// token ([`crate::api::access`]). The caller has checked that the
    /// address is loopback, has TLS, or that plain HTTP was asked for.
    pub listen: Option<std::net::SocketAddr>,
    /// `--tls-cert`/`--tls-key`, loaded and checked: `listen` is served
    /// with TLS ([`crate::tls`]).
    pub tls: Option<Arc<TlsFiles>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{0}")]
    Core(#[from] belay_core::CoreError),
    #[error("socket {path}: {source}")]
    Socket {
        path: String,
        source: std::io::Error,
    },
    #[error("the daemon's runtime: {0}")]
    Runtime(std::io::Error),
}

/// How often the daemon checks that it should still be running.
const WATCH_STEP: Duration = Duration::from_millis(500);

/// Run the daemon in this thread until it stops.
pub fn run(home: BelayHome, options: ServeOptions) -> Result<(), ServeError> {
    belay_core::store::create_private_dir(home.root())?;
    let location = DaemonLocation::new(&home);
    let _lock = DaemonLock::acquire(&location.lock())?;
    // Connections to hosts must be served between requests too
    // (keepalives, a host closing a channel), and many at once (forwards,
    // shells, several hosts): SSH I/O runs on two worker threads, one per
    // core of a small machine.
    belay_core::transport::ssh::use_worker_threads(2);
    belay_core::transport::ssh::drive_in_background();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let socket = location.socket();
    let state = Arc::new(DaemonState::new(home.clone(), options.ssh_config.clone())?);
    runtime.block_on(async {
        let listener = bind(&socket).map_err(|source| ServeError::Socket {
            path: socket.display().to_string(),
            source,
        })?;
        tracing::info!(socket = %socket.display(), pid = std::process::id(), "belay daemon serving");
        // Listening now: commands may take this card's word for who serves.
        let card = crate::card::DaemonCard {
            pid: std::process::id(),
            build: crate::build::identity().to_string(),
            ssh_config: options.ssh_config.as_ref().map(|p| p.display().to_string()),
        };
        if let Err(e) = crate::card::write(&location, &card) {
            // Commands then ask, as before the card.
            tracing::warn!("cannot write {}: {e}", location.card().display());
        }
        let tcp = match options.listen {
            Some(addr) => {
                let bound = tokio::net::TcpListener::bind(addr).await.map_err(|source| {
                    ServeError::Socket {
                        path: addr.to_string(),
                        source,
                    }
                })?;
                let local = bound.local_addr().map_err(ServeError::Runtime)?;
                let listening = Listening {
                    addr: local,
                    tls: options.tls.is_some(),
                };
                let _ = state.listen.set(listening);
                tracing::info!(listen = %local, tls = listening.tls, "serving the API on TCP (tokens required)");
                // For whoever started it (a closed stdout is no reason to stop).
                let _ = std::io::Write::write_all(
                    &mut std::io::stdout(),
                    format!("serving the API on {}\n", listening.url()).as_bytes(),
                );
                announce_dashboard(&state, &listening)?;
                let app = crate::api::router_tcp(state.clone());
                let tls = options.tls.clone();
                Some(tokio::spawn(async move {
                    let served = match tls {
                        Some(files) => axum::serve(TlsListener::new(bound, files), app).await,
                        None => axum::serve(bound, app).await,
                    };
                    if let Err(e) = served {
                        tracing::warn!("the TCP listener failed: {e}");
                    }
                }))
            }
            None => None,
        };
        crate::background::restore_forwards(&state).await;
        let app = crate::api::router(state.clone());
        let background = tokio::spawn(crate::background::run(state.clone()));
        let forwards = tokio::spawn(crate::background::forwards(state.clone()));
        let requests = state.clone();
        let trim = tokio::spawn(crate::memory::trim_periodically(move || {
            requests.last_request_end_ms()
        }));
        let stop = state.clone();
        let seen = state.clone();
        let listener = SameUserListener::new(listener).on_accept(Box::new(move || seen.touch()));
        let server = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop_reason(&stop, &options).await });
        let result = server.await;
        crate::card::remove(&location, std::process::id());
        background.abort();
        forwards.abort();
        trim.abort();
        if let Some(tcp) = tcp {
            tcp.abort();
        }
        result.map_err(|source| ServeError::Socket {
            path: socket.display().to_string(),
            source,
        })
    })?;
    // Only our own socket file: a new daemon may already have bound its own.
    let _ = std::fs::remove_file(&socket);
    tracing::info!("belay daemon stopped");
    Ok(())
}

/// Make this run's admin token (its hash kept in memory only) and print
/// the dashboard's login URL on stdout: the terminal of whoever ran
/// `serve --listen`, never the log.
fn announce_dashboard(state: &DaemonState, listening: &Listening) -> Result<(), ServeError> {
    use std::io::Write;
    let (token, hash) = belay_core::tokens::generate()?;
    let _ = state.session_token.set(hash);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "dashboard: {}/?token={token}", listening.url());
    let _ = out.flush();
    Ok(())
}

/// Resolves when the daemon should stop, saying why in the log.
async fn stop_reason(state: &Arc<DaemonState>, options: &ServeOptions) {
    loop {
        tokio::select! {
            _ = state.shutdown.notified() => {
                tracing::info!("stopping: asked to");
                return;
            }
            _ = tokio::time::sleep(WATCH_STEP) => {}
        }
        if !state.home.root().exists() {
            tracing::info!(
                "stopping: BELAY_HOME {} has gone",
                state.home.root().display()
            );
            return;
        }
        if let Some(limit) = options.idle_exit
            && let Some(idle) = state.idle_for_ms()
            && idle >= limit.as_millis() as i64
            && state.forwards.open_count() == 0
            && !crate::background::has_work(state).await
        {
            tracing::info!("stopping: idle for {}s", idle / 1000);
            // Commands from now on ask who serves (and get no answer)
            // rather than take the card's word.
            crate::card::remove(&DaemonLocation::new(&state.home), std::process::id());
            return;
        }
    }
}
