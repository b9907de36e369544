//! Cancelling jobs: the host-side script does the work (TERM the job's
//! session, KILL after the grace period, record the exit) so a dropped link
//! mid-cancel leaves nothing half-done; the engine records the outcome.

use super::Engine;
use crate::error::{CoreError, Result};
use crate::job::{Job, JobState};
use crate::remote::{HostReport, RemoteStatus, scripts};

/// Default seconds between TERM and KILL.
pub const DEFAULT_GRACE_SECS: u32 = 10;

impl Engine {
    /// Stop a job. Ended jobs are returned unchanged.
    pub fn cancel(&mut self, job: &Job, grace_secs: u32) -> Result<Job> {
        if !job.state.is_live() {
            return Ok(job.clone());
        }
        let transport = self.transport(&job.host)?;
        let scheduler = Self::scheduler(job)?;
        let dir = Self::dir_word(&*transport, job);
        let never_staged = job.remote_dir.is_none();
        let script = scripts::cancel(&*scheduler, &job.id, &dir, grace_secs, never_staged);
        let out = transport.run_script(&script)?;
        let report = HostReport::parse(&String::from_utf8_lossy(&out.stdout));
        let Some(jr) = report.jobs.get(&job.id) else {
            return Err(CoreError::Protocol {
                host: job.host.clone(),
                message: format!(
                    "cancelling job {} gave no report: {}",
                    job.id,
                    out.stderr_text()
                ),
            });
        };
        if jr.status == RemoteStatus::Elsewhere {
            return Err(CoreError::Protocol {
                host: job.host.clone(),
                message: format!(
                    "cannot cancel job {} from here: {}",
                    job.id,
                    jr.field("why").unwrap_or("it runs elsewhere")
                ),
            });
        }
        let current = self.store.get(&job.id)?;
        if let Some(why) = self.no_verdict(&current, jr)? {
            return Err(CoreError::Protocol {
                host: job.host.clone(),
                message: format!("cannot cancel job {} now: {why}", job.id),
            });
        }
        if jr.status == RemoteStatus::Absent && current.remote_dir.is_none() {
            // Never staged, and its directory cannot even be created there:
            // nothing can launch it; the intent is simply withdrawn.
            self.settle(
                &current,
                JobState::Cancelled,
                "cancelled before it was staged",
                Default::default(),
            )?;
            return self.store.get(&job.id);
        }
        if current.state.is_live() {
            self.apply_report(&current, jr)?;
        }
        self.store.get(&job.id)
    }
}
