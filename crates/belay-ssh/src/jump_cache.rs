//! Shared first jump hops: clients whose chains start with the same jump
//! host (same resolved `user@host:port`, identities, certificates and
//! ProxyCommand) reuse one authenticated connection to it — one
//! authentication, one passphrase or second-factor prompt for a whole
//! fan-out instead of one per node behind it.
//!
//! Each node reached through a shared jump holds one `direct-tcpip`
//! channel on it for its connection's life. OpenSSH does not count those
//! toward MaxSessions, but a connection carrying hundreds of them is one
//! slow pipe: at most [`MAX_USERS_PER_JUMP`] connections ride on one jump
//! connection, and a second one to the same jump is made beyond that.
//! New connections to one jump are made one at a time (sshd's
//! MaxStartups drops bursts of unauthenticated connections), and a failed
//! attempt is remembered for [`FAILURE_MEMORY`], so that the hundred
//! nodes behind a dead jump host fail together instead of each waiting
//! for its own connect timeout in turn.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client::Handle;

use crate::error::SshError;
use crate::resolve::ResolvedHost;
use crate::session::{HopHandler, HopInfo};

/// Connections (nodes) riding on one jump connection at most.
pub const MAX_USERS_PER_JUMP: usize = 64;
/// How long a failed connection to a jump answers for it.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(5);

/// The cache: give the same one to every client that should share (see
/// [`crate::ClientOptions::jump_cache`]).
#[derive(Default)]
pub struct JumpCache {
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
    made: AtomicUsize,
}

impl std::fmt::Debug for JumpCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JumpCache")
            .field("connections_made", &self.connections_made())
            .finish()
    }
}

#[derive(Default)]
struct Slot {
    jumps: Vec<Arc<SharedJump>>,
    failed: Option<(Instant, String, String)>,
}

pub(crate) struct SharedJump {
    handle: Handle<HopHandler>,
    info: HopInfo,
    users: AtomicUsize,
}

/// One connection's use of a shared jump; released when dropped.
pub(crate) struct JumpUse {
    jump: Arc<SharedJump>,
}

impl JumpUse {
    pub(crate) fn handle(&self) -> &Handle<HopHandler> {
        &self.jump.handle
    }

    pub(crate) fn info(&self) -> &HopInfo {
        &self.jump.info
    }
}

impl Drop for JumpUse {
    fn drop(&mut self) {
        self.jump.users.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What makes two first hops the same authenticated connection.
pub(crate) fn key(h: &ResolvedHost) -> String {
    format!(
        "{}@{}:{} id={:?} cert={:?} pc={:?}",
        h.user, h.hostname, h.port, h.identity_files, h.certificate_files, h.proxy_command
    )
}

impl JumpCache {
    /// Jump connections made so far (authentications on jump hosts).
    pub fn connections_made(&self) -> usize {
        self.made.load(Ordering::SeqCst)
    }

    /// A use of a live shared connection for `hop`, made with `connect`
    /// when none has room.
    pub(crate) async fn take<F, Fut>(
        &self,
        hop: &ResolvedHost,
        connect: F,
    ) -> Result<JumpUse, SshError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(Handle<HopHandler>, HopInfo), SshError>>,
    {
        let slot = {
            let mut map = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key(hop)).or_default().clone()
        };
        let mut slot = slot.lock().await;
        slot.jumps.retain(|j| !j.handle.is_closed());
        if let Some(j) = slot
            .jumps
            .iter()
            .find(|j| j.users.load(Ordering::SeqCst) < MAX_USERS_PER_JUMP)
        {
            j.users.fetch_add(1, Ordering::SeqCst);
            return Ok(JumpUse { jump: j.clone() });
        }
        if let Some((at, host, message)) = &slot.failed
            && at.elapsed() < FAILURE_MEMORY
        {
            return Err(SshError::Unreachable {
                hop: host.clone(),
                source: std::io::Error::other(message.clone()),
            });
        }
        match connect().await {
            Ok((handle, info)) => {
                self.made.fetch_add(1, Ordering::SeqCst);
                let jump = Arc::new(SharedJump {
                    handle,
                    info,
                    users: AtomicUsize::new(1),
                });
                slot.jumps.push(jump.clone());
                slot.failed = None;
                Ok(JumpUse { jump })
            }
            Err(e) => {
                let message = match &e {
                    SshError::Unreachable { source, .. } => source.to_string(),
                    other => other.to_string(),
                };
                slot.failed = Some((Instant::now(), hop.alias.clone(), message));
                Err(e)
            }
        }
    }
}
