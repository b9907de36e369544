//! `/v1/daemon`: who answers (`GET`: version, build, pid, home, how busy)
//! and stopping it (`DELETE`: finishes the requests under way, then exits;
//! `belay serve --stop`).

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

use crate::state::Shared;

pub async fn show(State(state): State<Shared>) -> Json<serde_json::Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "build": crate::build::identity(),
        "pid": std::process::id(),
        "home": state.home.root().display().to_string(),
        "started_at": belay_core::job::view::rfc3339(state.started_at),
        "listen": state.listen.get().map(|l| l.addr.to_string()),
        "tls": state.listen.get().is_some_and(|l| l.tls),
        // This request included.
        "requests_in_flight": state.in_flight.load(Ordering::SeqCst),
        // Served since it started, this one included.
        "requests_served": state.served.load(Ordering::Relaxed),
        // Live views (`GET /v1/events`, dashboards) open now, and the
        // store readings their one shared watcher has made.
        "event_streams": state.watch.listeners(),
        "watch_readings": state.watch.readings.load(Ordering::SeqCst),
        // Remote commands (scripts, execs, streams) asked of any host so
        // far: what reads only the store adds none.
        "remote_commands": belay_ssh::remote_commands(),
        "ssh_config": state.ssh_config.as_ref().map(|p| p.display().to_string()),
    }))
}

pub async fn stop(State(state): State<Shared>) -> (StatusCode, Json<serde_json::Value>) {
    state.shutdown.notify_one();
    (
        StatusCode::ACCEPTED,
        Json(json!({ "stopping": true, "pid": std::process::id() })),
    )
}
