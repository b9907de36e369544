//! The `events` table: each job's state changes, appended by
//! [`Store::transition`] in the same transaction as the change; read back
//! oldest first for `belay show`.

use crate::error::Result;
use crate::job::{JobEvent, JobState};

use super::Store;

impl Store {
    /// The event log of one job, oldest first.
    pub fn events(&self, job_id: &str) -> Result<Vec<JobEvent>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT at, from_state, to_state, reason FROM events WHERE job_id = ?1 ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([job_id], |r| {
                let from: Option<String> = r.get(1)?;
                let to: String = r.get(2)?;
                Ok(JobEvent {
                    at: r.get(0)?,
                    from: from.and_then(|s| s.parse().ok()),
                    to: to.parse().unwrap_or(JobState::Lost),
                    reason: r.get(3)?,
                })
            })
            .and_then(|r| r.collect())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }
}
