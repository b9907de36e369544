//! Serving a job's output from byte offsets: the bodies of
//! `GET /v1/jobs/{job}/output` and `GET /v1/jobs/{job}/logs/{stream}`.
//! The offsets make it exact: a client cut off asks again from where it
//! got to, and each byte arrives once.
//!
//! Following is the engine's stream ([`Engine::stream_output`]): the
//! waiting happens next to the files on the host, and a host that stops
//! answering is retried (the client is told). Without following, the
//! answer ends at each stream's size when first read, so a job that writes
//! fast cannot keep it going.

use std::ops::ControlFlow;

use belay_core::engine::Engine;
use belay_core::engine::follow::{Offsets, Piece as EnginePiece, StreamEnd};
use belay_core::job::Job;

/// What an output stream carries: the job's bytes, or a word about the
/// host (it stopped answering; the stream goes on when it does).
pub enum Piece<'a> {
    Stdout(&'a [u8]),
    Stderr(&'a [u8]),
    Retrying(String),
}

/// Offsets past any real file: the stream is not read at all.
const SKIP: u64 = 1 << 62;

/// Send the wanted streams from their offsets to `sink` (false: the client
/// has gone), until their sizes when asked, or with `follow` until the job
/// has ended and every byte is out. `gone` says the client has left.
/// Returns the job as the stream left it (followed to its end: ended).
pub fn stream(
    engine: &mut Engine,
    job: Job,
    from: Offsets,
    follow: bool,
    sink: &mut dyn FnMut(Piece<'_>) -> bool,
    gone: &dyn Fn() -> bool,
) -> belay_core::error::Result<Job> {
    if follow {
        let mut relay = |piece: EnginePiece| {
            let more = match &piece {
                EnginePiece::Stdout(b) => sink(Piece::Stdout(b)),
                EnginePiece::Stderr(b) => sink(Piece::Stderr(b)),
                EnginePiece::Retrying(w) => sink(Piece::Retrying(w.clone())),
            };
            if more {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        };
        return Ok(match engine.stream_output(&job, from, &mut relay, gone)? {
            StreamEnd::Ended(job) | StreamEnd::Stopped(job) => job,
        });
    }
    let mut out = from.stdout;
    let mut err = from.stderr;
    let mut ends: Option<(u64, u64)> = None;
    loop {
        if gone() {
            return Ok(job);
        }
        let chunk = engine.read_output(&job, out.unwrap_or(SKIP), err.unwrap_or(SKIP), false)?;
        let (out_end, err_end) = *ends.get_or_insert((chunk.out_size, chunk.err_size));
        let mut moved = false;
        if let Some(at) = out.as_mut() {
            let take = chunk.stdout.len().min(out_end.saturating_sub(*at) as usize);
            if take > 0 {
                if !sink(Piece::Stdout(&chunk.stdout[..take])) {
                    return Ok(job);
                }
                *at += take as u64;
                moved = true;
            }
        }
        if let Some(at) = err.as_mut() {
            let take = chunk.stderr.len().min(err_end.saturating_sub(*at) as usize);
            if take > 0 {
                if !sink(Piece::Stderr(&chunk.stderr[..take])) {
                    return Ok(job);
                }
                *at += take as u64;
                moved = true;
            }
        }
        if !moved {
            return Ok(job);
        }
    }
}
