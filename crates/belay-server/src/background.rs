//! The daemon's background loop: moves work forward with no terminal open.
//! Each host with work is passed over on its own clock
//! ([`belay_core::engine::advance`]): reconcile its live jobs (recorded
//! cancels first, then queued and interrupted submits), then fetch the
//! outputs of jobs that ended. How soon a host is looked at again comes
//! from what its pass saw ([`next_interval`]: fast while a job starts,
//! ends or is followed, slow at rest, backing off while the host is away),
//! with jitter so that many hosts never move in step. A submit nudges the
//! loop to read the hosts with work again (a new host is looked at at
//! once); a follower or a waiter marks its host followed (the fast
//! interval), without a pass of its own: the follower reconciles itself.
//!
//! At most one pass per host is under way at any time, so a host that
//! hangs delays only itself.
//!
//! [`restore_forwards`] binds the recorded forwards again when the daemon
//! starts; [`forwards`] closes a job's forward once a pass has seen the
//! job end.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use belay_core::engine::advance::{BUSY_INTERVAL, HostPass, next_interval};
use belay_core::job::JobState;

use crate::state::Shared;

/// How often the schedule is looked at (a pass that came due waits at most
/// this long).
const TICK: Duration = Duration::from_millis(100);

/// How often the list of hosts with work is read again from the store
/// when nothing nudged the loop (a command working directly may have added
/// a job meanwhile).
const HOSTS_REFRESH: Duration = Duration::from_secs(5);

pub async fn run(state: Shared) {
    let due: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut hosts: Vec<String> = Vec::new();
    let mut hosts_read: Option<Instant> = None;
    loop {
        if hosts_read.is_none_or(|t| t.elapsed() >= HOSTS_REFRESH) {
            hosts = hosts_with_work(&state).await;
            hosts_read = Some(Instant::now());
        }
        let now = Instant::now();
        for host in &hosts {
            let is_due = due
                .lock()
                .expect("schedule lock")
                .get(host)
                .is_none_or(|at| *at <= now);
            if !is_due || !running.lock().expect("running lock").insert(host.clone()) {
                continue;
            }
            let (state, due, running, host) =
                (state.clone(), due.clone(), running.clone(), host.clone());
            tokio::task::spawn_blocking(move || {
                let next = match pass(&state, &host) {
                    Ok(p) => jitter(next_interval(&p, state.is_followed(&host))),
                    Err(e) => {
                        tracing::warn!(host = %host, "background pass: {e}");
                        Duration::from_secs(5)
                    }
                };
                due.lock()
                    .expect("schedule lock")
                    .insert(host.clone(), Instant::now() + next);
                running.lock().expect("running lock").remove(&host);
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = state.nudge.notified() => {
                // A submit: read the hosts again, and look at its host
                // soon — not at once: a pass now would only compete with
                // the submit's own round trips on the same connection.
                hosts_read = None;
                let soon = Instant::now() + BUSY_INTERVAL;
                let woken: Vec<String> =
                    std::mem::take(&mut *state.woken.lock().expect("woken lock"));
                let mut due = due.lock().expect("schedule lock");
                for host in woken {
                    let at = due.entry(host).or_insert(soon);
                    *at = (*at).min(soon);
                }
            }
        }
    }
}

fn pass(state: &Shared, host: &str) -> belay_core::error::Result<HostPass> {
    let mut engine = state.engine()?;
    let pass = engine.advance_host(&state.home, host)?;
    if let Some(error) = &pass.error {
        tracing::info!(host = %host, "host away: {error}");
    }
    for p in &pass.problems {
        tracing::info!(host = %host, "{}", p.error);
    }
    for id in &pass.outputs_fetched {
        tracing::info!(host = %host, job = %id, "outputs fetched");
    }
    Ok(pass)
}

/// ±10 %, from the clock's low bits: enough to keep hosts apart.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let factor = 0.9 + f64::from(nanos % 1000) / 1000.0 * 0.2;
    d.mul_f64(factor)
}

async fn hosts_with_work(state: &Shared) -> Vec<String> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        if !state.home.store_exists() {
            return Vec::new();
        }
        match state.engine().and_then(|e| e.hosts_with_work()) {
            Ok(hosts) => hosts,
            Err(e) => {
                tracing::warn!("background: {e}");
                Vec::new()
            }
        }
    })
    .await
    .unwrap_or_default()
}

/// Is there work that keeps an idle daemon alive: a submit queued or under
/// way, a live job whose outputs must be fetched when it ends, outputs
/// still owed? A live job alone does not (the next command reconciles it).
pub async fn has_work(state: &Shared) -> bool {
    let state = state.clone();
    tokio::task::spawn_blocking(move || -> belay_core::error::Result<bool> {
        if !state.home.store_exists() {
            return Ok(false);
        }
        let engine = state.engine()?;
        let store = engine.store();
        let waiting = store.reconcilable(None, 0)?.iter().any(|j| {
            matches!(j.state, JobState::Queued | JobState::Submitting)
                || (j.state.is_live() && !j.outputs.is_empty())
        });
        Ok(waiting || !store.outputs_due(None)?.is_empty())
    })
    .await
    .map(|r| r.unwrap_or(true))
    .unwrap_or(true)
}

/// How often the forwards of jobs are compared with their jobs' states.
const FORWARDS_STEP: Duration = Duration::from_secs(1);

/// Binds the forwards a killed daemon left recorded (before the API
/// answers, so the first `forward --list` sees them listening).
pub async fn restore_forwards(state: &Shared) {
    let restoring = state.clone();
    let restored = tokio::task::spawn_blocking(move || {
        if !restoring.home.store_exists() {
            return Ok(());
        }
        let mut engine = restoring.engine().map_err(|e| e.to_string())?;
        restoring
            .forwards
            .restore(&mut engine)
            .map_err(|e| e.to_string())
    })
    .await;
    if let Ok(Err(e)) = restored {
        tracing::warn!("restoring forwards: {e}");
    }
}

/// Closes each job's forward once the store says the job ended (the
/// passes of [`run`] record the end).
pub async fn forwards(state: Shared) {
    loop {
        tokio::time::sleep(FORWARDS_STEP).await;
        if !state.forwards.has_job_forwards() {
            continue;
        }
        let state = state.clone();
        let swept = tokio::task::spawn_blocking(move || {
            let mut engine = state.engine().map_err(|e| e.to_string())?;
            state
                .forwards
                .close_ended_jobs(&mut engine)
                .map_err(|e| e.to_string())
        })
        .await;
        if let Ok(Err(e)) = swept {
            tracing::warn!("forwards of ended jobs: {e}");
        }
    }
}
