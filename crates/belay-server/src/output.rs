//! Serving one of a job's streams from a byte offset: the body of
//! `GET /v1/jobs/{job}/logs/{stream}`. The offsets make it exact: a client
//! cut off asks again from where it got to, and each byte arrives once.
//!
//! A transient host error while following is waited out here (the job
//! keeps running on its host); any other error ends the body early.

use std::time::{Duration, Instant};

use belay_core::engine::Engine;
use belay_core::job::Job;

use crate::api::logs::Which;

/// Offsets past any real file: the stream is not read at all.
const SKIP: u64 = 1 << 62;

const MIN_DELAY: Duration = Duration::from_millis(20);
const MAX_DELAY: Duration = Duration::from_millis(500);

/// What a log stream carries: the job's bytes, or a word about the host
/// (it stopped answering; the stream goes on when it does).
pub enum Piece<'a> {
    Data(&'a [u8]),
    Retrying(String),
}

/// Send the stream from `offset` to `sink` (false: the client has gone),
/// until its size when asked, or with `follow` until the job has ended and
/// every byte is out. `gone` says the client has left.
pub fn stream(
    engine: &mut Engine,
    mut job: Job,
    which: Which,
    mut offset: u64,
    follow: bool,
    sink: &mut dyn FnMut(Piece<'_>) -> bool,
    gone: &dyn Fn() -> bool,
) -> belay_core::error::Result<()> {
    let mut delay = MIN_DELAY;
    let mut end: Option<u64> = None;
    loop {
        if gone() {
            return Ok(());
        }
        let (out_off, err_off) = match which {
            Which::Stdout => (offset, SKIP),
            Which::Stderr => (SKIP, offset),
        };
        let chunk = match engine.read_output(&job, out_off, err_off, follow) {
            Ok(c) => c,
            Err(belay_core::CoreError::Transport(t)) if follow && t.is_transient() => {
                tracing::info!("following {}: {t}; retrying", job.id);
                if !sink(Piece::Retrying(t.to_string())) {
                    return Ok(());
                }
                sleep_unless(MAX_DELAY * 2, gone);
                continue;
            }
            Err(e) => return Err(e),
        };
        let (data, size) = match which {
            Which::Stdout => (chunk.stdout, chunk.out_size),
            Which::Stderr => (chunk.stderr, chunk.err_size),
        };
        // Without follow: up to the size seen first, so a job that writes
        // fast cannot keep the answer going.
        let limit = if follow {
            u64::MAX
        } else {
            *end.get_or_insert(size)
        };
        let take = data.len().min(limit.saturating_sub(offset) as usize);
        if take > 0 {
            if !sink(Piece::Data(&data[..take])) {
                return Ok(());
            }
            offset += take as u64;
        }
        if !follow {
            if take == 0 {
                return Ok(());
            }
            continue;
        }
        job = engine.refresh(&job)?;
        if !job.state.is_live() && offset >= size {
            return Ok(());
        }
        if take > 0 {
            delay = MIN_DELAY;
            continue;
        }
        let (out_off, err_off) = match which {
            Which::Stdout => (offset, SKIP),
            Which::Stderr => (SKIP, offset),
        };
        engine.wait_for_news(&job, out_off, err_off, Instant::now() + delay, gone);
        delay = (delay * 2).min(MAX_DELAY);
    }
}

fn sleep_unless(d: Duration, stop: &dyn Fn() -> bool) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stop() {
        std::thread::sleep(Duration::from_millis(10).min(end - Instant::now()));
    }
}
