//! `/v1/hosts`: the hosts belay knows, as `belay host … --json` shows them
//! (the shapes are belay-core's `hosts::view`).
//!
//! - `GET /v1/hosts`: every host (local, config.toml, met by jobs) with
//!   health and job counts;
//! - `GET /v1/hosts/{host}`: how it is reached (every hop as `ssh -G`
//!   resolves it), belay's extras and health;
//! - `POST /v1/hosts/{host}/checks`: connect (through the daemon's pooled
//!   connection) and time round trips; `ok: false` with the real error;
//! - `PUT /v1/hosts/{host}/key` (`{"fingerprint": "SHA256:…", "replace":
//!   false}`): record the key the host offers, only if it has exactly that
//!   fingerprint (an API has no terminal to confirm on), never over a
//!   different recorded key without `replace`;
//! - `DELETE /v1/hosts/{host}/key`: forget the host's known_hosts entries.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use belay_core::hosts::Hosts;
use belay_core::hosts::view::{chain_json, check_json, health_json};
use belay_core::store::HostHealth;
use belay_core::time::now_ms;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, blocking};
use crate::state::Shared;

pub async fn list(State(state): State<Shared>) -> Result<Json<Value>, ApiError> {
    let hosts = state.hosts.clone();
    blocking(&state, move |engine| {
        let now = now_ms();
        let names = hosts.known_names(engine.store().host_names()?);
        let mut rows = Vec::new();
        for name in &names {
            let (live, total) = engine.store().host_job_counts(name)?;
            rows.push(health_json(
                name,
                live,
                total,
                &engine.host_health(name)?,
                now,
            ));
        }
        Ok(Json(json!({ "hosts": rows })))
    })
    .await
}

pub async fn show(
    State(state): State<Shared>,
    Path(host): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let hosts = state.hosts.clone();
    let home = state.home.clone();
    blocking(&state, move |engine| {
        if Hosts::is_local(&host) {
            return Ok(Json(
                json!({"host": "local", "embedded": true, "workroot": home.local_workroot()}),
            ));
        }
        let chain = hosts.resolve(&host)?;
        let health: HostHealth = engine.host_health(&host)?;
        Ok(Json(chain_json(
            &host,
            &chain,
            &hosts.config().host(&host),
            &health,
        )))
    })
    .await
}

pub async fn check(
    State(state): State<Shared>,
    Path(host): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let hosts = state.hosts.clone();
    blocking(&state, move |engine| {
        hosts.validate(&host)?;
        Ok(Json(check_json(&host, &engine.check_host(&host))))
    })
    .await
}

#[derive(Deserialize)]
pub struct TrustBody {
    fingerprint: String,
    #[serde(default)]
    replace: bool,
}

fn no_key_for_local(host: &str) -> Result<(), ApiError> {
    if Hosts::is_local(host) {
        return Err(ApiError::bad_input(
            "'local' is the embedded host: it has no host key",
        ));
    }
    Ok(())
}

pub async fn trust(
    State(state): State<Shared>,
    Path(host): Path<String>,
    body: Result<Json<TrustBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body?;
    no_key_for_local(&host)?;
    let hosts = state.hosts.clone();
    blocking(&state, move |_| {
        let scanned = hosts.scan_key(&host)?;
        scanned
            .may_record(body.replace)
            .map_err(belay_core::CoreError::from)?;
        scanned
            .matches(&body.fingerprint)
            .map_err(belay_core::CoreError::from)?;
        let already = matches!(scanned.recorded, belay_ssh::RecordedHostKey::Same(..));
        let (file, line) = hosts.trust_key(&scanned, body.replace)?;
        Ok(Json(json!({
            "host": host,
            "fingerprint": scanned.fingerprint,
            "algorithm": scanned.algorithm,
            "file": file,
            "line": line,
            "already": already,
        })))
    })
    .await
}

pub async fn forget(
    State(state): State<Shared>,
    Path(host): Path<String>,
) -> Result<Json<Value>, ApiError> {
    no_key_for_local(&host)?;
    let hosts = state.hosts.clone();
    blocking(&state, move |_| {
        let removed: Vec<Value> = hosts
            .forget_key(&host)?
            .into_iter()
            .map(|(file, line)| json!({"file": file, "line": line}))
            .collect();
        Ok(Json(json!({ "host": host, "removed": removed })))
    })
    .await
}
