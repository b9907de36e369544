//! `/v1/jobs` and `/v1/cancellations`: the job resources.
//!
//! - `GET /v1/jobs?all=&host=&limit=&offset=`: live jobs (every job with
//!   `all`), each host probed once, as `belay ps`; a page of them with
//!   `limit`; a user token's own only;
//! - `GET /v1/jobs/{job}?wait=SECS`: one job with its events; with `wait`,
//!   answered once the job has ended or after SECS, whichever is first;
//! - `POST /v1/jobs` (a [`SubmitRequest`]): a stream of JSON lines —
//!   `recorded`, input-copy `progress`, then `submitted` or `error`. A
//!   client that goes away before the launch stops the submit there (the
//!   job is recorded cancelled, nothing runs), as Ctrl-C does without the
//!   daemon;
//! - `POST /v1/cancellations` (`{"jobs": [...], "grace": SECS}`): every
//!   reference resolved before anything is stopped; one result per job;
//! - `POST /v1/releases` (`{"job": REF}`): end a held job's debug hold;
//!   answers the job once its host recorded the end (or still `held`).

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use belay_core::engine::{Offsets, StreamEnd};
use belay_core::job::view::JobView;
use belay_core::job::{Job, JobSpec};
use belay_core::store::JobFilter;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::access::Caller;
use super::{ApiError, blocking_armed, channel_body, failpoint_of, warnings};
use crate::state::Shared;

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    all: bool,
    host: Option<String>,
    /// A page: at most `limit` jobs, after skipping `offset` (newest first).
    limit: Option<u64>,
    #[serde(default)]
    offset: u64,
}

pub async fn list(
    State(state): State<Shared>,
    caller: Option<axum::Extension<Caller>>,
    headers: axum::http::HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query?;
    let shared = state.clone();
    let owner = Caller::of(caller).owner_filter();
    blocking_armed(&state, failpoint_of(&headers), move |engine| {
        let filter = JobFilter {
            all: q.all,
            host: q.host,
            owner,
            page: q.limit.map(|limit| (q.offset, limit)),
        };
        let problems = reconcile_hosts_at_once(&shared, engine, &filter)?;
        let jobs = engine.store().list(&filter)?;
        let views: Vec<_> = jobs.iter().map(JobView::new).collect();
        Ok(Json(
            json!({ "jobs": views, "warnings": warnings(&problems) }),
        ))
    })
    .await
}

/// `ps`'s reconcile, one probe per host as always, but every host at
/// once (each on its own thread and store connection, over the pooled
/// connections): ten hosts cost about one round trip, not ten.
fn reconcile_hosts_at_once(
    state: &Shared,
    engine: &mut belay_core::engine::Engine,
    filter: &JobFilter,
) -> Result<Vec<belay_core::engine::HostProblem>, ApiError> {
    let live = engine.store().reconcilable(
        filter.host.as_deref(),
        belay_core::engine::reconcile::LOST_RECHECK_MS,
    )?;
    let mut by_host: std::collections::BTreeMap<String, Vec<Job>> = Default::default();
    for job in live {
        by_host.entry(job.host.clone()).or_default().push(job);
    }
    if by_host.len() <= 1 {
        let jobs: Vec<Job> = by_host.into_values().flatten().collect();
        return Ok(engine.reconcile(&jobs)?);
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = by_host
            .into_values()
            .map(|jobs| {
                scope
                    .spawn(move || -> Result<_, ApiError> { Ok(state.engine()?.reconcile(&jobs)?) })
            })
            .collect();
        let mut problems = Vec::new();
        for w in workers {
            let found = w
                .join()
                .map_err(|_| ApiError::internal("a host's reconcile failed"))??;
            problems.extend(found);
        }
        Ok(problems)
    })
}

#[derive(Deserialize)]
pub struct ShowQuery {
    /// Seconds to wait for the job to end before answering.
    wait: Option<u64>,
}

pub async fn show(
    State(state): State<Shared>,
    headers: axum::http::HeaderMap,
    Path(reference): Path<String>,
    query: Result<Query<ShowQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query?;
    let wait = q.wait.map(|s| Duration::from_secs(s.min(3600)));
    let waiting = state.clone();
    blocking_armed(&state, failpoint_of(&headers), move |engine| {
        let (job, problems) = engine.job(&reference)?;
        let job = match wait {
            Some(within) if !job.state.command_over() => {
                // Waited for next to the job's files on its host (the
                // engine's follower, no stream wanted), not by asking again
                // and again from here.
                let _followed = waiting.follow(&job.host);
                let deadline = Instant::now() + within;
                match engine.stream_output(
                    &job,
                    Offsets::default(),
                    &mut |_| ControlFlow::Continue(()),
                    &|| Instant::now() >= deadline,
                )? {
                    StreamEnd::Ended(job) | StreamEnd::Stopped(job) => job,
                }
            }
            _ => job,
        };
        let events = engine.store().events(&job.id)?;
        let view = JobView::with_events(&job, &events);
        Ok(Json(
            json!({ "job": view, "warnings": warnings(&problems) }),
        ))
    })
    .await
}

#[derive(Deserialize)]
pub struct SubmitRequest {
    pub spec: JobSpec,
    /// A known host that does not answer: record the job `queued` and
    /// start it when the host answers (the daemon's passes), rather than
    /// refusing.
    #[serde(default)]
    pub queue: bool,
    /// `run --secret`: a value for each name in `spec.secrets`. Kept in
    /// memory only until the job's launch (never logged nor stored).
    #[serde(default)]
    pub secrets: Vec<belay_core::secrets::SecretValue>,
}

/// Sends one JSON line (from a blocking thread, never from inside a
/// runtime); false once the client has gone.
fn send_line(tx: &mpsc::Sender<Bytes>, value: serde_json::Value) -> bool {
    tx.blocking_send(json_line(value)).is_ok()
}

fn json_line(value: serde_json::Value) -> Bytes {
    let mut line = value.to_string();
    line.push('\n');
    Bytes::from(line)
}

/// A progress line: dropped rather than waited for when the client reads
/// slowly (the next one says as much), and safe to send from inside the
/// SSH runtime, where blocking is not allowed.
fn progress_line(tx: &mpsc::Sender<Bytes>, value: serde_json::Value) -> bool {
    tx.try_send(json_line(value)).is_ok()
}

/// Input-copy progress, relayed as JSON lines. Bytes moved while the
/// client was not reading are added to the next line.
struct RelayProgress(mpsc::Sender<Bytes>, u64);

impl belay_core::transfer::Progress for RelayProgress {
    fn begin(&mut self, files: u64, bytes: u64) {
        progress_line(
            &self.0,
            json!({"event": "progress", "begin": {"files": files, "bytes": bytes}}),
        );
    }
    fn advance(&mut self, bytes: u64) {
        self.1 += bytes;
        if progress_line(&self.0, json!({"event": "progress", "advance": self.1})) {
            self.1 = 0;
        }
    }
    fn file_done(&mut self) {
        let _ = progress_line(&self.0, json!({"event": "progress", "file_done": true}));
    }
    fn warn(&mut self, message: &str) {
        let _ = progress_line(&self.0, json!({"event": "progress", "warn": message}));
    }
}

pub async fn submit(
    State(state): State<Shared>,
    caller: Option<axum::Extension<Caller>>,
    headers: axum::http::HeaderMap,
    body: Result<Json<SubmitRequest>, JsonRejection>,
) -> Result<axum::response::Response, ApiError> {
    let caller = Caller::of(caller);
    let failpoint = failpoint_of(&headers);
    let terminal = headers
        .get(crate::prompts::TERMINAL_HEADER)
        .is_some_and(|v| v == "1");
    let Json(request) = body?;
    let mut spec = request.spec.checked()?;
    spec.owner = caller.owner();
    let secrets = request.secrets;
    belay_core::secrets::check_values(&spec.secrets, &secrets)?;
    // On TCP a submit is accepted (202) whether or not its host answers
    // now: a known host away gets the job queued, started when it answers.
    let on_tcp = caller != Caller::Local;
    let options = belay_core::engine::SubmitOptions {
        queue_if_unreachable: request.queue || on_tcp,
    };
    let (tx, body) = channel_body(64);
    let worker = state.clone();
    tokio::task::spawn_blocking(move || {
        belay_core::failpoint::arm_for_thread(failpoint);
        // Questions this host's connection asks go to this client's
        // terminal while the submit runs.
        let _route = terminal.then(|| worker.prompts.open(&spec.host, tx.clone()));
        let outcome = (|| -> Result<Job, ApiError> {
            // A bad host name is refused before the store is even opened.
            worker.hosts.validate(&spec.host)?;
            let mut engine = worker.engine()?;
            let gone = tx.clone();
            engine.set_stop_check(Box::new(|| {}), Box::new(move || gone.is_closed()));
            if !spec.inputs.is_empty() {
                engine.set_transfer_progress(Box::new(RelayProgress(tx.clone(), 0)));
            }
            let recorded = tx.clone();
            engine.on_recorded(Box::new(move |job: &Job| {
                send_line(&recorded, json!({"event": "recorded", "id": job.id}));
            }));
            Ok(engine.submit_with_secrets(&spec, options, secrets)?)
        })();
        // The hook was this submit's: the worker thread goes back to the
        // pool, where a later pass must not find it armed.
        belay_core::failpoint::arm_for_thread(None);
        match outcome {
            Ok(job) => {
                send_line(
                    &tx,
                    json!({"event": "submitted", "job": JobView::new(&job)}),
                );
                worker.wake(&job.host);
            }
            Err(e) => {
                send_line(&tx, json!({"event": "error", "error": e.body}));
            }
        }
    });
    let status = if on_tcp {
        axum::http::StatusCode::ACCEPTED
    } else {
        axum::http::StatusCode::OK
    };
    Ok(axum::response::Response::builder()
        .status(status)
        .header("content-type", "application/x-ndjson")
        .body(Body::new(body))
        .expect("a static response head"))
}

#[derive(Deserialize)]
pub struct CancelRequest {
    jobs: Vec<String>,
    grace: Option<u32>,
}

pub async fn cancel(
    State(state): State<Shared>,
    headers: axum::http::HeaderMap,
    body: Result<Json<CancelRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(request) = body?;
    if request.jobs.is_empty() {
        return Err(ApiError::bad_input("no job to cancel"));
    }
    let grace = request
        .grace
        .unwrap_or(belay_core::engine::cancel::DEFAULT_GRACE_SECS);
    let state = Arc::clone(&state);
    blocking_armed(&state, failpoint_of(&headers), move |engine| {
        let results: Vec<_> = engine
            .cancel_references(&request.jobs, grace)?
            .into_iter()
            .map(|(job, outcome)| match outcome {
                None => json!({ "job": JobView::new(&job) }),
                Some(Ok(after)) => json!({
                    "job": JobView::new(&job),
                    "after": JobView::new(&after),
                }),
                Some(Err(e)) => json!({
                    "job": JobView::new(&job),
                    "error": ApiError::from(e).body,
                }),
            })
            .collect();
        Ok(Json(json!({ "results": results })))
    })
    .await
}

#[derive(Deserialize)]
pub struct ReleaseRequest {
    job: String,
}

pub async fn release(
    State(state): State<Shared>,
    headers: axum::http::HeaderMap,
    body: Result<Json<ReleaseRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(request) = body?;
    blocking_armed(&state, failpoint_of(&headers), move |engine| {
        let job = engine.release(&request.job)?;
        Ok(Json(json!({ "job": JobView::new(&job) })))
    })
    .await
}

#[derive(Deserialize, Default)]
pub struct FetchBody {
    /// Copy again even if the outputs were fetched already (`belay
    /// fetch`); without it an ended job's outputs are copied once.
    #[serde(default)]
    again: bool,
    /// An absolute directory to copy into instead of `results/<id>/`
    /// (written as the daemon's user, who is the client's: the socket
    /// checks the peer's uid).
    to: Option<std::path::PathBuf>,
}

/// `POST /v1/jobs/{job}/fetches`: copy a job's declared outputs into
/// `$BELAY_HOME/results/<id>/` (what the background loop does by itself
/// once the job ends; once, unless `again`) or into `to`. Answers as
/// JSON lines ([`super::relayed`]): copy progress per output, then where
/// they are, whether this request copied them, one line per output that
/// did not come whole, and the `report` `belay fetch --json` prints.
pub async fn fetch(
    State(state): State<Shared>,
    headers: axum::http::HeaderMap,
    Path(reference): Path<String>,
    body: Result<Json<FetchBody>, JsonRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Json(body) = body?;
    if let Some(to) = &body.to
        && !to.is_absolute()
    {
        return Err(ApiError::bad_input(format!(
            "'to' must be an absolute path, not '{}'",
            to.display()
        )));
    }
    let home = state.home.clone();
    Ok(super::relayed::relayed(
        &state,
        &headers,
        move |engine, relay| {
            let (job, problems) = engine.job(&reference)?;
            let warnings = serde_json::to_value(warnings(&problems)).unwrap_or_default();
            if job.outputs.is_empty() {
                return Err(ApiError::bad_input(format!(
                    "job {} declared no outputs (use `belay run --output PATH`; `belay pull` copies any path)",
                    job.id
                )));
            }
            if !body.again && body.to.is_none() && job.state.is_live() {
                return Err(ApiError::bad_input(format!(
                    "job {} is {}: its outputs are fetched once it ends",
                    job.id, job.state
                )));
            }
            if job.remote_dir.is_none() {
                return Err(ApiError::refused(format!(
                    "job {} has not been staged on {} yet",
                    job.id, job.host
                )));
            }
            let _route = relay.route(&job.host);
            let mut progress = |output: &str| relay.progress(output);
            let (dir, report) = match &body.to {
                Some(to) => (
                    to.clone(),
                    Some(engine.fetch_outputs(&job, to, &mut progress)?),
                ),
                None => (
                    home.results_dir(&job.id),
                    engine.fetch_outputs_home(&home, &job, body.again, &mut progress)?,
                ),
            };
            Ok(json!({
                "job": job.id,
                "dir": dir,
                "copied": report.is_some(),
                "problems": report.as_ref().map(|r| r.problems(&job.host)).unwrap_or_default(),
                "report": report.as_ref().map(|r| r.json(&job.id, &dir)),
                "warnings": warnings,
            }))
        },
    ))
}
