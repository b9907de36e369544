//! The `/v1` API: HTTP/JSON on the daemon's Unix socket, and the same
//! routes on TCP with per-user tokens (`belay serve --listen`, behind
//! [`access::gate`]): `jobs` (and each job's `logs`), `cancellations`,
//! `forwards`, `daemon`.
//! The document `/v1/openapi.json` describes every route.
//!
//! Every handler runs engine code on a blocking thread ([`blocking`]): the
//! engine waits on SSH I/O, and a slow host must never stall the others.
//! Errors are one JSON shape ([`ApiError`]) carrying the message and the
//! exit status the CLI would have used, so a command ends the same way
//! through the daemon as without it.
//!
//! - [`jobs`]: list, show (with events, optionally waiting for the end),
//!   submit (a stream of events: recorded, input progress, the outcome),
//!   cancel;
//! - [`hosts`]: hosts, their health, checks, and their keys;
//! - [`history`]: one job and its event log, from the store only;
//! - [`logs`]: a job's stdout/stderr from byte offsets, followed as
//!   written (raw per stream, or both framed in one body);
//! - [`apps`]: where an app job listens, once it does (`belay app`);
//! - [`forwards`]: the daemon's forwards (`belay forward`): open, list,
//!   stop;
//! - [`relayed`]: answers of requests that connect for the client
//!   (fetch, check, host keys) as JSON lines that carry the connection's
//!   questions and copy progress to it;
//! - [`prompts`]: answers to a connection's questions (passphrase, second
//!   factor) that a submit relayed to its client;
//! - [`shells`]: `belay shell` on the daemon's warm connection (an HTTP
//!   upgrade, then [`crate::shell_frames`]);
//! - [`events`]: jobs and hosts as they change (server-sent events, from
//!   the one store watcher);
//! - [`daemon`]: who the daemon is; stopping it;
//! - [`access`]: tokens on TCP, and what a user's token may reach.

pub mod access;
pub mod apps;
pub mod daemon;
pub mod error;
pub mod events;
pub mod forwards;
pub mod history;
pub mod hosts;
pub mod jobs;
pub mod logs;
pub mod prompts;
pub mod relayed;
pub mod shells;

use std::convert::Infallible;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{delete, get, post};
use belay_core::engine::Engine;
use belay_core::engine::HostProblem;
use serde::Serialize;
use tokio::sync::mpsc;

pub use error::ApiError;

use crate::state::Shared;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/daemon", get(daemon::show).delete(daemon::stop))
        .route("/v1/events", get(events::stream))
        .route("/v1/jobs", get(jobs::list).post(jobs::submit))
        .route("/v1/jobs/{job}", get(jobs::show))
        .route("/v1/jobs/{job}/events", get(history::show))
        .route("/v1/jobs/{job}/logs/{stream}", get(logs::read))
        .route("/v1/jobs/{job}/output", get(logs::output))
        .route("/v1/jobs/{job}/fetches", post(jobs::fetch))
        .route("/v1/jobs/{job}/app", get(apps::show).delete(apps::stop))
        .route("/v1/cancellations", post(jobs::cancel))
        .route("/v1/releases", post(jobs::release))
        .route("/v1/hosts", get(hosts::list))
        .route("/v1/hosts/{host}", get(hosts::show))
        .route("/v1/hosts/{host}/checks", post(hosts::check))
        .route(
            "/v1/hosts/{host}/key",
            get(hosts::offered).put(hosts::trust).delete(hosts::forget),
        )
        .route("/v1/prompts/{id}", post(prompts::answer))
        .route(
            "/v1/forwards",
            get(forwards::list)
                .post(forwards::open)
                .delete(forwards::stop_many),
        )
        .route("/v1/forwards/{id}", delete(forwards::stop_one))
        .route("/v1/shells", post(shells::open))
        .route("/v1/shells/{target}", delete(shells::end))
        .fallback(|| async { ApiError::not_found("no such resource (see /v1/openapi.json)") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// The same routes for TCP: every request passes [`access::gate`] first;
/// and the dashboard at `/` ([`crate::dashboard`], which logs in itself).
pub fn router_tcp(state: Shared) -> Router {
    // The gate runs before routing (the API's routes are the fallback of a
    // router with none of its own): a user's request may name a job by
    // name, which the gate replaces with the id of the caller's own job of
    // that name. The dashboard's pages (`/`, `/assets/…`) log in by
    // themselves and are matched first.
    let api = Router::new().fallback_service(router(state.clone())).layer(
        axum::middleware::from_fn_with_state(state.clone(), access::gate),
    );
    crate::dashboard::router(state).fallback_service(api)
}

/// The ssh-agent socket of the command that sent a request (its
/// `SSH_AUTH_SOCK`): taken from local callers only.
pub const AGENT_HEADER: &str = "x-belay-agent";

/// Count the request as activity (the idle exit waits for none) for as
/// long as its response — a log stream included — is being sent; and note
/// a local command's agent socket for the connections made from now on
/// (never a TCP caller's: a socket path is this user's to name).
async fn track(
    axum::extract::State(state): axum::extract::State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if request.extensions().get::<access::Caller>().is_none()
        && let Some(agent) = request
            .headers()
            .get(AGENT_HEADER)
            .and_then(|v| v.to_str().ok())
    {
        state.agent_socket.named(std::path::Path::new(agent));
    }
    let guard = state.busy();
    let response = next.run(request).await;
    let (parts, body) = response.into_parts();
    let body = Body::new(GuardedBody {
        inner: body,
        _guard: guard,
    });
    axum::response::Response::from_parts(parts, body)
}

/// A body that holds the activity guard until it is fully sent or dropped.
struct GuardedBody {
    inner: Body,
    _guard: crate::state::BusyGuard,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

/// The test-only crash hook a request carries (`x-belay-failpoint`, the
/// CLI's `BELAY_FAILPOINT`): honoured only in builds with the `failpoints`
/// feature, like the variable itself.
pub const FAILPOINT_HEADER: &str = "x-belay-failpoint";

pub fn failpoint_of(headers: &axum::http::HeaderMap) -> Option<String> {
    if !belay_core::failpoint::LIVE {
        return None;
    }
    headers
        .get(FAILPOINT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Run `work` with a fresh engine on a blocking thread.
pub async fn blocking<T, F>(state: &Shared, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut Engine) -> Result<T, ApiError> + Send + 'static,
{
    blocking_armed(state, None, work).await
}

/// [`blocking`], with the request's failpoint armed for its thread.
pub async fn blocking_armed<T, F>(
    state: &Shared,
    failpoint: Option<String>,
    work: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut Engine) -> Result<T, ApiError> + Send + 'static,
{
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        belay_core::failpoint::arm_for_thread(failpoint);
        let result = state
            .engine()
            .map_err(ApiError::from)
            .and_then(|mut engine| work(&mut engine));
        belay_core::failpoint::arm_for_thread(None);
        result
    })
    .await
    .map_err(|e| ApiError::internal(format!("request worker failed: {e}")))?
}

/// A host problem met while answering (the CLI prints it as a warning).
#[derive(Serialize)]
pub struct Warning<'a> {
    pub host: &'a str,
    pub job: Option<&'a str>,
    pub error: &'a str,
}

pub fn warnings(problems: &[HostProblem]) -> Vec<Warning<'_>> {
    problems
        .iter()
        .map(|p| Warning {
            host: &p.host,
            job: p.job.as_deref(),
            error: &p.error,
        })
        .collect()
}

/// A response body fed from a channel: a stream of JSON lines or of log
/// bytes, written as the work produces it. The sender sees the channel
/// closed once the client is gone, and stops.
pub fn channel_body(capacity: usize) -> (mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = mpsc::channel::<Bytes>(capacity);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    (tx, Body::from_stream(stream))
}
