//! `/v1/forwards`: the daemon's forwards ([`crate::forwards`]).
//!
//! - `POST /v1/forwards` (`{"to": JOB|HOST, "spec": "[LOCAL:]REMOTE"}`):
//!   check that the host forwards there, bind the local end, record and
//!   serve it; answers the forward with its local address (`local`);
//! - `GET /v1/forwards`: every recorded forward, with its state
//!   (`listening`, `job ended`, …) and connections in flight;
//! - `DELETE /v1/forwards/{id}`: stop one; `DELETE /v1/forwards?job=REF`
//!   stops a job's, `DELETE /v1/forwards?all=true` every one.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, blocking};
use crate::forwards::{ForwardsError, Which};
use crate::state::Shared;

impl From<ForwardsError> for ApiError {
    fn from(e: ForwardsError) -> Self {
        match e {
            ForwardsError::Core(core) => core.into(),
            ForwardsError::NotFound(message) => ApiError::not_found(message),
            ForwardsError::Forward(belay_ssh::ForwardError::Link(link)) => {
                ApiError::from(belay_core::CoreError::Transport(
                    belay_core::transport::ssh::map_error(&host_of(&link), link),
                ))
            }
            other => ApiError::refused(other.to_string()),
        }
    }
}

fn host_of(e: &belay_ssh::SshError) -> String {
    match e {
        belay_ssh::SshError::Unreachable { hop, .. } => hop.clone(),
        belay_ssh::SshError::LinkLost { host, .. }
        | belay_ssh::SshError::HostNotResponding { host, .. }
        | belay_ssh::SshError::Timeout { host, .. }
        | belay_ssh::SshError::Channel { host, .. }
        | belay_ssh::SshError::NoShell { host, .. }
        | belay_ssh::SshError::Protocol { host, .. }
        | belay_ssh::SshError::Resolve { host, .. } => host.clone(),
        _ => String::new(),
    }
}

#[derive(Deserialize)]
pub struct OpenRequest {
    to: String,
    spec: String,
}

pub async fn open(
    State(state): State<Shared>,
    body: Result<Json<OpenRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(request) = body?;
    let forwards = state.forwards.clone();
    blocking(&state, move |engine| {
        let view = forwards.open(engine, &request.to, &request.spec)?;
        Ok((StatusCode::CREATED, Json(json!(view))))
    })
    .await
}

pub async fn list(
    State(state): State<Shared>,
    caller: Option<axum::Extension<super::access::Caller>>,
) -> Result<Json<Value>, ApiError> {
    let caller = super::access::Caller::of(caller);
    let forwards = state.forwards.clone();
    blocking(&state, move |engine| {
        let mut views = forwards.list(engine)?;
        if !caller.sees_all() {
            // A user's token sees the forwards to its own jobs only.
            let mut own = Vec::with_capacity(views.len());
            for view in views {
                if let Some(job) = &view.record.job_id
                    && let Some(owner) = engine.store().job_owner(job)?
                    && caller.may_see(owner.as_deref())
                {
                    own.push(view);
                }
            }
            views = own;
        }
        Ok(Json(json!({ "forwards": views })))
    })
    .await
}

#[derive(Deserialize)]
pub struct StopQuery {
    job: Option<String>,
    all: Option<bool>,
}

pub async fn stop_many(
    State(state): State<Shared>,
    query: Result<Query<StopQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    let which = match (q.job, q.all) {
        (Some(job), _) => Which::Job(job),
        (None, Some(true)) => Which::All,
        _ => {
            return Err(ApiError::bad_input(
                "say which forwards to stop: ?job=REF or ?all=true (or DELETE /v1/forwards/{id})",
            ));
        }
    };
    stop(state, which).await
}

pub async fn stop_one(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    stop(state, Which::Id(id)).await
}

async fn stop(state: Shared, which: Which) -> Result<Json<Value>, ApiError> {
    let forwards = state.forwards.clone();
    blocking(&state, move |engine| {
        Ok(Json(json!({ "stopped": forwards.stop(engine, &which)? })))
    })
    .await
}
