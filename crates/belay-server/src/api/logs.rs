//! `GET /v1/jobs/{job}/logs/{stdout|stderr}?offset=N&follow=BOOL`: the
//! stream's bytes from offset N, exactly as the job wrote them
//! (`application/octet-stream`). Without `follow` the answer ends at the
//! stream's size when asked; with it, bytes are sent as they are written
//! and the answer ends once the job has ended and every byte is out. A
//! client cut off mid-way asks again from the offset it got to: every byte
//! arrives exactly once.

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::{ApiError, channel_body};
use crate::output::Piece;
use crate::state::Shared;

#[derive(Deserialize)]
pub struct LogsQuery {
    #[serde(default)]
    offset: u64,
    #[serde(default)]
    follow: bool,
    /// Framed (`application/x-belay-frames`): `D <len>\n<bytes>` for the
    /// job's bytes, `W <len>\n<text>` when the host stopped answering
    /// (the stream resumes when it does). What the CLI asks for, to say
    /// so on the terminal; raw bytes otherwise.
    #[serde(default)]
    frames: bool,
}

/// One frame of a framed log stream.
pub fn frame(tag: u8, payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(payload.len() + 16);
    out.push(tag);
    out.extend_from_slice(format!(" {}\n", payload.len()).as_bytes());
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// Which of a job's streams.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Stdout,
    Stderr,
}

pub async fn read(
    State(state): State<Shared>,
    Path((reference, stream)): Path<(String, String)>,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Query(q) = query?;
    let which = match stream.as_str() {
        "stdout" => Which::Stdout,
        "stderr" => Which::Stderr,
        other => {
            return Err(ApiError::not_found(format!(
                "no stream '{other}': stdout or stderr"
            )));
        }
    };
    // Resolve first, so an unknown job is a 404 rather than an empty body.
    let job = super::blocking(&state, move |engine| {
        Ok(engine.store().resolve(&reference)?)
    })
    .await?;
    let followed = q.follow.then(|| state.follow(&job.host));
    let frames = q.frames;
    let (tx, body) = channel_body(16);
    let worker = state.clone();
    tokio::task::spawn_blocking(move || {
        let _followed = followed;
        let result = (|| -> belay_core::error::Result<()> {
            let mut engine = worker.engine()?;
            let gone = tx.clone();
            crate::output::stream(
                &mut engine,
                job,
                which,
                q.offset,
                q.follow,
                &mut |piece: Piece<'_>| {
                    let bytes = match (piece, frames) {
                        (Piece::Data(d), false) => Bytes::copy_from_slice(d),
                        (Piece::Data(d), true) => frame(b'D', d),
                        (Piece::Retrying(w), true) => frame(b'W', w.as_bytes()),
                        // Raw bytes have no room for a word: the client
                        // just waits.
                        (Piece::Retrying(_), false) => return !tx.is_closed(),
                    };
                    tx.blocking_send(bytes).is_ok()
                },
                &move || gone.is_closed(),
            )
        })();
        if let Err(e) = result {
            // The body is already under way: the client sees it cut short
            // and asks again from its offset; the cause goes to the log.
            tracing::warn!("log stream ended early: {e}");
        }
    });
    let content_type = if frames {
        "application/x-belay-frames"
    } else {
        "application/octet-stream"
    };
    Ok(axum::response::Response::builder()
        .header("content-type", content_type)
        .body(Body::new(body))
        .expect("a static response head"))
}
