//! Reading a job's output from byte offsets. The files on the host are
//! append-only, so (offset, bytes) is all a follower needs to resume after
//! any interruption and print each byte exactly once. Following a live
//! job as it writes is [`super::follow`].

use super::Engine;
use crate::error::{CoreError, Result};
use crate::job::Job;
use crate::remote::{OutputChunk, scripts};

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
        let scheduler = Self::scheduler(job)?;
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

    /// The store's current view of a job.
    pub fn refresh(&self, job: &Job) -> Result<Job> {
        self.store.get(&job.id)
    }
}
