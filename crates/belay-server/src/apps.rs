//! Ending an app (`belay app stop`, `DELETE /v1/jobs/{job}/app`): its job
//! cancelled (the server gets TERM, then KILL after the grace), its
//! forwards stopped, and its socket removed if the server left it behind
//! and nothing accepts on it (checked with a connect, never removed
//! blindly). The same code serves the daemon and `--no-daemon`.

use belay_core::engine::Engine;
use belay_core::job::{Job, JobState};
use serde::Serialize;

use crate::forwards::{Forwards, ForwardsError, Which};

/// How an app was ended.
#[derive(Debug, Serialize)]
pub struct AppStopped {
    pub job: String,
    /// The job's state afterwards (`cancelled`, or how it had ended).
    pub state: JobState,
    /// Forwards to it that were stopped.
    pub forwards_stopped: usize,
    /// What became of its socket on the node.
    pub socket: String,
}

/// Why an app could not be stopped.
#[derive(Debug, thiserror::Error)]
pub enum AppStopError {
    #[error(transparent)]
    Core(#[from] belay_core::CoreError),
    #[error(transparent)]
    Forwards(#[from] ForwardsError),
    /// The cancel did not take (the host did not answer, say).
    #[error("job {id} is still {state} after the cancel: {why}")]
    StillLive {
        id: String,
        state: JobState,
        why: String,
    },
}

/// Ends the app job `reference` names (bad input if it is not an app).
pub fn stop(
    engine: &mut Engine,
    forwards: &Forwards,
    reference: &str,
    grace_secs: u32,
) -> Result<AppStopped, AppStopError> {
    let job: Job = engine.store().resolve(reference)?;
    if belay_core::apps::app_of(&job).is_none() {
        return Err(belay_core::CoreError::BadInput(format!(
            "job {} is not an app (`belay cancel {}` ends any job)",
            job.id, job.id
        ))
        .into());
    }
    let mut after = job.clone();
    for (_, outcome) in engine.cancel_references(std::slice::from_ref(&job.id), grace_secs)? {
        match outcome {
            Some(Ok(j)) => after = j,
            Some(Err(e)) => {
                return Err(AppStopError::StillLive {
                    id: job.id.clone(),
                    state: job.state,
                    why: e.to_string(),
                });
            }
            None => {}
        }
    }
    if after.state.is_live() {
        return Err(AppStopError::StillLive {
            id: job.id.clone(),
            state: after.state,
            why: after.reason.clone().unwrap_or_default(),
        });
    }
    let forwards_stopped = match forwards.stop(engine, &Which::Job(job.id.clone())) {
        Ok(stopped) => stopped.len(),
        Err(ForwardsError::NotFound(_)) => 0,
        Err(e) => return Err(e.into()),
    };
    let socket = engine.clear_app_socket(&job)?;
    Ok(AppStopped {
        job: job.id,
        state: after.state,
        forwards_stopped,
        socket,
    })
}
