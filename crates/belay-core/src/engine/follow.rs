//! Streaming a job's output as it is written: [`Engine::stream_output`]
//! runs the remote follower ([`crate::remote::follow`]) on the job's host,
//! so the waiting happens next to the files, and hands each piece to a
//! sink the moment its frame is complete.
//!
//! Every byte is delivered exactly once: the engine counts the bytes of
//! each stream it delivered, and after a dropped link reopens the follower
//! from those offsets (a frame cut in half is dropped whole and sent again).
//! While the job is live it is also reconciled every few seconds, as `ps`
//! would, so a job that died without an exit file ends the stream as
//! `lost` instead of being followed forever. Callers: the CLI's attached
//! `run`, `logs -f` and `wait` (direct mode), and the daemon's log requests
//! (one blocking thread each, with a sink that sends into a channel).

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use super::Engine;
use crate::error::{CoreError, Result};
use crate::job::Job;
use crate::remote::HostReport;
use crate::remote::follow::{self, Frame, FrameReader, WaitMode};
use crate::transport::TransportError;

/// How often a followed live job is reconciled (a wrapper killed without
/// an exit file is noticed this late at most, plus one probe).
pub const RECONCILE_EVERY: Duration = Duration::from_secs(3);

/// Pause between attempts while the host does not answer.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Offsets past any real file: the stream is not read at all (for
/// [`Engine::read_output`]).
const SKIP: u64 = 1 << 62;

/// Where to start each stream; `None`: that stream is not wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offsets {
    pub stdout: Option<u64>,
    pub stderr: Option<u64>,
}

/// What the sink receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// The next bytes of the job's stdout.
    Stdout(Vec<u8>),
    /// The next bytes of its stderr.
    Stderr(Vec<u8>),
    /// The link dropped or the host does not answer; the stream is being
    /// retried. Sent at every attempt: the caller decides how often to show
    /// it.
    Retrying(String),
}

/// How a stream ended.
#[derive(Debug, Clone)]
pub enum StreamEnd {
    /// The job ended and all its output was delivered; the job as the store
    /// has it after a final reconcile.
    Ended(Job),
    /// The sink said `Break` or `stop()` said so; the job as the store has it.
    Stopped(Job),
}

/// How one follower run ended.
enum Run {
    /// The follower saw the exit file and sent everything.
    Drained,
    /// A reconcile found the job no longer live (lost, say): what is left
    /// of its output is read directly.
    NotLive,
    Stopped,
    /// The link dropped under a running follower: reopen it at once (the
    /// transport reconnects), as a dropped script is re-run.
    Cut(String),
    /// The follower could not be started, or ended early: try again after
    /// a pause, telling the sink why.
    Dropped(String),
}

impl Run {
    /// A running follower's link failed: a dropped link is reopened at
    /// once; a host that stopped answering (keepalive) is said.
    fn broken(t: TransportError) -> Run {
        match t {
            TransportError::NotResponding { .. } => Run::Dropped(t.to_string()),
            _ => Run::Cut(t.to_string()),
        }
    }
}

impl Engine {
    /// Stream `job`'s output from `from` into `sink` until the job ends
    /// (every byte once, then [`StreamEnd::Ended`]) or the caller stops it
    /// (`sink` returns `Break`, or `stop()` — asked at every frame, and
    /// the follower sends one at least every second).
    pub fn stream_output(
        &mut self,
        job: &Job,
        from: Offsets,
        sink: &mut dyn FnMut(Piece) -> ControlFlow<()>,
        stop: &dyn Fn() -> bool,
    ) -> Result<StreamEnd> {
        let mut at = from;
        let mut job = self.store.get(&job.id)?;
        let mut reconciled = Instant::now();
        // A cut link is reopened at once, silently, once in a row: a
        // second cut without a frame in between is shown and paced.
        let mut cut_before = false;
        loop {
            if stop() {
                return Ok(StreamEnd::Stopped(self.store.get(&job.id)?));
            }
            if job.state.command_over() {
                return self.drain(&job, &mut at, sink, stop);
            }
            let delivered = at;
            let run = self.follow_once(&job, &mut at, sink, stop, &mut reconciled)?;
            if at != delivered {
                cut_before = false;
            }
            job = self.store.get(&job.id)?;
            match run {
                Run::Stopped => return Ok(StreamEnd::Stopped(job)),
                Run::NotLive => {}
                Run::Drained => {
                    // The follower sent both streams to their final size,
                    // and the job's report, which was recorded.
                    if job.state.command_over() {
                        return Ok(StreamEnd::Ended(job));
                    }
                    self.reconcile(std::slice::from_ref(&job))?;
                    reconciled = Instant::now();
                    job = self.store.get(&job.id)?;
                    if job.state.command_over() {
                        return Ok(StreamEnd::Ended(job));
                    }
                    // The exit file is there but the probe could not
                    // record it (the host went away in between).
                    let why = format!("job {} ended, its state could not be read yet", job.id);
                    if self.retry_pause(why, sink, stop) {
                        return Ok(StreamEnd::Stopped(job));
                    }
                }
                Run::Cut(_) if !cut_before => cut_before = true,
                Run::Cut(why) | Run::Dropped(why) => {
                    if self.retry_pause(why, sink, stop) {
                        return Ok(StreamEnd::Stopped(self.store.get(&job.id)?));
                    }
                    if reconciled.elapsed() >= RECONCILE_EVERY {
                        self.reconcile(std::slice::from_ref(&job))?;
                        reconciled = Instant::now();
                        job = self.store.get(&job.id)?;
                    }
                }
            }
        }
    }

    /// One run of the follower on the job's host, from `at`.
    fn follow_once(
        &mut self,
        job: &Job,
        at: &mut Offsets,
        sink: &mut dyn FnMut(Piece) -> ControlFlow<()>,
        stop: &dyn Fn() -> bool,
        reconciled: &mut Instant,
    ) -> Result<Run> {
        let transport = self.transport(&job.host)?;
        let dir = Self::dir_word(&*transport, job);
        let workroot = transport.workroot().0;
        let mode = if crate::failpoint::hit_soft("follow-poll") {
            WaitMode::Poll
        } else {
            super::wait_modes::for_follower(&job.host, &workroot)
        };
        let scheduler = self.scheduler(job)?;
        let script = follow::script(&*scheduler, &job.id, &dir, at.stdout, at.stderr, mode);
        // A pooled request where the transport has shells: the shell goes
        // back once the follower's end is read (`release`).
        let mut stream = match transport.open_output_stream(&script) {
            Ok(s) => s,
            Err(t) if t.is_transient() => return Ok(Run::Dropped(t.to_string())),
            Err(t) => return Err(t.into()),
        };
        let mut frames = FrameReader::ending_at(stream.end_marker());
        loop {
            let piece = match stream.read_chunk() {
                Ok(Some(p)) => p,
                Ok(None) => {
                    return match stream.finish() {
                        Ok(out) => Ok(Run::Dropped(format!(
                            "the output stream of job {} ended early (status {}): {}",
                            job.id,
                            out.status,
                            out.stderr_text()
                        ))),
                        // The channel closed with the link.
                        Err(t) if t.is_transient() => Ok(Run::broken(t)),
                        Err(t) => Err(t.into()),
                    };
                }
                Err(t) if t.is_transient() => {
                    stream.abort();
                    return Ok(Run::broken(t));
                }
                Err(t) => {
                    stream.abort();
                    return Err(t.into());
                }
            };
            frames.feed(&piece);
            loop {
                let frame = match frames.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        stream.abort();
                        return Err(CoreError::Protocol {
                            host: job.host.clone(),
                            message: format!("job {}: {e}", job.id),
                        });
                    }
                };
                let flow = match frame {
                    Frame::Stdout(d) => {
                        at.stdout = at.stdout.map(|o| o + d.len() as u64);
                        sink(Piece::Stdout(d))
                    }
                    Frame::Stderr(d) => {
                        at.stderr = at.stderr.map(|o| o + d.len() as u64);
                        sink(Piece::Stderr(d))
                    }
                    Frame::Report(text) => {
                        self.record_report(job, &text)?;
                        ControlFlow::Continue(())
                    }
                    Frame::End => {
                        // The script ends right after `X` by itself;
                        // nothing it could still say matters, so nothing
                        // on the host can keep the caller waiting: the
                        // rest is read in the background (a pooled shell
                        // then goes back), or the stream is closed.
                        stream.release(frames.rest());
                        return Ok(Run::Drained);
                    }
                    Frame::ScriptEnd(status) => {
                        stream.release(frames.rest());
                        return Ok(Run::Dropped(format!(
                            "the output stream of job {} ended early (status {status})",
                            job.id
                        )));
                    }
                    Frame::Mode(m) => {
                        // Local only from a follower that asked (so the
                        // entry ages); not local from any.
                        if mode == WaitMode::Best || m != "inotify" {
                            super::wait_modes::learn(&job.host, &workroot, &m);
                        }
                        ControlFlow::Continue(())
                    }
                    Frame::Tick => ControlFlow::Continue(()),
                };
                if flow.is_break() || stop() {
                    stream.abort();
                    return Ok(Run::Stopped);
                }
            }
            if stop() {
                stream.abort();
                return Ok(Run::Stopped);
            }
            if reconciled.elapsed() >= RECONCILE_EVERY {
                self.reconcile(std::slice::from_ref(job))?;
                *reconciled = Instant::now();
                if self.store.get(&job.id)?.state.command_over() {
                    stream.abort();
                    return Ok(Run::NotLive);
                }
            }
        }
    }

    /// Record the job's report sent by the follower, as a probe's.
    fn record_report(&mut self, job: &Job, text: &[u8]) -> Result<()> {
        let report = HostReport::parse(&String::from_utf8_lossy(text));
        if let Some(jr) = report.jobs.get(&job.id) {
            let current = self.store.get(&job.id)?;
            if current.state.is_live() {
                self.apply_report(&current, jr)?;
            }
        }
        Ok(())
    }

    /// A job that is over: deliver what is left of its output, read
    /// directly, in bounded chunks up to the sizes seen now.
    fn drain(
        &mut self,
        job: &Job,
        at: &mut Offsets,
        sink: &mut dyn FnMut(Piece) -> ControlFlow<()>,
        stop: &dyn Fn() -> bool,
    ) -> Result<StreamEnd> {
        if at.stdout.is_none() && at.stderr.is_none() {
            // Nothing to deliver (`wait`): the store has seen the end, and
            // the host is not needed — it may well be away.
            return Ok(StreamEnd::Ended(self.store.get(&job.id)?));
        }
        loop {
            if stop() {
                return Ok(StreamEnd::Stopped(self.store.get(&job.id)?));
            }
            let chunk = match self.read_output(
                job,
                at.stdout.unwrap_or(SKIP),
                at.stderr.unwrap_or(SKIP),
                false,
            ) {
                Ok(c) => c,
                Err(CoreError::Transport(t)) if t.is_transient() => {
                    if self.retry_pause(t.to_string(), sink, stop) {
                        return Ok(StreamEnd::Stopped(self.store.get(&job.id)?));
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            if chunk.stdout.is_empty() && chunk.stderr.is_empty() {
                return Ok(StreamEnd::Ended(self.store.get(&job.id)?));
            }
            let mut flow = ControlFlow::Continue(());
            if let (Some(o), false) = (at.stdout.as_mut(), chunk.stdout.is_empty()) {
                *o += chunk.stdout.len() as u64;
                flow = sink(Piece::Stdout(chunk.stdout));
            }
            if let (Some(e), false) = (at.stderr.as_mut(), chunk.stderr.is_empty()) {
                *e += chunk.stderr.len() as u64;
                if flow.is_continue() {
                    flow = sink(Piece::Stderr(chunk.stderr));
                } else {
                    // Not delivered: the next stream starts before it.
                    *e -= chunk.stderr.len() as u64;
                }
            }
            if flow.is_break() {
                return Ok(StreamEnd::Stopped(self.store.get(&job.id)?));
            }
        }
    }

    /// Tell the sink why the stream is retried, then wait [`RETRY_AFTER`]
    /// (or until `stop()`). True if the caller should stop.
    fn retry_pause(
        &self,
        why: String,
        sink: &mut dyn FnMut(Piece) -> ControlFlow<()>,
        stop: &dyn Fn() -> bool,
    ) -> bool {
        if sink(Piece::Retrying(why)).is_break() {
            return true;
        }
        let end = Instant::now() + RETRY_AFTER;
        while Instant::now() < end {
            if stop() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10).min(end - Instant::now()));
        }
        stop()
    }
}
