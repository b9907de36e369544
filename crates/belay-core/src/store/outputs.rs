//! Declared outputs to copy here once their job ended: which jobs still
//! owe them, and what became of the copy. `Engine::advance` fetches them
//! with no command running; an attached `run` that fetched them itself
//! records it too, so neither copies them a second time.

use rusqlite::{OptionalExtension, params};

use super::cached::Cached;
use super::jobs::JOB_COLUMNS;
use super::{Store, store_error};
use crate::error::Result;
use crate::job::Job;
use crate::time::now_ms;

/// What became of a job's outputs, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputsFetch {
    /// When the outputs were copied (or found missing for good).
    pub fetched_at: Option<i64>,
    /// Why the last try could not copy them all (a missing output, the
    /// host away): kept after success when an output was missing.
    pub error: Option<String>,
}

/// [`Store::outputs_due`]'s query. Its partial index holds only the jobs
/// that declared outputs not copied yet: a handful, however long the
/// history. Without `INDEXED BY` SQLite preferred `jobs_live` (state and
/// host, two equalities) and read every ended job of the host — 0.5 ms
/// at 1,600 jobs, once per pass of a followed job, growing with the store.
fn outputs_due_sql(by_host: bool) -> String {
    format!(
        "SELECT {JOB_COLUMNS} FROM jobs INDEXED BY jobs_outputs_due \
         WHERE outputs_fetched_at IS NULL AND outputs <> '[]' \
         AND state IN ('succeeded','failed','cancelled'){} ORDER BY updated_at",
        if by_host { " AND host = ?1" } else { "" }
    )
}

impl Store {
    /// Jobs that ended (succeeded, failed or cancelled) with declared
    /// outputs not copied yet, oldest first; only `host`'s if given.
    pub fn outputs_due(&self, host: Option<&str>) -> Result<Vec<Job>> {
        let serr = store_error(&self.path);
        let mut stmt = self
            .conn
            .prepare_cached(&outputs_due_sql(host.is_some()))
            .map_err(serr)?;
        let rows = match host {
            Some(h) => stmt.query_map([h], super::jobs::job_from_row),
            None => stmt.query_map([], super::jobs::job_from_row),
        };
        rows.and_then(|r| r.collect()).map_err(serr)
    }

    /// The outputs are here (or cannot ever be: `error` says why, e.g. an
    /// output the job did not write). Not fetched again.
    pub fn record_outputs_fetched(&mut self, job_id: &str, error: Option<&str>) -> Result<()> {
        self.conn
            .cached_execute(
                "UPDATE jobs SET outputs_fetched_at = ?2, outputs_fetch_error = ?3 WHERE id = ?1",
                params![job_id, now_ms(), error],
            )
            .map_err(store_error(&self.path))?;
        Ok(())
    }

    /// A try that will be repeated (the host did not answer): why.
    pub fn record_outputs_fetch_failed(&mut self, job_id: &str, error: &str) -> Result<()> {
        self.conn
            .cached_execute(
                "UPDATE jobs SET outputs_fetch_error = ?2 WHERE id = ?1",
                params![job_id, error],
            )
            .map_err(store_error(&self.path))?;
        Ok(())
    }

    /// What became of `job_id`'s outputs.
    pub fn outputs_fetch(&self, job_id: &str) -> Result<OutputsFetch> {
        self.conn
            .cached_row(
                "SELECT outputs_fetched_at, outputs_fetch_error FROM jobs WHERE id = ?1",
                [job_id],
                |r| {
                    Ok(OutputsFetch {
                        fetched_at: r.get(0)?,
                        error: r.get(1)?,
                    })
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(store_error(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobSpec, JobState};
    use crate::store::JobUpdate;

    fn job_with_output(store: &mut Store) -> Job {
        let mut spec = JobSpec::new("local", None, vec!["true".into()], None, &[]).unwrap();
        spec.outputs = vec!["out.txt".into()];
        store.insert_job(&spec, "direct", "1:1").unwrap()
    }

    fn end(store: &mut Store, id: &str, to: JobState) {
        let none = JobUpdate::default();
        store
            .transition(id, JobState::Submitting, "x", &none)
            .unwrap();
        store.transition(id, to, "x", &none).unwrap();
    }

    /// However many jobs ended with nothing to fetch, the question reads
    /// only those with outputs owed (the partial index), not every ended
    /// job of the host.
    #[test]
    fn the_outputs_owed_are_found_through_their_own_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        for by_host in [true, false] {
            let plan: Vec<String> = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", outputs_due_sql(by_host)))
                .unwrap()
                .query_map(
                    rusqlite::params_from_iter(["h"].iter().take(usize::from(by_host))),
                    |r| r.get(3),
                )
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(
                plan.iter().any(|p| p.contains("jobs_outputs_due")),
                "{plan:?}"
            );
        }
    }

    #[test]
    fn ended_jobs_owe_their_outputs_until_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let live = job_with_output(&mut store);
        let done = job_with_output(&mut store);
        let lost = job_with_output(&mut store);
        let plain = store
            .insert_job(
                &JobSpec::new("local", None, vec!["true".into()], None, &[]).unwrap(),
                "direct",
                "1:1",
            )
            .unwrap();
        end(&mut store, &done.id, JobState::Succeeded);
        end(&mut store, &lost.id, JobState::Lost);
        end(&mut store, &plain.id, JobState::Failed);
        let due: Vec<String> = store
            .outputs_due(None)
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(
            due,
            std::slice::from_ref(&done.id),
            "live {} lost {}",
            live.id,
            lost.id
        );
        assert!(store.outputs_due(Some("elsewhere")).unwrap().is_empty());

        store
            .record_outputs_fetch_failed(&done.id, "host away")
            .unwrap();
        assert_eq!(
            store.outputs_due(Some("local")).unwrap().len(),
            1,
            "retried"
        );
        assert_eq!(
            store.outputs_fetch(&done.id).unwrap().error.as_deref(),
            Some("host away")
        );
        store
            .record_outputs_fetched(&done.id, Some("output 'out.txt' not found"))
            .unwrap();
        assert!(store.outputs_due(None).unwrap().is_empty());
        let f = store.outputs_fetch(&done.id).unwrap();
        assert!(f.fetched_at.is_some());
        assert_eq!(f.error.as_deref(), Some("output 'out.txt' not found"));
    }
}
