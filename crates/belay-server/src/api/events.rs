//! `GET /v1/events`: jobs and hosts as they change, as server-sent events
//! (what the dashboard shows live). The first event, `snapshot`, holds
//! every job of the last 24 hours (live ones whatever their age) and every
//! host; each `change` after it holds the jobs that are new or changed,
//! the ids of those no longer shown (`gone`) and, when any host changed,
//! every host. A user token sees its own jobs only, as in `GET /v1/jobs`.
//!
//! Every stream is fed by the one store watcher ([`crate::watch`]): no
//! stream reads the store or reaches a host on its own. A client that
//! falls behind is cut off; its `EventSource` reconnects and gets a fresh
//! snapshot.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::access::Caller;
use super::{ApiError, channel_body};
use crate::state::Shared;
use crate::watch::JobRow;

/// A comment line this often, so a client gone quiet is noticed.
const KEEPALIVE: Duration = Duration::from_secs(5);

pub async fn stream(
    State(state): State<Shared>,
    caller: Option<axum::Extension<Caller>>,
) -> Result<axum::response::Response, ApiError> {
    let caller = Caller::of(caller);
    let (mut listener, snapshot) = state.watch.listen().await.map_err(ApiError::from)?;
    let (tx, body) = channel_body(16);
    let visible = move |rows: &[JobRow]| -> Vec<Value> {
        rows.iter()
            .filter(|j| caller.may_see(j.owner.as_deref()))
            .map(|j| j.view.clone())
            .collect()
    };
    tokio::spawn(async move {
        let first = json!({"jobs": visible(&snapshot.jobs), "hosts": snapshot.hosts});
        if tx.send(event("snapshot", &first)).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                change = listener.changes.recv() => match change {
                    Ok(change) => {
                        let jobs = visible(&change.jobs);
                        let gone: Vec<Value> = visible(&change.gone)
                            .iter()
                            .map(|j| j["id"].clone())
                            .collect();
                        if jobs.is_empty() && gone.is_empty() && change.hosts.is_none() {
                            continue;
                        }
                        let mut body = json!({"jobs": jobs, "gone": gone});
                        if let Some(hosts) = &change.hosts {
                            body["hosts"] = json!(hosts);
                        }
                        if tx.send(event("change", &body)).await.is_err() {
                            return;
                        }
                    }
                    // Behind: end; the client reconnects to a snapshot.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                },
                // The client went away (its body dropped).
                _ = tx.closed() => return,
                _ = tokio::time::sleep(KEEPALIVE) => {
                    if tx.send(Bytes::from_static(b": keepalive\n\n")).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(axum::response::Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-store")
        .body(Body::new(body))
        .expect("a static response head"))
}

fn event(name: &str, data: &Value) -> Bytes {
    // JSON has no raw newlines: one `data:` line.
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}
