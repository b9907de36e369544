//! `/v1/jobs/{job}/app`: where an app job (`belay app`) listens on its
//! node, once it does. The answer carries the app's token: the API is the
//! job owner's (the socket's peer is checked; a later TCP listener checks
//! per-user tokens), and the token goes nowhere else — not the store, not
//! a log.
//!
//! `{"state": "starting"}`, `{"state": "ended"}` (its job is over or
//! held), or `{"state": "ready", "remote": "/path.sock" | "127.0.0.1:PORT",
//! "path": "/lab", "token": "…" | null}`. A job that is not an app is bad
//! input. `DELETE` ends the app (`belay app stop`).

use axum::Json;
use axum::extract::{Path, State};
use belay_core::apps::scripts::Readiness;
use serde_json::{Value, json};

use super::{ApiError, blocking};
use crate::state::Shared;

pub async fn show(
    State(state): State<Shared>,
    Path(reference): Path<String>,
) -> Result<Json<Value>, ApiError> {
    blocking(&state, move |engine| {
        let (job, _) = engine.job(&reference)?;
        if belay_core::apps::app_of(&job).is_none() {
            return Err(ApiError::bad_input(format!(
                "job {} is not an app (`belay app run` starts one)",
                job.id
            )));
        }
        Ok(Json(match engine.app_readiness(&job)? {
            Readiness::Starting => json!({"state": "starting", "job": job.id}),
            Readiness::Ended => json!({"state": "ended", "job": job.id}),
            Readiness::Ready(l) => json!({
                "state": "ready",
                "job": job.id,
                "remote": l.remote,
                "path": l.path,
                "token": l.token,
            }),
        }))
    })
    .await
}

/// `DELETE /v1/jobs/{job}/app`: end the app — its job cancelled, its
/// forwards stopped, its socket removed if left behind and unused.
pub async fn stop(
    State(state): State<Shared>,
    Path(reference): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let forwards = state.forwards.clone();
    blocking(&state, move |engine| {
        let stopped = crate::apps::stop(
            engine,
            &forwards,
            &reference,
            belay_core::engine::cancel::DEFAULT_GRACE_SECS,
        )
        .map_err(|e| match e {
            crate::apps::AppStopError::Core(core) => ApiError::from(core),
            crate::apps::AppStopError::Forwards(f) => ApiError::from(f),
            still @ crate::apps::AppStopError::StillLive { .. } => {
                ApiError::refused(still.to_string())
            }
        })?;
        Ok(Json(json!(stopped)))
    })
    .await
}
