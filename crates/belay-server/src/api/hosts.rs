//! `/v1/hosts`: the hosts belay knows, as `belay host … --json` shows them
//! (the shapes are belay-core's `hosts::view`).
//!
//! - `GET /v1/hosts`: every host (local, config.toml, met by jobs) with
//!   health and job counts;
//! - `GET /v1/hosts/{host}`: how it is reached (every hop as `ssh -G`
//!   resolves it), belay's extras and health;
//! - `POST /v1/hosts/{host}/checks`: connect afresh and time round trips;
//!   `ok: false` with the real error;
//! - `GET /v1/hosts/{host}/key`: the key the host offers now and what
//!   known_hosts holds for it (nothing recorded);
//! - `PUT /v1/hosts/{host}/key` (`{"fingerprint": "SHA256:…", "replace":
//!   false}`): record the key the host offers, only if it has exactly that
//!   fingerprint (the client confirmed it with its user, on its own
//!   terminal), never over a different recorded key without `replace`;
//! - `DELETE /v1/hosts/{host}/key`: forget the host's known_hosts entries.
//!
//! The checks and both key requests connect for the client: they answer
//! as JSON lines ([`super::relayed`]), so a jump host's passphrase or
//! second factor is asked on the client's terminal.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use belay_core::hosts::Hosts;
use belay_core::hosts::view::{chain_json, check_json, host_rows};
use belay_core::store::HostHealth;
use belay_core::time::now_ms;
use belay_ssh::RecordedHostKey;
use serde::Deserialize;
use serde_json::{Value, json};

use super::relayed::relayed;
use super::{ApiError, blocking};
use crate::state::Shared;

pub async fn list(State(state): State<Shared>) -> Result<Json<Value>, ApiError> {
    let hosts = state.hosts.clone();
    blocking(&state, move |engine| {
        let rows = host_rows(&hosts, engine.store(), now_ms())?;
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
            &hosts.config()?.host(&host),
            &health,
        )))
    })
    .await
}

pub async fn check(
    State(state): State<Shared>,
    headers: axum::http::HeaderMap,
    Path(host): Path<String>,
) -> axum::response::Response {
    let hosts = state.hosts.clone();
    relayed(&state, &headers, move |engine, relay| {
        hosts.validate(&host)?;
        let _route = relay.route(&host);
        Ok(check_json(&host, &engine.check_host(&host)))
    })
}

/// What known_hosts holds for the host, next to the key it offers.
fn recorded_json(recorded: &RecordedHostKey) -> Value {
    let (state, at) = match recorded {
        RecordedHostKey::Nothing => ("nothing", None),
        RecordedHostKey::Same(f, l) => ("same", Some((f, l))),
        RecordedHostKey::Different(f, l) => ("different", Some((f, l))),
        RecordedHostKey::Revoked(f, l) => ("revoked", Some((f, l))),
    };
    json!({
        "state": state,
        "file": at.map(|(f, _)| f),
        "line": at.map(|(_, l)| l),
    })
}

/// `GET /v1/hosts/{host}/key`: the key the host offers now (nothing is
/// recorded), and what known_hosts holds for it. A client shows the
/// fingerprint, asks its user, then `PUT`s it.
pub async fn offered(
    State(state): State<Shared>,
    headers: axum::http::HeaderMap,
    Path(host): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    no_key_for_local(&host)?;
    let hosts = state.hosts.clone();
    Ok(relayed(&state, &headers, move |_, relay| {
        // Jump hosts on the way log in: their questions go to the client.
        let _route = relay.route(&host);
        let scanned = hosts.scan_key(&host)?;
        Ok(json!({
            "host": host,
            "hostname": scanned.hostname,
            "port": scanned.port,
            "algorithm": scanned.algorithm,
            "fingerprint": scanned.fingerprint,
            "recorded": recorded_json(&scanned.recorded),
        }))
    }))
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
    headers: axum::http::HeaderMap,
    Path(host): Path<String>,
    body: Result<Json<TrustBody>, JsonRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Json(body) = body?;
    no_key_for_local(&host)?;
    let hosts = state.hosts.clone();
    Ok(relayed(&state, &headers, move |_, relay| {
        let _route = relay.route(&host);
        let scanned = hosts.scan_key(&host)?;
        scanned
            .may_record(body.replace)
            .map_err(belay_core::CoreError::from)?;
        scanned
            .matches(&body.fingerprint)
            .map_err(belay_core::CoreError::from)?;
        let already = matches!(scanned.recorded, RecordedHostKey::Same(..));
        let (file, line) = hosts.trust_key(&scanned, body.replace)?;
        // The pooled connection was verified against the old known_hosts:
        // its trust stamp no longer matches, so the next use reconnects.
        Ok(json!({
            "host": host,
            "fingerprint": scanned.fingerprint,
            "algorithm": scanned.algorithm,
            "file": file,
            "line": line,
            "already": already,
        }))
    }))
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
