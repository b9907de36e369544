//! What belay must remember about a job's copy on its host, beyond its
//! state: the workroot marker its directory was staged under, and a cancel
//! the user asked for while the host could not be reached. Kept apart from
//! the job row's hot columns: both are read only on the rare paths that
//! need them (a missing job directory, a host answering again).

use rusqlite::{OptionalExtension, params};

use super::cached::Cached;
use super::{Store, store_error};
use crate::error::Result;
use crate::job::JobState;

impl Store {
    /// Record the id of the `.belay-workroot` marker the job was staged under.
    pub fn set_workroot_id(&mut self, job_id: &str, marker: &str) -> Result<()> {
        self.conn
            .cached_execute(
                "UPDATE jobs SET workroot_id = ?2 WHERE id = ?1",
                params![job_id, marker],
            )
            .map_err(store_error(&self.path))?;
        Ok(())
    }

    /// The workroot marker recorded at staging (None for jobs staged before
    /// markers existed, or whose host could not write one).
    pub fn workroot_id(&self, job_id: &str) -> Result<Option<String>> {
        self.conn
            .cached_row(
                "SELECT workroot_id FROM jobs WHERE id = ?1",
                [job_id],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(store_error(&self.path))
    }

    /// Remember that the user cancelled this job while its host could not
    /// be reached (`grace` seconds between TERM and KILL), or forget it.
    pub fn set_cancel_pending(&mut self, job_id: &str, grace: Option<u32>) -> Result<()> {
        self.conn
            .cached_execute(
                "UPDATE jobs SET cancel_pending = ?2 WHERE id = ?1",
                params![job_id, grace],
            )
            .map_err(store_error(&self.path))?;
        Ok(())
    }

    /// Record that these jobs are being cancelled (`grace` seconds between
    /// TERM and KILL), in one transaction, before the cancel reaches their
    /// host: a process killed before the outcome is recorded leaves the
    /// cancel to the next command that reaches the host.
    pub fn record_cancels_pending(&mut self, job_ids: &[&str], grace: u32) -> Result<()> {
        let serr = store_error(&self.path);
        let tx = self.conn.transaction().map_err(serr)?;
        {
            let mut set = tx
                .prepare_cached("UPDATE jobs SET cancel_pending = ?2 WHERE id = ?1")
                .map_err(serr)?;
            for id in job_ids {
                set.execute(params![id, grace]).map_err(serr)?;
            }
        }
        tx.commit().map_err(serr)
    }

    /// Forget the cancels recorded for these jobs of `host` (carried out),
    /// in one transaction.
    pub fn clear_cancels_pending(&mut self, host: &str, job_ids: &[&str]) -> Result<()> {
        let serr = store_error(&self.path);
        let tx = self.conn.transaction().map_err(serr)?;
        {
            let mut clear = tx
                .prepare_cached(
                    "UPDATE jobs SET cancel_pending = NULL \
                     WHERE id = ?1 AND host = ?2 AND cancel_pending IS NOT NULL",
                )
                .map_err(serr)?;
            for id in job_ids {
                clear.execute(params![id, host]).map_err(serr)?;
            }
        }
        tx.commit().map_err(serr)
    }

    /// Whether `job_id` is cancelled already or has a cancel recorded and
    /// not carried out yet (one read, for the submit's last check).
    pub fn cancel_recorded(&self, job_id: &str) -> Result<bool> {
        self.conn
            .cached_row(
                "SELECT state = ?2 OR cancel_pending IS NOT NULL FROM jobs WHERE id = ?1",
                params![job_id, JobState::Cancelled.as_str()],
                |r| r.get(0),
            )
            .map_err(store_error(&self.path))
    }

    /// Jobs on `host` with a cancel waiting to be carried out, with its grace.
    pub fn cancels_pending(&self, host: &str) -> Result<Vec<(String, u32)>> {
        let serr = store_error(&self.path);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, cancel_pending FROM jobs \
                 WHERE host = ?1 AND cancel_pending IS NOT NULL",
            )
            .map_err(serr)?;
        let rows = stmt
            .query_map([host], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(serr)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(serr)
    }
}
