//! One forward's serving: accept local connections and relay each over a
//! connection its [`Route`] opens on the host's pooled connection (a
//! forwarded channel, or a relay step inside a Slurm job). Self-healing: the
//! listener stays bound whatever the link does; a connection accepted
//! while the link is down waits (up to [`LINK_WAIT`]) for the connection
//! to come back, then proceeds. Per-connection errors are logged and end
//! that connection only.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use belay_ssh::Client;
use tokio::io::{AsyncRead, AsyncWrite};

use super::local::Bound;
use super::route::{Duplex, Route};

/// How long a connection accepted while the link is down waits for it.
pub const LINK_WAIT: Duration = Duration::from_secs(30);

/// Bytes read at once on either side of a relayed connection.
const RELAY_BUFFER: usize = 32 * 1024;

/// What a serving forward shares with its manager.
#[derive(Default)]
pub struct Activity {
    /// Local connections being relayed now.
    pub connections: AtomicUsize,
    /// The last error a connection met (shown by `--list`).
    pub last_error: std::sync::Mutex<Option<String>>,
}

/// Serves `bound` until the task is aborted. Runs on the SSH runtime.
pub async fn serve(bound: Bound, client: Arc<Client>, target: Route, activity: Arc<Activity>) {
    match bound {
        Bound::Tcp(std_listener) => {
            let listener = match tokio::net::TcpListener::from_std(std_listener) {
                Ok(l) => l,
                Err(e) => return tracing::warn!("forward listener: {e}"),
            };
            loop {
                match listener.accept().await {
                    Ok((sock, _)) => {
                        let _ = sock.set_nodelay(true);
                        spawn_one(sock, &client, &target, &activity);
                    }
                    Err(e) => accept_failed(e).await,
                }
            }
        }
        Bound::Unix(std_listener, _) => {
            let listener = match tokio::net::UnixListener::from_std(std_listener) {
                Ok(l) => l,
                Err(e) => return tracing::warn!("forward listener: {e}"),
            };
            loop {
                match listener.accept().await {
                    Ok((sock, _)) => spawn_one(sock, &client, &target, &activity),
                    Err(e) => accept_failed(e).await,
                }
            }
        }
    }
}

/// Out of file descriptors and the like: pause instead of spinning.
async fn accept_failed(e: std::io::Error) {
    tracing::warn!("forward accept: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn spawn_one<S>(sock: S, client: &Arc<Client>, target: &Route, activity: &Arc<Activity>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (client, target, activity) = (client.clone(), target.clone(), activity.clone());
    tokio::spawn(async move {
        activity.connections.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = relay(sock, &client, &target).await {
            tracing::info!(host = %client.alias(), target = %target, "forwarded connection: {e}");
            if let Ok(mut last) = activity.last_error.lock() {
                *last = Some(e.to_string());
            }
        }
        activity.connections.fetch_sub(1, Ordering::SeqCst);
    });
}

async fn relay<S>(
    mut sock: S,
    client: &Client,
    target: &Route,
) -> Result<(), belay_ssh::ForwardError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut channel = open_waiting(client, target, LINK_WAIT).await?;
    // Reads as large as an SSH packet (32 KiB): one packet per read, not
    // four (tokio's default buffer is 8 KiB).
    let _ = tokio::io::copy_bidirectional_with_sizes(
        &mut sock,
        &mut channel,
        RELAY_BUFFER,
        RELAY_BUFFER,
    )
    .await;
    Ok(())
}

/// Opens a forwarded channel, waiting up to `wait` while the link is down.
pub async fn open_waiting(
    client: &Client,
    target: &Route,
    wait: Duration,
) -> Result<std::pin::Pin<Box<dyn Duplex>>, belay_ssh::ForwardError> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(opened) = tokio::time::timeout(left, target.open(client)).await else {
            return Err(belay_ssh::SshError::Timeout {
                host: client.alias().to_string(),
                what: "waiting for the link to come back".into(),
                after: wait,
            }
            .into());
        };
        match opened {
            Ok(stream) => return Ok(stream),
            Err(e) if e.is_transient() && Instant::now() < deadline => {
                tracing::debug!(host = %client.alias(), "forward waits for the link: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
