//! Following a job: print its output as it is written, until the job ends
//! or the user detaches (Ctrl-C); a host that goes away is retried (with a
//! warning at most every 30 s) until it answers. Used by attached `run`,
//! `logs -f` and (printing nothing) `wait`.
//!
//! The waiting happens on the job's host: [`Engine::stream_output`] runs a
//! follower there that sends each write as it lands and ends once the job's
//! exit file is there and both streams are drained, so every byte is
//! printed exactly once, also across a dropped link. `wait` uses the same
//! stream with both outputs skipped: the follower's wait on the exit file
//! ends it as soon as the job does, where a poll would add up to its
//! interval, and a dead job is still found by the stream's reconcile.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use anyhow::Result;
use belay_core::engine::{Engine, Offsets, Piece, StreamEnd};
use belay_core::job::Job;

use crate::interrupt;

/// Which streams to print.
#[derive(Clone, Copy)]
pub struct Streams {
    pub stdout: bool,
    pub stderr: bool,
}

pub enum Outcome {
    Ended(Job),
    Detached(Job),
}

/// Offsets past any real file: the stream is not read at all.
pub const SKIP: u64 = 1 << 62;

/// Shortest time between two "retrying" warnings.
const WARN_EVERY: Duration = Duration::from_secs(30);

pub fn follow(engine: &mut Engine, job: Job, streams: Streams) -> Result<Outcome> {
    interrupt::install();
    let from = Offsets {
        stdout: streams.stdout.then_some(0),
        stderr: streams.stderr.then_some(0),
    };
    let mut warned_at: Option<Instant> = None;
    let mut broken: Option<std::io::Error> = None;
    let mut sink = |piece: Piece| {
        let written = match piece {
            // A secret's value this process knows prints as `***`.
            Piece::Stdout(d) => crate::secrets::write_masked(0, &mut std::io::stdout().lock(), &d),
            Piece::Stderr(d) => crate::secrets::write_masked(1, &mut std::io::stderr().lock(), &d),
            Piece::Retrying(why) => {
                if warned_at.is_none_or(|w| w.elapsed() > WARN_EVERY) {
                    let why = belay_ssh::terminal_safe(&why);
                    eprintln!("belay: {why}; retrying (Ctrl-C detaches, the job keeps running)");
                    warned_at = Some(Instant::now());
                }
                Ok(())
            }
        };
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                broken = Some(e);
                ControlFlow::Break(())
            }
        }
    };
    crate::secrets::remember_from_env(&job.secrets);
    let end = engine.stream_output(&job, from, &mut sink, &interrupt::requested)?;
    let _ = crate::secrets::flush_held(0, &mut std::io::stdout().lock());
    let _ = crate::secrets::flush_held(1, &mut std::io::stderr().lock());
    if let Some(e) = broken {
        return Err(e.into());
    }
    Ok(match end {
        StreamEnd::Ended(job) => Outcome::Ended(job),
        StreamEnd::Stopped(job) => Outcome::Detached(job),
    })
}

/// Wait (printing nothing) until the job ends or the user detaches.
pub fn wait(engine: &mut Engine, job: Job) -> Result<Outcome> {
    follow(
        engine,
        job,
        Streams {
            stdout: false,
            stderr: false,
        },
    )
}
