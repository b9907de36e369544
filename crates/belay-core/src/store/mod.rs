//! The local store: SQLite in WAL mode under `BELAY_HOME`.
//!
//! It holds what belay *intends* and what it last *saw*; the job directory on
//! the host holds what *happened*. Every state change goes through
//! [`Store::transition`], which checks the state machine and appends to the
//! event log in the same transaction. Writers take the lock up front
//! (`BEGIN IMMEDIATE`) and wait on a busy timeout, so concurrent `belay`
//! processes queue instead of failing.

mod migrations;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use crate::error::{CoreError, Result};
use crate::job::{Job, JobEvent, JobId, JobSpec, JobState, id};
use crate::time::now_ms;

pub use migrations::latest_version;

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
}

/// What belay last saw of a host (times in ms since the epoch).
#[derive(Debug, Clone, Default)]
pub struct HostHealth {
    pub last_ok_at: Option<i64>,
    pub last_route: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
}

/// How long an error keeps an answering host `degraded`.
pub const DEGRADED_WINDOW_MS: i64 = 10 * 60 * 1000;

impl HostHealth {
    /// `unreachable`: the last contact failed. `degraded`: it answers, but
    /// failed within the last ten minutes or only through a fallback jump
    /// host. `healthy`: it answers. `unknown`: never contacted.
    pub fn status(&self, now: i64) -> &'static str {
        match (self.last_ok_at, self.last_error_at) {
            (None, None) => "unknown",
            (None, Some(_)) => "unreachable",
            (Some(ok), Some(err)) if err > ok => "unreachable",
            (Some(_), Some(err)) if now - err < DEGRADED_WINDOW_MS => "degraded",
            _ if self
                .last_route
                .as_deref()
                .is_some_and(|r| r.contains("fallback")) =>
            {
                "degraded"
            }
            _ => "healthy",
        }
    }
}

/// Which jobs `list` returns.
#[derive(Debug, Default, Clone)]
pub struct JobFilter {
    /// Include ended jobs.
    pub all: bool,
    pub host: Option<String>,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

const JOB_COLUMNS: &str = "id, key, name, host, state, command, workdir, env, scheduler, \
    scheduler_id, remote_dir, exit_code, reason, created_at, updated_at, started_at, ended_at, \
    last_seen, submitter, liveness, login_shell, inputs, outputs";

impl Store {
    /// Open (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            create_private_dir(dir)?;
        }
        let err = |source| CoreError::Store {
            path: path.display().to_string(),
            source,
        };
        let mut conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        // WAL lets readers (`ps`) run while a writer (`run`) commits;
        // NORMAL sync is durable across process crashes, which is the
        // failure we design for (power loss may drop the last commit).
        // WAL persists in the file, so only a new store switches to it; that
        // needs an exclusive lock for which SQLite does not call the busy
        // handler, so concurrent first opens retry here.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mode: String = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .map_err(err)?;
            if mode.eq_ignore_ascii_case("wal") {
                break;
            }
            match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
                Ok(_) => {}
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(err(e)),
            }
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        let current: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        if current < migrations::latest_version() {
            migrations::migrate(&mut conn).map_err(err)?;
        }
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> CoreError {
        store_error(&self.path)(source)
    }

    /// This installation's random id, created on first use.
    pub fn installation_id(&mut self) -> Result<String> {
        let get = |c: &Connection| {
            c.query_row(
                "SELECT value FROM meta WHERE key = 'installation'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()
        };
        if let Some(v) = get(&self.conn).map_err(|e| self.err(e))? {
            return Ok(v);
        }
        let fresh = id::random_hex(4)?;
        self.conn
            .execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('installation', ?1)",
                [&fresh],
            )
            .map_err(|e| self.err(e))?;
        get(&self.conn)
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.err(rusqlite::Error::QueryReturnedNoRows))
    }

    /// Record a new job in state `queued`: the intent, before anything
    /// touches a host.
    pub fn insert_job(&mut self, spec: &JobSpec, scheduler: &str, submitter: &str) -> Result<Job> {
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
                .query_row(
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
            tx.execute(
                "INSERT INTO jobs (id, key, name, host, state, command, workdir, env, login_shell, \
                 scheduler, created_at, updated_at, submitter, inputs, outputs) \
                 VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13)",
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
                ],
            )?;
            tx.execute(
                "INSERT INTO events (job_id, at, from_state, to_state, reason) \
                 VALUES (?1, ?2, NULL, 'queued', 'submitted by user')",
                params![job_id.as_str(), now],
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
            .query_row("SELECT state FROM jobs WHERE id = ?1", [job_id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(serr)?
            .ok_or_else(|| CoreError::UnknownJob(job_id.to_string()))?;
        let from: JobState = from.parse().map_err(|m: String| CoreError::Protocol {
            host: "store".into(),
            message: m,
        })?;
        // A move decided from a stale view (another process moved the job
        // as far or further meanwhile) is skipped, not an error.
        if !from.can_move_to(to) && from.progress() >= to.progress() {
            return Ok(false);
        }
        from.check_move(to)?;
        let now = now_ms();
        apply_update(&tx, job_id, update).map_err(serr)?;
        tx.execute(
            "UPDATE jobs SET state = ?2, updated_at = ?3 WHERE id = ?1",
            params![job_id, to.as_str(), now],
        )
        .map_err(serr)?;
        tx.execute(
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

    /// Record that the host answered for these jobs now (one transaction).
    pub fn touch_seen(&mut self, job_ids: &[&str]) -> Result<()> {
        if job_ids.is_empty() {
            return Ok(());
        }
        let serr = store_error(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(serr)?;
        {
            let mut stmt = tx
                .prepare_cached("UPDATE jobs SET last_seen = ?2 WHERE id = ?1")
                .map_err(serr)?;
            let now = now_ms();
            for id in job_ids {
                stmt.execute(params![id, now]).map_err(serr)?;
            }
        }
        tx.commit().map_err(serr)
    }

    /// Take over an orphaned submit: succeeds only if the recorded
    /// submitter is still `expected`, so of several processes that found it
    /// orphaned at once exactly one finishes it.
    pub fn claim_submit(
        &mut self,
        job_id: &str,
        expected: Option<&str>,
        submitter: &str,
    ) -> Result<bool> {
        let changed = self
            .conn
            .execute(
                "UPDATE jobs SET submitter = ?3 WHERE id = ?1 AND submitter IS ?2",
                params![job_id, expected, submitter],
            )
            .map_err(|e| self.err(e))?;
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
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
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
            .query_row(
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
                .prepare(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 6"
                ))
                .map_err(|e| self.err(e))?;
            let upper = format!("{reference}\u{7f}");
            let found: Vec<Job> = stmt
                .query_map(params![reference, upper], job_from_row)
                .and_then(|rows| rows.collect())
                .map_err(|e| self.err(e))?;
            match found.len() {
                0 => {}
                1 => return Ok(found.into_iter().next().expect("one")),
                _ => {
                    return Err(CoreError::AmbiguousJob {
                        reference: reference.to_string(),
                        candidates: found
                            .iter()
                            .map(|j| j.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
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
            sql.push_str(" AND host = ?1");
        }
        sql.push_str(" ORDER BY created_at DESC, rowid DESC");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = match &filter.host {
            Some(h) => stmt.query_map([h], job_from_row),
            None => stmt.query_map([], job_from_row),
        };
        rows.and_then(|r| r.collect()).map_err(|e| self.err(e))
    }

    /// The event log of one job, oldest first.
    pub fn events(&self, job_id: &str) -> Result<Vec<JobEvent>> {
        let mut stmt = self
            .conn
            .prepare(
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

    /// The host answered (through `route`).
    pub fn record_host_ok(&mut self, host: &str, route: Option<&str>) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO hosts (name, last_ok_at, last_route) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(name) DO UPDATE SET last_ok_at = ?2, last_route = COALESCE(?3, last_route)",
                params![host, now_ms(), route],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The host could not be reached or refused us.
    pub fn record_host_error(&mut self, host: &str, error: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO hosts (name, last_error, last_error_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(name) DO UPDATE SET last_error = ?2, last_error_at = ?3",
                params![host, error, now_ms()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// What belay last saw of `host`.
    pub fn host_health(&self, host: &str) -> Result<Option<HostHealth>> {
        self.conn
            .query_row(
                "SELECT last_ok_at, last_route, last_error, last_error_at FROM hosts WHERE name = ?1",
                [host],
                |r| {
                    Ok(HostHealth {
                        last_ok_at: r.get(0)?,
                        last_route: r.get(1)?,
                        last_error: r.get(2)?,
                        last_error_at: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every host name belay has met: hosts with jobs or a health record.
    pub fn host_names(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT host FROM jobs UNION SELECT name FROM hosts ORDER BY 1")
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(|r| r.collect())
            .map_err(|e| self.err(e))
    }

    /// Job counts on `host`: (live, all).
    pub fn host_job_counts(&self, host: &str) -> Result<(i64, i64)> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FILTER (WHERE state IN ('queued','submitting','pending','running','held')), \
                 COUNT(*) FROM jobs WHERE host = ?1",
                [host],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))
    }

    /// Run `PRAGMA integrity_check` (tests and `belay doctor`).
    pub fn integrity_check(&self) -> Result<String> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Bulk-insert ended jobs (benchmarks only: seeds a large store).
    #[doc(hidden)]
    pub fn seed_finished_jobs(&mut self, host: &str, count: usize) -> Result<()> {
        let installation = self.installation_id()?;
        let serr = store_error(&self.path);
        let tx = self.conn.transaction().map_err(serr)?;
        {
            let mut stmt = tx
                .prepare(
                    "INSERT OR IGNORE INTO jobs (id, key, host, state, command, env, scheduler, \
                     exit_code, created_at, updated_at, started_at, ended_at) \
                     VALUES (?1, ?2, ?3, 'succeeded', '[\"true\"]', '[]', 'direct', 0, ?4, ?4, ?4, ?4)",
                )
                .map_err(serr)?;
            let base = now_ms() - count as i64 * 1000;
            for i in 0..count {
                let jid = JobId::random()?;
                stmt.execute(params![
                    jid.as_str(),
                    jid.key(&installation),
                    host,
                    base + i as i64 * 1000
                ])
                .map_err(serr)?;
            }
        }
        tx.commit().map_err(serr)
    }
}

/// Set the fields `update` carries (`None` keeps the column): the one
/// place a job's columns other than its state are written.
fn apply_update(conn: &Connection, job_id: &str, update: &JobUpdate) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE jobs SET \
           scheduler_id = COALESCE(?2, scheduler_id), \
           remote_dir = COALESCE(?3, remote_dir), \
           exit_code = COALESCE(?4, exit_code), \
           reason = COALESCE(?5, reason), \
           started_at = COALESCE(?6, started_at), \
           ended_at = COALESCE(?7, ended_at), \
           last_seen = COALESCE(?8, last_seen), \
           liveness = COALESCE(?9, liveness) \
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
        ],
    )?;
    Ok(())
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Errors of the store at `path`, for use while a transaction holds the
/// connection (so `self.err` cannot be borrowed).
fn store_error(path: &Path) -> impl Fn(rusqlite::Error) -> CoreError + Copy + '_ {
    move |source| CoreError::Store {
        path: path.display().to_string(),
        source,
    }
}

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
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
    })
}

/// Create `dir` (and parents) readable only by the user: the store and job
/// directories may hold command lines and environment values.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CoreError::Io {
            what: format!("creating {}", dir.display()),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        JobSpec::new("local", Some("n1".into()), vec!["true".into()], None, &[]).unwrap()
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
        let err = store
            .transition(&job.id, JobState::Held, "jump", &JobUpdate::default())
            .unwrap_err();
        assert!(err.to_string().contains("submitting to held"), "{err}");
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
                    host: None
                })
                .unwrap()
                .len(),
            6
        );
        assert_eq!(store.integrity_check().unwrap(), "ok");
    }
}
