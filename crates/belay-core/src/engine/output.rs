//! Reading a job's output from byte offsets. The files on the host are
//! append-only, so (offset, bytes) is all a follower needs to resume after
//! any interruption and print each byte exactly once. Following a live
//! job as it writes is [`super::follow`] (the CLI's attached `run`,
//! `logs -f` and `wait`); [`Engine::wait_for_news`] serves the daemon's log
//! requests until they move to [`Engine::stream_output`].

use std::path::Path;
use std::time::{Duration, Instant};

use super::Engine;
use crate::error::{CoreError, Result};
use crate::job::Job;
use crate::remote::{OutputChunk, scripts};
use crate::transport::local::LocalTransport;

/// How often a local job directory is looked at while waiting: a `stat` or
/// three, cheap enough to do every couple of milliseconds.
const LOCAL_WATCH_STEP: Duration = Duration::from_millis(2);

/// Is there something new in a local job directory: its exit file, or a
/// stream longer than what was read?
fn local_news(dir: &Path, out_offset: u64, err_offset: u64, ended_before: bool) -> bool {
    (!ended_before && longer_than(dir, "exit", 0))
        || longer_than(dir, "stdout", out_offset)
        || longer_than(dir, "stderr", err_offset)
}

/// Whether `dir/name` holds more than `offset` bytes (an `exit` record is
/// there once it is not empty: a direct job's is written in place).
fn longer_than(dir: &Path, name: &str, offset: u64) -> bool {
    std::fs::metadata(dir.join(name)).is_ok_and(|m| m.len() > offset)
}

impl Engine {
    /// Up to [`scripts::MAX_CHUNK`] bytes of each stream from the given
    /// offsets; with `with_state`, the job's state is reconciled from the
    /// same round trip (taken before the sizes, so "ended" means "final").
    pub fn read_output(
        &mut self,
        job: &Job,
        out_offset: u64,
        err_offset: u64,
        with_state: bool,
    ) -> Result<OutputChunk> {
        let transport = self.transport(&job.host)?;
        let scheduler = self.scheduler(job)?;
        let dir = Self::dir_word(&*transport, job);
        let script = scripts::read_output(
            &*scheduler,
            &job.id,
            &dir,
            out_offset,
            err_offset,
            with_state,
        );
        let out = transport.run_script(&script)?;
        let chunk = OutputChunk::parse(&out.stdout).ok_or_else(|| CoreError::Protocol {
            host: job.host.clone(),
            message: format!("unreadable output of job {}: {}", job.id, out.stderr_text()),
        })?;
        if let Some(jr) = chunk.report.jobs.get(&job.id).filter(|_| with_state) {
            let current = self.store.get(&job.id)?;
            if current.state.is_live() {
                self.apply_report(&current, jr)?;
            }
        }
        Ok(chunk)
    }

    /// Waits until `until` (or `stop()`), returning early when the job's
    /// files say there is something new to read: the exit file appeared or
    /// a stream grew past the offsets. Only the embedded `local` host's job
    /// directory can be watched this cheaply (a `stat`, no round trip), so
    /// an attached `run` on it ends as soon as the job does; for any other
    /// host (or a job with no directory yet) this just sleeps.
    pub fn wait_for_news(
        &self,
        job: &Job,
        out_offset: u64,
        err_offset: u64,
        until: Instant,
        stop: &dyn Fn() -> bool,
    ) {
        let dir = job
            .remote_dir
            .as_deref()
            .filter(|_| job.host == LocalTransport::NAME)
            .map(Path::new)
            .filter(|d| d.is_absolute());
        let step = if dir.is_some() {
            LOCAL_WATCH_STEP
        } else {
            Duration::from_millis(10)
        };
        // An exit file already there is old news (the state read from it
        // is what the caller has); only its appearance or growth counts.
        let ended_before = dir.is_some_and(|d| longer_than(d, "exit", 0));
        loop {
            if stop() {
                return;
            }
            if let Some(dir) = dir
                && local_news(dir, out_offset, err_offset, ended_before)
            {
                return;
            }
            let now = Instant::now();
            if now >= until {
                return;
            }
            std::thread::sleep(step.min(until - now));
        }
    }

    /// The store's current view of a job.
    pub fn refresh(&self, job: &Job) -> Result<Job> {
        self.store.get(&job.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn news_is_an_exit_file_or_a_longer_stream() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("stdout"), b"abc").unwrap();
        std::fs::write(d.path().join("stderr"), b"").unwrap();
        assert!(
            !local_news(d.path(), 3, 0, false),
            "nothing past what was read"
        );
        assert!(local_news(d.path(), 2, 0, false), "stdout grew");
        std::fs::write(d.path().join("exit"), b"code=0\n").unwrap();
        assert!(local_news(d.path(), 3, 0, false), "the job ended");
        assert!(
            !local_news(d.path(), 3, 0, true),
            "an old exit file is no news"
        );
    }
}
