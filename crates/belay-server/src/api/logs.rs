//! A job's output from byte offsets, exactly as the job wrote it.
//!
//! - `GET /v1/jobs/{job}/logs/{stdout|stderr}?offset=N&follow=BOOL`: one
//!   stream's raw bytes (`application/octet-stream`), for scripts and curl;
//! - `GET /v1/jobs/{job}/output?stdout=N&stderr=M&follow=BOOL`: the
//!   streams asked for (an absent offset: not wanted) in one framed body
//!   (`application/x-belay-frames`): `O <len>\n<bytes>` stdout,
//!   `E <len>\n<bytes>` stderr, `W <len>\n<text>` when the host stopped
//!   answering (the stream resumes when it does), and with `with_job=true` a
//!   last `J <len>\n<json>`: the job as `GET /v1/jobs/{job}` shows it (a
//!   followed job: ended), once every byte is out — so an attached `run`
//!   knows its end without asking again. What the CLI uses: one follower
//!   on the host for both streams.
//!
//! Without `follow` an answer ends at the streams' sizes when asked; with
//! it, bytes are sent as they are written and the answer ends once the job
//! has ended and every byte is out. A client cut off mid-way asks again
//! from the offsets it got to: every byte arrives exactly once.

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use belay_core::engine::follow::Offsets;
use belay_core::job::view::JobView;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, channel_body};
use crate::output::Piece;
use crate::state::Shared;

#[derive(Deserialize)]
pub struct LogsQuery {
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    follow: bool,
}

#[derive(Deserialize)]
pub struct OutputQuery {
    stdout: Option<u64>,
    stderr: Option<u64>,
    #[serde(default)]
    follow: bool,
    /// End the answer with the job (`J` frame).
    #[serde(default)]
    with_job: bool,
}

/// One frame of a framed output body.
pub fn frame(tag: u8, payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(payload.len() + 16);
    out.push(tag);
    out.extend_from_slice(format!(" {}\n", payload.len()).as_bytes());
    out.extend_from_slice(payload);
    Bytes::from(out)
}

pub async fn read(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((reference, stream)): Path<(String, String)>,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Query(q) = query?;
    let from = match stream.as_str() {
        "stdout" => Offsets {
            stdout: Some(q.offset),
            stderr: None,
        },
        "stderr" => Offsets {
            stdout: None,
            stderr: Some(q.offset),
        },
        other => {
            return Err(ApiError::not_found(format!(
                "no stream '{other}': stdout or stderr"
            )));
        }
    };
    let failpoint = super::failpoint_of(&headers);
    serve(state, reference, from, q.follow, Framing::Raw, failpoint).await
}

pub async fn output(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(reference): Path<String>,
    query: Result<Query<OutputQuery>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Query(q) = query?;
    let from = Offsets {
        stdout: q.stdout,
        stderr: q.stderr,
    };
    let failpoint = super::failpoint_of(&headers);
    let framing = Framing::Frames { job: q.with_job };
    serve(state, reference, from, q.follow, framing, failpoint).await
}

/// How an answer carries the output.
#[derive(Clone, Copy)]
enum Framing {
    /// One stream's bytes as they are.
    Raw,
    /// Frames (the module header), with the job at the end if `job`.
    Frames { job: bool },
}

async fn serve(
    state: Shared,
    reference: String,
    from: Offsets,
    follow: bool,
    framing: Framing,
    failpoint: Option<String>,
) -> Result<axum::response::Response, ApiError> {
    let framed = matches!(framing, Framing::Frames { .. });
    // Resolve first, so an unknown job is a 404 rather than an empty body.
    let job = super::blocking(&state, move |engine| {
        Ok(engine.store().resolve(&reference)?)
    })
    .await?;
    let followed = follow.then(|| state.follow(&job.host));
    let (tx, body) = channel_body(16);
    let worker = state.clone();
    let cut = tx.clone();
    tokio::task::spawn_blocking(move || {
        let _followed = followed;
        // The request's test hook (a follower made to poll) holds for this
        // stream's work alone.
        belay_core::failpoint::arm_for_thread(failpoint);
        let result = (|| -> belay_core::error::Result<()> {
            let mut engine = worker.engine()?;
            let gone = tx.clone();
            let job = crate::output::stream(
                &mut engine,
                job,
                from,
                follow,
                &mut |piece: Piece<'_>| {
                    let bytes = match (piece, framed) {
                        (Piece::Stdout(d) | Piece::Stderr(d), false) => Bytes::copy_from_slice(d),
                        (Piece::Stdout(d), true) => frame(b'O', d),
                        (Piece::Stderr(d), true) => frame(b'E', d),
                        (Piece::Retrying(w), true) => frame(b'W', w.as_bytes()),
                        // Raw bytes have no room for a word: the client
                        // just waits.
                        (Piece::Retrying(_), false) => return !tx.is_closed(),
                    };
                    tx.blocking_send(bytes).is_ok()
                },
                &move || gone.is_closed(),
            )?;
            if let Framing::Frames { job: true } = framing
                && !tx.is_closed()
            {
                let events = engine.store().events(&job.id)?;
                let answer = json!({
                    "job": JobView::with_events(&job, &events),
                    "warnings": [],
                });
                let _ = tx.blocking_send(frame(b'J', answer.to_string().as_bytes()));
            }
            Ok(())
        })();
        belay_core::failpoint::arm_for_thread(None);
        if let Err(e) = result {
            // The body is already under way: the client sees it cut short
            // and asks again from its offsets; the cause goes to the log.
            tracing::warn!("output stream ended early: {e}");
            // Framed: said as the body's last frame, so the client asks
            // again from its offsets instead of taking the end for the
            // job's (a raw body has no room for it: the client re-reads
            // sizes when it resumes).
            if framed {
                let _ =
                    cut.blocking_send(frame(b'W', format!("output stream cut: {e}").as_bytes()));
            }
        }
    });
    let content_type = if framed {
        "application/x-belay-frames"
    } else {
        "application/octet-stream"
    };
    Ok(axum::response::Response::builder()
        .header("content-type", content_type)
        .body(Body::new(body))
        .expect("a static response head"))
}
