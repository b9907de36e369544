//! TLS for the API on TCP (`belay serve --listen ADDR --tls-cert FILE
//! --tls-key FILE`): the certificate pair, read and checked, reloaded when
//! its files change; and [`TlsListener`], an `axum::serve` listener that
//! hands the server only finished handshakes.
//!
//! rustls on its `ring` provider (ring is already built for SSH; aws-lc
//! would add a C build), PEM parsed by `rustls-pki-types`.
//!
//! - Handshakes run in their own tasks, each with [`HANDSHAKE_LIMIT`]: a
//!   slow or silent client never holds up `accept` for the next one.
//! - Before each handshake the files' (mtime, size, inode) are compared
//!   with the pair in use; a changed pair is read again, so a renewed
//!   certificate is served from the next connection with no restart. A
//!   changed pair that does not load (half written, key and certificate
//!   that do not match) is logged and the last good pair kept.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The longest a client may take to finish its handshake.
pub const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// Handshakes under way at once; more connections wait in the kernel's
/// backlog until some finish.
const MAX_HANDSHAKES: usize = 256;

/// Why a certificate pair cannot be used; each names its file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: {why}", path.display())]
    Pem { path: PathBuf, why: String },
    #[error(
        "{}: mode {mode:04o} lets others read or the group change the private key (chmod 600 it)",
        path.display()
    )]
    KeyMode { path: PathBuf, mode: u32 },
    #[error("{} and {}: {why}", cert.display(), key.display())]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        why: String,
    },
}

/// Which version of a file was read: it changed when this does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    size: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        size: meta.len(),
        inode: meta.ino(),
    })
}

/// The certificate and key files, and the pair last loaded from them.
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<Loaded>,
}

struct Loaded {
    /// The files' stamps when last read, good or bad: a bad pair is
    /// reported once, not on every connection.
    seen: (Option<Stamp>, Option<Stamp>),
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl TlsFiles {
    /// Read and check both files (at start: any fault is the caller's to
    /// report).
    pub fn load(cert: &Path, key: &Path) -> Result<TlsFiles, TlsError> {
        let seen = (stamp(cert), stamp(key));
        let config = server_config(cert, key)?;
        Ok(TlsFiles {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: Mutex::new(Loaded {
                seen,
                config: Arc::new(config),
            }),
        })
    }

    /// The pair to hand the next connection: read again if its files
    /// changed, the last good one if they no longer load.
    pub fn config(&self) -> Arc<ServerConfig> {
        let now = (stamp(&self.cert), stamp(&self.key));
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if now != current.seen {
            current.seen = now;
            match server_config(&self.cert, &self.key) {
                Ok(config) => {
                    tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                    current.config = Arc::new(config);
                }
                Err(e) => {
                    tracing::warn!("TLS certificate not reloaded, the last good one is kept: {e}")
                }
            }
        }
        current.config.clone()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
    let pem = |path: &Path, why: String| TlsError::Pem {
        path: path.to_path_buf(),
        why,
    };
    let cert_pem = read(cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(cert, format!("not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(pem(cert, "no CERTIFICATE in it".into()));
    }
    let mode = std::fs::metadata(key)
        .map_err(|source| TlsError::Read {
            path: key.to_path_buf(),
            source,
        })?
        .mode()
        & 0o7777;
    // Group-readable is allowed (Debian's ssl-cert group); no more.
    if mode & 0o027 != 0 {
        return Err(TlsError::KeyMode {
            path: key.to_path_buf(),
            mode,
        });
    }
    let key_pem = read(key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| pem(key, format!("not a PEM private key: {e}")))?;
    // Deprecated in rustls 0.23.48 only for lacking post-quantum key
    // exchange (aws-lc's); ring is kept for its build cost (module doc).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
        .map(|mut config| {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            config
        })
        .map_err(|e| TlsError::Pair {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            why: e.to_string(),
        })
}

/// A TCP listener whose connections are TLS streams, their handshakes
/// done (see the module doc).
pub struct TlsListener {
    tcp: TcpListener,
    files: Arc<TlsFiles>,
    done_tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    done_rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    /// Handshakes under way (shared with their tasks).
    pending: Arc<std::sync::atomic::AtomicUsize>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, files: Arc<TlsFiles>) -> TlsListener {
        let (done_tx, done_rx) = mpsc::channel(64);
        TlsListener {
            tcp,
            files,
            done_tx,
            done_rx,
            pending: Arc::default(),
        }
    }

    fn handshake(&self, stream: TcpStream, peer: SocketAddr) {
        use std::sync::atomic::Ordering;
        let acceptor = TlsAcceptor::from(self.files.config());
        let done = self.done_tx.clone();
        let pending = self.pending.clone();
        pending.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let shaken = tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(stream)).await;
            pending.fetch_sub(1, Ordering::SeqCst);
            match shaken {
                Ok(Ok(tls)) => {
                    let _ = done.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "TLS handshake took over {HANDSHAKE_LIMIT:?}"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let room = self.pending.load(std::sync::atomic::Ordering::SeqCst) < MAX_HANDSHAKES;
            // Both branches are cancel-safe: nothing is lost when the
            // other one wins.
            tokio::select! {
                Some(done) = self.done_rx.recv() => return done,
                accepted = self.tcp.accept(), if room => match accepted {
                    Ok((stream, peer)) => self.handshake(stream, peer),
                    Err(e) => {
                        // Out of descriptors and the like: wait rather than spin.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                // Full: look again once some handshake may have ended.
                _ = tokio::time::sleep(Duration::from_millis(50)), if !room => {}
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
