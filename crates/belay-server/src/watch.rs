//! One watcher of the store for every live view (`GET /v1/events`, the
//! dashboard): it reads the jobs and hosts every [`POLL`] while at least
//! one stream listens, diffs them with its last reading, and broadcasts
//! what changed. Ten dashboards cost one poller, and no view ever makes a
//! remote call: the daemon's background passes keep the store current,
//! and this only reads it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use belay_core::home::BelayHome;
use belay_core::hosts::Hosts;
use belay_core::hosts::view::host_rows;
use belay_core::job::view::JobView;
use belay_core::store::{JobFilter, Store};
use belay_core::time::now_ms;
use serde_json::Value;
use tokio::sync::broadcast;

/// How often the store is read while someone watches.
pub const POLL: Duration = Duration::from_millis(500);
/// The newest jobs a reading holds (live ones and those of the last day).
const MOST_JOBS: u64 = 2000;
/// Ended jobs older than this are left out (the timeline's span).
const DAY_MS: i64 = 24 * 3600 * 1000;

/// One job as views show it, with its owner for per-user filtering.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: String,
    pub owner: Option<String>,
    pub view: Value,
}

/// Everything a view shows, as last read.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub jobs: Vec<JobRow>,
    pub hosts: Vec<Value>,
}

/// What changed between two readings.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// New or changed jobs.
    pub jobs: Vec<JobRow>,
    /// Jobs no longer shown (older than a day, or removed).
    pub gone: Vec<JobRow>,
    /// Every host, when any changed.
    pub hosts: Option<Vec<Value>>,
}

/// The shared watcher: subscribe with [`Watch::listen`].
pub struct Watch {
    home: BelayHome,
    hosts: Arc<Hosts>,
    sender: broadcast::Sender<Arc<Change>>,
    latest: Mutex<Option<Arc<Snapshot>>>,
    listeners: AtomicUsize,
    /// Readings made (for tests and `/v1/daemon`): one per [`POLL`] while
    /// anyone listens, however many do.
    pub readings: AtomicUsize,
    polling: Mutex<bool>,
}

/// A listener: changes arrive on `changes`; dropping it stops the poller
/// once no other listens.
pub struct Listener {
    pub changes: broadcast::Receiver<Arc<Change>>,
    watch: Arc<Watch>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.watch.listeners.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Watch {
    pub fn new(home: BelayHome, hosts: Arc<Hosts>) -> Self {
        let (sender, _) = broadcast::channel(64);
        Self {
            home,
            hosts,
            sender,
            latest: Mutex::new(None),
            listeners: AtomicUsize::new(0),
            readings: AtomicUsize::new(0),
            polling: Mutex::new(false),
        }
    }

    /// Streams open now.
    pub fn listeners(&self) -> usize {
        self.listeners.load(Ordering::SeqCst)
    }

    /// Subscribe, then the current snapshot (read now if none is kept):
    /// changes after it arrive on the listener, none is missed.
    pub async fn listen(
        self: &Arc<Self>,
    ) -> Result<(Listener, Arc<Snapshot>), belay_core::CoreError> {
        let listener = Listener {
            changes: self.sender.subscribe(),
            watch: self.clone(),
        };
        self.listeners.fetch_add(1, Ordering::SeqCst);
        self.start_polling();
        let kept = self.latest.lock().expect("latest lock").clone();
        let snapshot = match kept {
            Some(s) => s,
            None => self.read().await?,
        };
        Ok((listener, snapshot))
    }

    fn start_polling(self: &Arc<Self>) {
        let mut polling = self.polling.lock().expect("polling lock");
        if *polling {
            return;
        }
        *polling = true;
        let watch = self.clone();
        tokio::spawn(async move { watch.poll().await });
    }

    async fn poll(self: Arc<Self>) {
        loop {
            {
                let mut polling = self.polling.lock().expect("polling lock");
                if self.listeners() == 0 {
                    *polling = false;
                    // The next listener reads afresh: a kept snapshot
                    // would be stale by then.
                    *self.latest.lock().expect("latest lock") = None;
                    return;
                }
            }
            let before = self.latest.lock().expect("latest lock").clone();
            match self.read().await {
                Ok(now) => {
                    if let Some(before) = before {
                        let change = diff(&before, &now);
                        if !change.is_empty() {
                            let _ = self.sender.send(Arc::new(change));
                        }
                    }
                }
                Err(e) => tracing::warn!("the store watcher could not read the store: {e}"),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Read the store once; the result becomes the kept snapshot.
    async fn read(&self) -> Result<Arc<Snapshot>, belay_core::CoreError> {
        let home = self.home.clone();
        let hosts = self.hosts.clone();
        let snapshot = tokio::task::spawn_blocking(move || read_store(&home, &hosts))
            .await
            .map_err(|e| belay_core::CoreError::Io {
                what: "the store watcher".into(),
                source: std::io::Error::other(e.to_string()),
            })??;
        self.readings.fetch_add(1, Ordering::SeqCst);
        let snapshot = Arc::new(snapshot);
        *self.latest.lock().expect("latest lock") = Some(snapshot.clone());
        Ok(snapshot)
    }
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty() && self.gone.is_empty() && self.hosts.is_none()
    }
}

fn read_store(home: &BelayHome, hosts: &Hosts) -> belay_core::error::Result<Snapshot> {
    let store = Store::open(&home.store_path())?;
    let now = now_ms();
    let since = now - DAY_MS;
    let jobs = store.list(&JobFilter {
        all: true,
        host: None,
        owner: None,
        page: Some((0, MOST_JOBS)),
    })?;
    let jobs = jobs
        .iter()
        .filter(|j| j.state.is_live() || j.ended_at.unwrap_or(j.updated_at) >= since)
        .map(|j| JobRow {
            id: j.id.clone(),
            owner: j.owner.clone(),
            view: serde_json::to_value(JobView::new(j)).unwrap_or(Value::Null),
        })
        .collect();
    let rows = host_rows(hosts, &store, now)?;
    Ok(Snapshot { jobs, hosts: rows })
}

/// What `now` changes from `before`.
pub fn diff(before: &Snapshot, now: &Snapshot) -> Change {
    let old: HashMap<&str, &JobRow> = before.jobs.iter().map(|j| (j.id.as_str(), j)).collect();
    let new: HashMap<&str, &JobRow> = now.jobs.iter().map(|j| (j.id.as_str(), j)).collect();
    let jobs = now
        .jobs
        .iter()
        .filter(|j| old.get(j.id.as_str()).copied() != Some(*j))
        .cloned()
        .collect();
    let gone = before
        .jobs
        .iter()
        .filter(|j| !new.contains_key(j.id.as_str()))
        .cloned()
        .collect();
    let hosts = (before.hosts != now.hosts).then(|| now.hosts.clone());
    Change { jobs, gone, hosts }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(id: &str, state: &str) -> JobRow {
        JobRow {
            id: id.into(),
            owner: None,
            view: json!({"id": id, "state": state}),
        }
    }

    #[test]
    fn a_diff_holds_only_what_changed() {
        let before = Snapshot {
            jobs: vec![
                row("a", "running"),
                row("b", "running"),
                row("c", "running"),
            ],
            hosts: vec![json!({"host": "local", "health": "ok"})],
        };
        let now = Snapshot {
            jobs: vec![
                row("d", "pending"),
                row("a", "succeeded"),
                row("b", "running"),
            ],
            hosts: before.hosts.clone(),
        };
        let change = diff(&before, &now);
        let ids: Vec<_> = change.jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids, ["d", "a"]);
        assert_eq!(change.gone.len(), 1);
        assert_eq!(change.gone[0].id, "c");
        assert!(change.hosts.is_none(), "no host changed");
        assert!(diff(&now, &now).is_empty());
        let mut moved = now.clone();
        moved.hosts = vec![json!({"host": "local", "health": "unreachable"})];
        assert_eq!(diff(&now, &moved).hosts.unwrap().len(), 1);
    }
}
