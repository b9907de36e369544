//! `GET /v1/jobs/{job}/events`: one job as the store has it, with its
//! event log, read from the store only (no probe of its host, unlike
//! `GET /v1/jobs/{job}`). What the dashboard's job page shows: the
//! daemon's own passes keep the store current, so a page costs no remote
//! call.

use axum::Json;
use axum::extract::{Path, State};
use belay_core::job::view::JobView;
use serde_json::json;

use super::{ApiError, blocking};
use crate::state::Shared;

pub async fn show(
    State(state): State<Shared>,
    Path(reference): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    blocking(&state, move |engine| {
        let job = engine.store().resolve(&reference)?;
        let events = engine.store().events(&job.id)?;
        Ok(Json(json!({ "job": JobView::with_events(&job, &events) })))
    })
    .await
}
