//! `belay release JOB`: the end of a debug hold.
//!
//! A held job's wrapper waits on its host (see `remote/wrapper.rs`) for a
//! `release` file, a cancel, or its time limit. Releasing writes that file
//! (the job's own directory, nothing else), then watches the job until the
//! wrapper has recorded how it ended — at most a few seconds, as it looks
//! every second. The job then ends with its command's own exit code:
//! `failed`, or `succeeded` for a successful job that asked for its hold.

use std::time::{Duration, Instant};

use super::Engine;
use crate::error::{CoreError, Result};
use crate::job::{Job, JobState};
use crate::remote::scripts;

/// How long `release` waits for the wrapper to record the end.
const RECORDED_WITHIN: Duration = Duration::from_secs(10);

impl Engine {
    /// Ends the hold of the job `reference` names. A job that is not held
    /// is bad input (nothing is written anywhere). Returns the job as the
    /// store has it afterwards: ended, or still `held` if the host did not
    /// record the end in time (the wrapper will: the `release` file stays).
    pub fn release(&mut self, reference: &str) -> Result<Job> {
        let (job, _) = self.job(reference)?;
        if job.state != JobState::Held {
            return Err(CoreError::BadInput(format!(
                "job {} is {}, not held: there is no hold to release",
                job.id, job.state
            )));
        }
        let transport = self.transport(&job.host)?;
        let dir = Self::dir_word(&*transport, &job);
        let out = transport.run_script(&scripts::release(&dir))?;
        let said = String::from_utf8_lossy(&out.stdout);
        if !said.lines().any(|l| l == "R released" || l == "R ended") {
            return Err(CoreError::Protocol {
                host: job.host.clone(),
                message: format!(
                    "releasing job {} failed: {}",
                    job.id,
                    if out.stderr_text().is_empty() {
                        said.trim().to_string()
                    } else {
                        out.stderr_text()
                    }
                ),
            });
        }
        let deadline = Instant::now() + RECORDED_WITHIN;
        loop {
            let current = self.store.get(&job.id)?;
            self.reconcile(std::slice::from_ref(&current))?;
            let now = self.store.get(&job.id)?;
            if now.state != JobState::Held || Instant::now() >= deadline {
                return Ok(now);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
