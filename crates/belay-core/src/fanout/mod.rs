//! Fan-out: one untracked command on many hosts at once (`belay exec`), and
//! the bounded, concurrent machinery other many-host commands share
//! (`belay host check --all`).
//!
//! Nothing here touches the store: a fan-out command is not a job. Every
//! host gets its own connection, made concurrently on the process's one SSH
//! runtime, at most `parallel` hosts in flight. Hosts behind the same jump
//! host share one authenticated connection to it (belay-ssh's
//! [`belay_ssh::JumpCache`]: one authentication, one second-factor prompt),
//! and handshakes with one sshd are paced so that no more than
//! [`HANDSHAKES_PER_GATEWAY`] are in progress there at once — sshd's
//! `MaxStartups 10:30:100` drops bursts beyond 10 unauthenticated
//! connections.
//!
//! - [`targets`]: host words (aliases, `local`, `Host` patterns) to names;
//! - [`exec`]: one command on one host, and how it ended ([`HostResult`]).

pub mod exec;
pub mod targets;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio::sync::Semaphore;

pub use exec::{ExecOptions, HostResult, HostStatus, exec};
pub use targets::expand;

/// Default number of hosts worked on at once.
pub const DEFAULT_PARALLEL: usize = 32;

/// Connection handshakes in progress at once through one gateway (below
/// sshd's default MaxStartups start of 10).
pub const HANDSHAKES_PER_GATEWAY: usize = 8;

/// Paces new connections per gateway: a permit per handshake in progress.
#[derive(Default, Clone)]
pub struct Gateways {
    slots: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl Gateways {
    /// The handshake slots of `gateway` (`host:port` of the first hop).
    pub fn slots(&self, gateway: &str) -> Arc<Semaphore> {
        let mut map = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(gateway.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(HANDSHAKES_PER_GATEWAY)))
            .clone()
    }
}

/// The first hop of `host` (`hostname:port` of its first jump, or of the
/// host itself), where its new connection's handshake happens; `None` for
/// `local` or a name `ssh -G` refuses (its check says why).
pub async fn first_hop(hosts: &crate::hosts::Hosts, host: &str) -> Option<String> {
    if crate::hosts::Hosts::is_local(host) {
        return None;
    }
    let config = hosts.client_options(host).config_file;
    let chain = belay_ssh::resolve(host, config.as_deref()).await.ok()?;
    let first = chain.hops().next()?;
    Some(format!("{}:{}", first.hostname, first.port))
}

/// Runs `work` for every item, at most `parallel` at once, calling `done`
/// with each result as it comes (completion order). The results are
/// returned in the items' order.
pub async fn bounded<I, T, F, Fut>(
    items: Vec<I>,
    parallel: usize,
    work: F,
    mut done: impl FnMut(&T),
) -> Vec<T>
where
    F: Fn(I) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let n = items.len();
    let mut slots: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let work = &work;
    let mut stream = futures_util::stream::iter(items.into_iter().enumerate())
        .map(|(i, item)| async move { (i, work(item).await) })
        .buffer_unordered(parallel.max(1));
    while let Some((i, r)) = stream.next().await {
        done(&r);
        slots[i] = Some(r);
    }
    slots.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_keeps_item_order_and_reports_each_result() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let in_flight = std::sync::atomic::AtomicUsize::new(0);
        let most = std::sync::atomic::AtomicUsize::new(0);
        let mut seen = Vec::new();
        let out = rt.block_on(bounded(
            (0..20u64).collect(),
            3,
            |i| {
                let (in_flight, most) = (&in_flight, &most);
                async move {
                    use std::sync::atomic::Ordering::SeqCst;
                    let now = in_flight.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    // Later items finish first: completion order differs.
                    tokio::time::sleep(std::time::Duration::from_millis(20 - i)).await;
                    in_flight.fetch_sub(1, SeqCst);
                    i * 10
                }
            },
            |r| seen.push(*r),
        ));
        assert_eq!(out, (0..20u64).map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(seen.len(), 20);
        assert_ne!(seen, out, "done is called in completion order");
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
