//! Following a job: print its output from byte offsets as it grows, until
//! the job ends or the user detaches (Ctrl-C); a host that goes away is
//! retried (with a warning at most every 30 s) until it answers. Used by
//! attached `run`, `logs -f` and (without printing) `wait`.
//!
//! Each round trip reads the job's state *and* both streams; when the state
//! says "ended", the sizes read after it are final, so the loop stops having
//! printed every byte exactly once. Polling backs off while nothing happens;
//! on the embedded `local` host the job's files are watched between polls,
//! so the loop ends as soon as the job writes its exit file.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Result;
use belay_core::CoreError;
use belay_core::engine::Engine;
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

const MIN_DELAY: Duration = Duration::from_millis(20);
const MAX_DELAY: Duration = Duration::from_millis(500);

pub fn follow(engine: &mut Engine, job: Job, streams: Streams) -> Result<Outcome> {
    interrupt::install();
    let mut out_off = if streams.stdout { 0 } else { SKIP };
    let mut err_off = if streams.stderr { 0 } else { SKIP };
    let mut delay = MIN_DELAY;
    let mut job = job;
    let mut warned_at: Option<Instant> = None;
    loop {
        if interrupt::requested() {
            return Ok(Outcome::Detached(job));
        }
        let chunk = match engine.read_output(&job, out_off, err_off, true) {
            Ok(c) => c,
            Err(CoreError::Transport(t)) if t.is_transient() => {
                if warned_at.is_none_or(|w| w.elapsed() > Duration::from_secs(30)) {
                    let t = belay_ssh::terminal_safe(&t.to_string());
                    eprintln!("belay: {t}; retrying (Ctrl-C detaches, the job keeps running)");
                    warned_at = Some(Instant::now());
                }
                sleep_unless_interrupted(MAX_DELAY * 2);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let got = chunk.stdout.len() + chunk.stderr.len();
        if !chunk.stdout.is_empty() {
            let mut o = std::io::stdout().lock();
            o.write_all(&chunk.stdout)?;
            o.flush()?;
        }
        if !chunk.stderr.is_empty() {
            let mut e = std::io::stderr().lock();
            e.write_all(&chunk.stderr)?;
            e.flush()?;
        }
        out_off += chunk.stdout.len() as u64;
        err_off += chunk.stderr.len() as u64;
        job = engine.refresh(&job)?;
        let drained = (out_off >= chunk.out_size || out_off >= SKIP)
            && (err_off >= chunk.err_size || err_off >= SKIP);
        if !job.state.is_live() && drained {
            return Ok(Outcome::Ended(job));
        }
        if got > 0 {
            delay = MIN_DELAY;
            continue;
        }
        // Wait for news rather than for a fixed time: on `local` the job's
        // files are watched, so the loop ends as soon as the exit file is
        // written; elsewhere this is the backed-off poll.
        engine.wait_for_news(
            &job,
            out_off,
            err_off,
            Instant::now() + delay,
            &interrupt::requested,
        );
        delay = (delay * 2).min(MAX_DELAY);
    }
}

/// Poll the job's state (no output) until it ends or the user detaches.
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

fn sleep_unless_interrupted(d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end && !interrupt::requested() {
        std::thread::sleep(Duration::from_millis(10).min(end - Instant::now()));
    }
}
