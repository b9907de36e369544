//! The daemon's background loop: moves work forward with no terminal open.
//! Every pass reconciles the live jobs (one probe per host, through the
//! pooled connections) so the store stays current; a request that follows
//! or waits for a job, or a new submit, wakes it early.

use std::time::Duration;

use belay_core::store::JobFilter;

use crate::state::Shared;

/// Between passes while some job is live.
const BUSY_INTERVAL: Duration = Duration::from_secs(2);
/// Between passes with nothing live.
const IDLE_INTERVAL: Duration = Duration::from_secs(30);

pub async fn run(state: Shared) {
    loop {
        let live = pass(&state).await;
        let interval = if live > 0 {
            BUSY_INTERVAL
        } else {
            IDLE_INTERVAL
        };
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = state.nudge.notified() => {}
        }
    }
}

/// One pass; returns how many live jobs there are.
async fn pass(state: &Shared) -> usize {
    let state = state.clone();
    let outcome = tokio::task::spawn_blocking(move || -> belay_core::error::Result<usize> {
        if !state.home.store_exists() {
            return Ok(0);
        }
        let mut engine = state.engine()?;
        let (jobs, problems) = engine.list(&JobFilter {
            all: false,
            host: None,
        })?;
        for p in problems {
            tracing::info!(host = %p.host, "background reconcile: {}", p.error);
        }
        Ok(jobs.iter().filter(|j| j.state.is_live()).count())
    })
    .await;
    match outcome {
        Ok(Ok(live)) => live,
        Ok(Err(e)) => {
            tracing::warn!("background pass: {e}");
            0
        }
        Err(e) => {
            tracing::warn!("background pass failed: {e}");
            0
        }
    }
}

/// Is there work that keeps an idle daemon alive (queued submits, recorded
/// cancels, outputs to fetch)? Live jobs alone do not: the next command
/// reconciles them.
pub async fn has_work(_state: &Shared) -> bool {
    false
}
