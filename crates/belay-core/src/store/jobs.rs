//! The `jobs` table: a job's row is written when it is submitted (the
//! intent, before any host is touched) and changed only through
//! [`Store::transition`], which checks the state machine and appends the
//! event in the same transaction; lookups by id, name and id prefix.

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::cached::Cached;
use super::{Store, store_error};
use crate::error::{CoreError, Result};
use crate::job::{Job, JobId, JobSpec, JobState, id};
use crate::time::now_ms;

/// Fields a transition may set alongside the new state. `None` leaves the
/// column as it is.
#[derive(Debug, Default, Clone)]
pub struct JobUpdate {
    pub scheduler_id: Option<String>,
    pub remote_dir: Option<String>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub last_seen: Option<i64>,
    pub liveness: Option<String>,
    pub hold_until: Option<i64>,
}

/// Which jobs `list` returns.
#[derive(Debug, Default, Clone)]
pub struct JobFilter {
    /// Include ended jobs.
    pub all: bool,
    pub host: Option<String>,
    /// Only this owner's jobs (a user token on the API); `None`: everyone's.
    pub owner: Option<String>,
    /// One page of the newest-first list: (offset, at most this many); a
    /// dashboard over 10,000 jobs asks for the page it shows.
    pub page: Option<(u64, u64)>,
}

pub(super) const JOB_COLUMNS: &str = "id, key, name, host, state, command, workdir, env, scheduler, \
    scheduler_id, remote_dir, exit_code, reason, created_at, updated_at, started_at, ended_at, \
    last_seen, submitter, liveness, login_shell, inputs, outputs, hold_secs, hold_until, sbatch, secrets, owner, gpus";

impl Store {
    /// Record a new job in state `queued`: the intent, before anything
    /// touches a host.
    pub fn insert_job(&mut self, spec: &JobSpec, scheduler: &str, submitter: &str) -> Result<Job> {
        self.insert(spec, scheduler, &[], Some(submitter), None)
    }

    /// [`Store::insert_job`] for a batch scheduler: with the job's sbatch
    /// options, or (no submitter) waiting `queued` with `reason`.
    pub fn insert_scheduled(
        &mut self,
        spec: &JobSpec,
        scheduler: &str,
        sbatch: &[String],
        submitter: Option<&str>,
        reason: Option<&str>,
    ) -> Result<Job> {
        self.insert(spec, scheduler, sbatch, submitter, reason)
    }

    /// Record a job that waits in `queued` for its host to answer: no
    /// submitter (any pass that reaches the host may claim it with
    /// [`Store::claim_submit`]), and `reason` says what it waits for.
    pub fn insert_queued(&mut self, spec: &JobSpec, scheduler: &str, reason: &str) -> Result<Job> {
        self.insert(spec, scheduler, &[], None, Some(reason))
    }

    fn insert(
        &mut self,
        spec: &JobSpec,
        scheduler: &str,
        sbatch: &[String],
        submitter: Option<&str>,
        reason: Option<&str>,
    ) -> Result<Job> {
        let sbatch = serde_json::to_string(sbatch).expect("sbatch options serialise");
        let secrets = serde_json::to_string(&spec.secrets).expect("secret names serialise");
        let installation = self.installation_id()?;
        let now = now_ms();
        let command = serde_json::to_string(&spec.command).expect("argv serialises");
        let env = serde_json::to_string(&spec.env).expect("env serialises");
        let inputs = serde_json::to_string(&spec.inputs).expect("inputs serialise");
        let outputs = serde_json::to_string(&spec.outputs).expect("outputs serialise");
        let serr = store_error(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(serr)?;
        // Ids are random; a clash with an existing one just draws again.
        let job_id = loop {
            let candidate = JobId::random()?;
            let taken: bool = tx
                .cached_row(
                    "SELECT EXISTS(SELECT 1 FROM jobs WHERE id = ?1)",
                    [candidate.as_str()],
                    |r| r.get(0),
                )
                .map_err(serr)?;
            if !taken {
                break candidate;
            }
        };
        let key = job_id.key(&installation);
        let run = || -> rusqlite::Result<()> {
            tx.cached_execute(
                "INSERT INTO jobs (id, key, name, host, state, command, workdir, env, login_shell, \
                 scheduler, created_at, updated_at, submitter, inputs, outputs, reason, hold_secs, sbatch, secrets, owner) \
                 VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                params![
                    job_id.as_str(),
                    key,
                    spec.name,
                    spec.host,
                    command,
                    spec.workdir,
                    env,
                    spec.login_shell,
                    scheduler,
                    now,
                    submitter,
                    inputs,
                    outputs,
                    reason,
                    spec.hold_on_failure,
                    sbatch,
                    secrets,
                    spec.owner,
                ],
            )?;
            tx.cached_execute(
                "INSERT INTO events (job_id, at, from_state, to_state, reason) \
                 VALUES (?1, ?2, NULL, 'queued', ?3)",
                params![
                    job_id.as_str(),
                    now,
                    reason.map_or("submitted by user".to_string(), |r| format!(
                        "submitted by user; {r}"
                    ))
                ],
            )?;
            Ok(())
        };
        run().map_err(serr)?;
        tx.commit().map_err(serr)?;
        self.get(job_id.as_str())
    }

    /// Move a job to `to`, setting `update`'s fields, and log the event.
    ///
    /// Returns `Ok(false)` when nothing changed because another process got
    /// there first (the job is already in `to` or further along). Any other
    /// refused transition is an error: it would be a bug.
    pub fn transition(
        &mut self,
        job_id: &str,
        to: JobState,
        reason: &str,
        update: &JobUpdate,
    ) -> Result<bool> {
        let serr = store_error(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(serr)?;
        let from: String = tx
            .cached_row("SELECT state FROM jobs WHERE id = ?1", [job_id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(serr)?
            .ok_or_else(|| CoreError::UnknownJob(job_id.to_string()))?;
        let from: JobState = from.parse().map_err(|m: String| CoreError::Local {
            path: self.path.display().to_string(),
            message: format!("job {job_id}: {m}"),
        })?;
        // A move decided from a stale view (another process moved the job
        // as far or further meanwhile) is skipped, not an error.
        if !from.can_move_to(to) && from.progress() >= to.progress() {
            return Ok(false);
        }
        from.check_move(to)?;
        let now = now_ms();
        apply_update(&tx, job_id, update).map_err(serr)?;
        tx.cached_execute(
            "UPDATE jobs SET state = ?2, updated_at = ?3 WHERE id = ?1",
            params![job_id, to.as_str(), now],
        )
        .map_err(serr)?;
        tx.cached_execute(
            "INSERT INTO events (job_id, at, from_state, to_state, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![job_id, now, from.as_str(), to.as_str(), reason],
        )
        .map_err(serr)?;
        tx.commit().map_err(serr)?;
        Ok(true)
    }

    /// Update fields without a state change (e.g. `last_seen`, `remote_dir`).
    pub fn touch(&mut self, job_id: &str, update: &JobUpdate) -> Result<()> {
        apply_update(&self.conn, job_id, update).map_err(|e| self.err(e))
    }

    /// The GPU processes a probe saw of each job (`None`: clears).
    pub fn set_job_gpus(&mut self, gpus: &[(&str, Option<String>)]) -> Result<()> {
        self.update_each(
            "UPDATE jobs SET gpus = ?2 WHERE id = ?1",
            gpus.iter().map(|(id, g)| (*id, g.as_deref())),
        )
    }

    /// Record that the host answered for these jobs now (one transaction).
    pub fn touch_seen(&mut self, job_ids: &[&str]) -> Result<()> {
        let now = now_ms();
        self.update_each(
            "UPDATE jobs SET last_seen = ?2 WHERE id = ?1",
            job_ids.iter().map(|id| (*id, now)),
        )
    }

    /// `sql` once for each of `rows`, all in one transaction (none when
    /// there are no rows): a probe's findings for many jobs at once.
    fn update_each<P: rusqlite::Params>(
        &mut self,
        sql: &str,
        rows: impl ExactSizeIterator<Item = P>,
    ) -> Result<()> {
        if rows.len() == 0 {
            return Ok(());
        }
        let serr = store_error(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(serr)?;
        {
            let mut stmt = tx.prepare_cached(sql).map_err(serr)?;
            for row in rows {
                stmt.execute(row).map_err(serr)?;
            }
        }
        tx.commit().map_err(serr)
    }

    /// Take over an orphaned submit, or a queued one (no submitter):
    /// succeeds only if the job is still being submitted and the recorded
    /// submitter is still `expected`, so of several processes that found it
    /// orphaned at once exactly one finishes it, and a queued job cancelled
    /// meanwhile ([`Store::cancel_queued`]) is not claimed at all. A queued
    /// job's reason said what it waited for: once claimed that is history
    /// (its event log keeps it).
    pub fn claim_submit(
        &mut self,
        job_id: &str,
        expected: Option<&str>,
        submitter: &str,
    ) -> Result<bool> {
        let changed = self
            .conn
            .cached_execute(
                "UPDATE jobs SET submitter = ?3, \
                   reason = CASE WHEN state = 'queued' THEN NULL ELSE reason END \
                 WHERE id = ?1 AND submitter IS ?2 AND state IN ('queued', 'submitting')",
                params![job_id, expected, submitter],
            )
            .map_err(|e| self.err(e))?;
        Ok(changed == 1)
    }

    /// Give up a submit this process can no longer carry on (its host went
    /// away): the job is left without a submitter, so the next pass that
    /// reaches the host claims and finishes it, even one in this process (a
    /// daemon, whose own token stays alive).
    pub fn release_submit(&mut self, job_id: &str, submitter: &str) -> Result<()> {
        self.conn
            .cached_execute(
                "UPDATE jobs SET submitter = NULL WHERE id = ?1 AND submitter = ?2",
                params![job_id, submitter],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Cancel a job that waits in `queued` with no submitter, here and now
    /// (nothing of it exists on its host). `Ok(false)`: it was claimed
    /// first (or is no longer queued); the caller cancels it as a job
    /// that may have reached its host. The check and the move are one
    /// transaction, so a cancel and a resume never both win.
    pub fn cancel_queued(&mut self, job_id: &str, reason: &str) -> Result<bool> {
        let serr = store_error(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(serr)?;
        let now = now_ms();
        let changed = tx
            .cached_execute(
                "UPDATE jobs SET state = 'cancelled', reason = ?2, updated_at = ?3, \
                   cancel_pending = NULL, outputs_fetched_at = ?3 \
                 WHERE id = ?1 AND state = 'queued' AND submitter IS NULL",
                params![job_id, reason, now],
            )
            .map_err(serr)?;
        if changed == 1 {
            tx.cached_execute(
                "INSERT INTO events (job_id, at, from_state, to_state, reason) \
                 VALUES (?1, ?2, 'queued', 'cancelled', ?3)",
                params![job_id, now, reason],
            )
            .map_err(serr)?;
        }
        tx.commit().map_err(serr)?;
        Ok(changed == 1)
    }

    /// Live jobs, plus jobs marked lost in the last `lost_window_ms` (an
    /// exit file that turns up late corrects them): what reconcile probes.
    pub fn reconcilable(&self, host: Option<&str>, lost_window_ms: i64) -> Result<Vec<Job>> {
        let mut sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE (state IN ('queued','submitting','pending','running','held') \
             OR (state = 'lost' AND updated_at > ?1))"
        );
        if host.is_some() {
            sql.push_str(" AND host = ?2");
        }
        let since = now_ms() - lost_window_ms;
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let rows = match host {
            Some(h) => stmt.query_map(params![since, h], job_from_row),
            None => stmt.query_map(params![since], job_from_row),
        };
        rows.and_then(|r| r.collect()).map_err(|e| self.err(e))
    }

    pub fn get(&self, job_id: &str) -> Result<Job> {
        self.find_one("id = ?1", job_id)?
            .ok_or_else(|| CoreError::UnknownJob(job_id.to_string()))
    }

    /// The first job matching `condition` (with `?1` bound to `param`).
    fn find_one(&self, condition: &str, param: &str) -> Result<Option<Job>> {
        self.conn
            .cached_row(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE {condition} \
                     ORDER BY created_at DESC, rowid DESC LIMIT 1"
                ),
                [param],
                job_from_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Find a job by exact id, then by name (the newest job of that name),
    /// then by a unique id prefix.
    pub fn resolve(&self, reference: &str) -> Result<Job> {
        if let Some(job) = self.find_one("id = ?1", reference)? {
            return Ok(job);
        }
        // A name means the newest job of that name.
        if let Some(job) = self.find_one("name = ?1", reference)? {
            return Ok(job);
        }
        if id::looks_like_id_prefix(reference) && reference.len() >= 3 {
            let mut stmt = self
                .conn
                .prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 6"
                ))
                .map_err(|e| self.err(e))?;
            let upper = format!("{reference}\u{7f}");
            let found: Vec<Job> = stmt
                .query_map(params![reference, upper], job_from_row)
                .and_then(|rows| rows.collect())
                .map_err(|e| self.err(e))?;
            return the_one_with_prefix(reference, found);
        }
        Err(CoreError::UnknownJob(reference.to_string()))
    }

    /// [`Store::resolve`] for a user who may reach only `owner`'s jobs (a
    /// user token on the API): an exact id is any job's (the caller checks
    /// its owner), but a name or an id prefix is looked up among `owner`'s
    /// jobs only — two users may both have a job named `train`.
    pub fn resolve_owned(&self, reference: &str, owner: &str) -> Result<Job> {
        if let Some(job) = self.find_one("id = ?1", reference)? {
            return Ok(job);
        }
        let owned = |condition: &str, params: &[&dyn rusqlite::ToSql]| -> Result<Vec<Job>> {
            let mut stmt = self
                .conn
                .prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE owner = ?1 AND {condition} \
                     ORDER BY created_at DESC, rowid DESC LIMIT 6"
                ))
                .map_err(|e| self.err(e))?;
            stmt.query_map(params, job_from_row)
                .and_then(|rows| rows.collect())
                .map_err(|e| self.err(e))
        };
        // A name means the newest of the owner's jobs of that name.
        if let Some(job) = owned("name = ?2", &[&owner, &reference])?
            .into_iter()
            .next()
        {
            return Ok(job);
        }
        if id::looks_like_id_prefix(reference) && reference.len() >= 3 {
            let upper = format!("{reference}\u{7f}");
            let found = owned("id >= ?2 AND id < ?3", &[&owner, &reference, &upper])?;
            return the_one_with_prefix(reference, found);
        }
        Err(CoreError::UnknownJob(reference.to_string()))
    }

    /// Jobs, newest first. Without `all`, only jobs that have not ended.
    pub fn list(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let live = JobState::ALL
            .iter()
            .filter(|s| s.is_live())
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(",");
        let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1=1");
        if !filter.all {
            sql.push_str(&format!(" AND state IN ({live})"));
        }
        if filter.host.is_some() {
            sql.push_str(" AND host = :host");
        }
        if filter.owner.is_some() {
            sql.push_str(" AND owner = :owner");
        }
        sql.push_str(" ORDER BY created_at DESC, rowid DESC");
        if let Some((offset, limit)) = filter.page {
            sql.push_str(&format!(" LIMIT {limit} OFFSET {offset}"));
        }
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let mut values: Vec<(&str, &dyn rusqlite::ToSql)> = Vec::new();
        if let Some(h) = &filter.host {
            values.push((":host", h));
        }
        if let Some(o) = &filter.owner {
            values.push((":owner", o));
        }
        let rows = stmt.query_map(values.as_slice(), job_from_row);
        rows.and_then(|r| r.collect()).map_err(|e| self.err(e))
    }
}

/// The one job whose id starts with `reference` among `found`; none is
/// unknown, several are ambiguous (named).
fn the_one_with_prefix(reference: &str, found: Vec<Job>) -> Result<Job> {
    match found.len() {
        0 => Err(CoreError::UnknownJob(reference.to_string())),
        1 => Ok(found.into_iter().next().expect("one")),
        _ => Err(CoreError::AmbiguousJob {
            reference: reference.to_string(),
            candidates: found
                .iter()
                .map(|j| j.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Set the fields `update` carries (`None` keeps the column): the one
/// place a job's columns other than its state are written.
fn apply_update(conn: &Connection, job_id: &str, update: &JobUpdate) -> rusqlite::Result<()> {
    conn.cached_execute(
        "UPDATE jobs SET \
           scheduler_id = COALESCE(?2, scheduler_id), \
           remote_dir = COALESCE(?3, remote_dir), \
           exit_code = COALESCE(?4, exit_code), \
           reason = COALESCE(?5, reason), \
           started_at = COALESCE(?6, started_at), \
           ended_at = COALESCE(?7, ended_at), \
           last_seen = COALESCE(?8, last_seen), \
           liveness = COALESCE(?9, liveness), \
           hold_until = COALESCE(?10, hold_until) \
         WHERE id = ?1",
        params![
            job_id,
            update.scheduler_id,
            update.remote_dir,
            update.exit_code,
            update.reason,
            update.started_at,
            update.ended_at,
            update.last_seen,
            update.liveness,
            update.hold_until,
        ],
    )?;
    Ok(())
}

pub(super) fn job_from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
    let state: String = r.get(4)?;
    let command: String = r.get(5)?;
    let env: String = r.get(7)?;
    let bad = |i: usize, what: String| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            Box::<dyn std::error::Error + Send + Sync>::from(what),
        )
    };
    Ok(Job {
        id: r.get(0)?,
        key: r.get(1)?,
        name: r.get(2)?,
        host: r.get(3)?,
        state: state.parse().map_err(|m| bad(4, m))?,
        command: serde_json::from_str(&command).map_err(|e| bad(5, e.to_string()))?,
        workdir: r.get(6)?,
        env: serde_json::from_str(&env).map_err(|e| bad(7, e.to_string()))?,
        scheduler: r.get(8)?,
        scheduler_id: r.get(9)?,
        remote_dir: r.get(10)?,
        exit_code: r.get(11)?,
        reason: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        started_at: r.get(15)?,
        ended_at: r.get(16)?,
        last_seen: r.get(17)?,
        submitter: r.get(18)?,
        liveness: r.get(19)?,
        login_shell: r.get(20)?,
        inputs: serde_json::from_str(&r.get::<_, String>(21)?)
            .map_err(|e| bad(21, e.to_string()))?,
        outputs: serde_json::from_str(&r.get::<_, String>(22)?)
            .map_err(|e| bad(22, e.to_string()))?,
        hold_secs: r.get(23)?,
        hold_until: r.get(24)?,
        sbatch: serde_json::from_str(&r.get::<_, String>(25)?)
            .map_err(|e| bad(25, e.to_string()))?,
        secrets: serde_json::from_str(&r.get::<_, String>(26)?)
            .map_err(|e| bad(26, e.to_string()))?,
        owner: r.get(27)?,
        gpus: r
            .get::<_, Option<String>>(28)?
            .and_then(|t| serde_json::from_str(&t).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        JobSpec::new("local", Some("n1".into()), vec!["true".into()], None, &[]).unwrap()
    }

    #[test]
    fn an_unreadable_state_names_the_store_file_not_an_invented_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut store = Store::open(&path).unwrap();
        let job = store.insert_job(&spec(), "direct", "1:1").unwrap();
        store
            .conn
            .cached_execute("UPDATE jobs SET state = 'bogus' WHERE id = ?1", [&job.id])
            .unwrap();
        let err = store
            .transition(&job.id, JobState::Submitting, "x", &JobUpdate::default())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(
            err.contains(&job.id) && !err.contains("host store"),
            "{err}"
        );
    }

    #[test]
    fn insert_transition_and_events() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let job = store.insert_job(&spec(), "direct", "1:1").unwrap();
        assert_eq!(job.state, JobState::Queued);
        assert!(
            store
                .transition(
                    &job.id,
                    JobState::Submitting,
                    "staging",
                    &JobUpdate::default()
                )
                .unwrap()
        );
        // Same state again: someone else got there first, not an error.
        assert!(
            !store
                .transition(
                    &job.id,
                    JobState::Submitting,
                    "again",
                    &JobUpdate::default()
                )
                .unwrap()
        );
        // Backwards is a stale view, skipped; an impossible forward move is a bug.
        assert!(
            !store
                .transition(&job.id, JobState::Queued, "back", &JobUpdate::default())
                .unwrap()
        );
        let queued = store.insert_job(&spec(), "direct", "test").unwrap();
        let err = store
            .transition(&queued.id, JobState::Held, "jump", &JobUpdate::default())
            .unwrap_err();
        assert!(err.to_string().contains("queued to held"), "{err}");
        let upd = JobUpdate {
            exit_code: Some(3),
            ..Default::default()
        };
        assert!(
            store
                .transition(&job.id, JobState::Failed, "exit 3", &upd)
                .unwrap()
        );
        let got = store.get(&job.id).unwrap();
        assert_eq!(got.exit_code, Some(3));
        let ev = store.events(&job.id).unwrap();
        let path: Vec<_> = ev.iter().map(|e| e.to.as_str()).collect();
        assert_eq!(path, ["queued", "submitting", "failed"]);
    }

    #[test]
    fn stale_moves_are_skipped_and_takeover_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Store::open(&dir.path().join("s.db")).unwrap();
        let mut b = Store::open(&dir.path().join("s.db")).unwrap();
        let job = a.insert_job(&spec(), "direct", "dead:1").unwrap();
        let none = JobUpdate::default();
        a.transition(&job.id, JobState::Submitting, "x", &none)
            .unwrap();
        a.transition(&job.id, JobState::Running, "x", &none)
            .unwrap();
        // b decided "pending" from an older view: skipped, not an error.
        assert!(
            !b.transition(&job.id, JobState::Pending, "stale", &none)
                .unwrap()
        );
        a.transition(&job.id, JobState::Cancelled, "x", &none)
            .unwrap();
        assert!(
            !b.transition(&job.id, JobState::Running, "stale", &none)
                .unwrap()
        );
        assert_eq!(b.get(&job.id).unwrap().state, JobState::Cancelled);
        // Of two processes taking over the same orphaned submit, one wins.
        let other = a.insert_job(&spec(), "direct", "dead:1").unwrap();
        assert!(a.claim_submit(&other.id, Some("dead:1"), "a:1").unwrap());
        assert!(!b.claim_submit(&other.id, Some("dead:1"), "b:1").unwrap());
        assert_eq!(b.get(&other.id).unwrap().submitter.as_deref(), Some("a:1"));
    }

    #[test]
    fn a_queued_job_is_claimed_or_cancelled_never_both() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Store::open(&dir.path().join("s.db")).unwrap();
        let mut b = Store::open(&dir.path().join("s.db")).unwrap();
        let why = "host gpu1 is unreachable; starts when gpu1 answers";
        let job = a.insert_queued(&spec(), "direct", why).unwrap();
        assert_eq!(job.state, JobState::Queued);
        assert_eq!(job.submitter, None, "any pass may claim it");
        assert_eq!(job.reason.as_deref(), Some(why));
        assert!(a.events(&job.id).unwrap()[0].reason.contains(why));
        // Claimed first: the cancel cannot take the shortcut.
        assert!(a.claim_submit(&job.id, None, "a:1").unwrap());
        assert_eq!(a.get(&job.id).unwrap().reason, None, "the wait is history");
        assert!(!b.cancel_queued(&job.id, "cancelled").unwrap());
        assert_eq!(b.get(&job.id).unwrap().state, JobState::Queued);
        // Cancelled first: no pass can claim it.
        let other = a.insert_queued(&spec(), "direct", why).unwrap();
        assert!(
            b.cancel_queued(&other.id, "cancelled while queued")
                .unwrap()
        );
        assert!(!a.claim_submit(&other.id, None, "a:1").unwrap());
        let got = a.get(&other.id).unwrap();
        assert_eq!(got.state, JobState::Cancelled);
        assert_eq!(got.reason.as_deref(), Some("cancelled while queued"));
        let path: Vec<_> = a
            .events(&other.id)
            .unwrap()
            .iter()
            .map(|e| e.to.as_str())
            .collect();
        assert_eq!(path, ["queued", "cancelled"]);
        // A submit this process gave up is anyone's to finish.
        let mine = a.insert_job(&spec(), "direct", "a:1").unwrap();
        a.release_submit(&mine.id, "b:2").unwrap();
        assert_eq!(
            a.get(&mine.id).unwrap().submitter.as_deref(),
            Some("a:1"),
            "not b's"
        );
        a.release_submit(&mine.id, "a:1").unwrap();
        assert!(b.claim_submit(&mine.id, None, "b:2").unwrap());
    }

    #[test]
    fn resolve_by_id_name_and_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let a = store.insert_job(&spec(), "direct", "1:1").unwrap();
        let b = store.insert_job(&spec(), "direct", "1:1").unwrap();
        assert_eq!(store.resolve(&a.id).unwrap().id, a.id);
        assert_eq!(store.resolve("n1").unwrap().id, b.id, "newest of the name");
        assert_eq!(store.resolve(&a.id[..7]).unwrap().id, a.id);
        assert!(matches!(
            store.resolve("nope"),
            Err(CoreError::UnknownJob(_))
        ));
    }

    #[test]
    fn resolve_owned_looks_up_names_and_prefixes_among_the_owners_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let owned = |owner: &str| {
            let mut s = spec();
            s.owner = Some(owner.into());
            s
        };
        let alices = store.insert_job(&owned("alice"), "direct", "1:1").unwrap();
        let bobs = store.insert_job(&owned("bob"), "direct", "1:1").unwrap();
        assert_eq!(store.resolve("n1").unwrap().id, bobs.id, "newest of all");
        assert_eq!(store.resolve_owned("n1", "alice").unwrap().id, alices.id);
        assert_eq!(store.resolve_owned("n1", "bob").unwrap().id, bobs.id);
        assert!(matches!(
            store.resolve_owned("n1", "carol"),
            Err(CoreError::UnknownJob(_))
        ));
        // An exact id is any job's (the caller checks its owner).
        assert_eq!(store.resolve_owned(&bobs.id, "alice").unwrap().id, bobs.id);
        assert_eq!(
            store.resolve_owned(&alices.id[..7], "alice").unwrap().id,
            alices.id
        );
        assert!(matches!(
            store.resolve_owned(&bobs.id[..7], "alice"),
            Err(CoreError::UnknownJob(_))
        ));
    }

    #[test]
    fn list_hides_ended_jobs_unless_all() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        store.seed_finished_jobs("local", 5).unwrap();
        let live = store.insert_job(&spec(), "direct", "1:1").unwrap();
        let shown = store.list(&JobFilter::default()).unwrap();
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].id, live.id);
        assert_eq!(
            store
                .list(&JobFilter {
                    all: true,
                    ..Default::default()
                })
                .unwrap()
                .len(),
            6
        );
        assert_eq!(store.integrity_check().unwrap(), "ok");
    }
}
