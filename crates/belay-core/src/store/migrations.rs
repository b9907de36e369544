//! Schema migrations, applied in order and recorded in `PRAGMA user_version`.
//! Append new steps; never edit a released one.

use rusqlite::Connection;

const STEPS: &[&str] = &[
    // 1: jobs, their event log, and the installation's identity.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE jobs (
        id           TEXT PRIMARY KEY,
        key          TEXT NOT NULL UNIQUE,
        name         TEXT,
        host         TEXT NOT NULL,
        state        TEXT NOT NULL,
        command      TEXT NOT NULL,          -- JSON array (argv)
        workdir      TEXT,
        env          TEXT NOT NULL,          -- JSON array of [name, value]
        login_shell  INTEGER NOT NULL DEFAULT 1,
        scheduler    TEXT NOT NULL,
        scheduler_id TEXT,
        remote_dir   TEXT,
        exit_code    INTEGER,
        reason       TEXT,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        started_at   INTEGER,
        ended_at     INTEGER,
        last_seen    INTEGER,
        submitter    TEXT                    -- "pid:start" of the process submitting it
    );
    CREATE INDEX jobs_live ON jobs(state, host);
    CREATE INDEX jobs_name ON jobs(name, created_at);
    CREATE INDEX jobs_created ON jobs(created_at);
    CREATE TABLE events (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id     TEXT NOT NULL REFERENCES jobs(id),
        at         INTEGER NOT NULL,
        from_state TEXT,
        to_state   TEXT NOT NULL,
        reason     TEXT NOT NULL
    );
    CREATE INDEX events_job ON events(job_id, seq);
    "#,
    // 2: host health, as last seen by any belay command.
    r#"
    CREATE TABLE hosts (
        name          TEXT PRIMARY KEY,
        last_ok_at    INTEGER,
        last_route    TEXT,
        last_error    TEXT,
        last_error_at INTEGER
    );
    "#,
    // 3: the started job's identity as the host recorded it
    // ("pid ticks boot node pidns"), so a probe of a known-running job is a
    // single /proc read on the host.
    r#"
    ALTER TABLE jobs ADD COLUMN liveness TEXT;
    "#,
    // 4: files: inputs copied in before launch (JSON array of
    // {local, name}) and declared outputs (JSON array of paths).
    r#"
    ALTER TABLE jobs ADD COLUMN inputs TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE jobs ADD COLUMN outputs TEXT NOT NULL DEFAULT '[]';
    "#,
    // 5: what kind of error a host last gave (a link that failed, or a
    // refusal that the user fixes), so one refused host key that was then
    // trusted does not keep the host `degraded`.
    r#"
    ALTER TABLE hosts ADD COLUMN last_error_kind TEXT;
    "#,
    // 6: what a job's host copy must be checked against: the workroot
    // marker seen when it was staged (a missing job directory proves
    // nothing under another marker), and a cancel still to be carried out
    // when the host answers (its grace in seconds; NULL: none).
    r#"
    ALTER TABLE jobs ADD COLUMN workroot_id TEXT;
    ALTER TABLE jobs ADD COLUMN cancel_pending INTEGER;
    CREATE INDEX jobs_cancel_pending ON jobs(host) WHERE cancel_pending IS NOT NULL;
    "#,
    // 7: declared outputs copied here once the job ended (by `Engine::advance`
    // or an attached run): when (NULL: not yet) and why an output could not
    // be copied. Jobs that ended before this step count as done: their
    // outputs were the user's to fetch.
    r#"
    ALTER TABLE jobs ADD COLUMN outputs_fetched_at INTEGER;
    ALTER TABLE jobs ADD COLUMN outputs_fetch_error TEXT;
    UPDATE jobs SET outputs_fetched_at = updated_at
     WHERE state IN ('succeeded','failed','cancelled','lost');
    CREATE INDEX jobs_outputs_due ON jobs(host)
     WHERE outputs_fetched_at IS NULL AND outputs <> '[]';
    "#,
    // 8: debug hold: `run --hold-on-failure` (seconds; NULL: none) and,
    // while a job is `held`, when its hold ends (ms, the host's clock).
    r#"
    ALTER TABLE jobs ADD COLUMN hold_secs INTEGER;
    ALTER TABLE jobs ADD COLUMN hold_until INTEGER;
    "#,
    // 9: forwards (`belay forward`): what the daemon listens on and where
    // each connection goes, so a daemon killed with SIGKILL binds them again
    // (the same local address when it is still free). `closed` says why a
    // forward no longer listens ("job ended"); NULL while it should.
    r#"
    CREATE TABLE forwards (
        id         TEXT PRIMARY KEY,
        host       TEXT NOT NULL,
        job_id     TEXT,
        local      TEXT NOT NULL,
        remote     TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        closed     TEXT,
        note       TEXT
    );
    "#,
    // 10: Slurm: a job's sbatch options (JSON array of strings, `[]` for
    // other schedulers), resolved at submit.
    r#"
    ALTER TABLE jobs ADD COLUMN sbatch TEXT NOT NULL DEFAULT '[]';
    "#,
    // 11: `run --secret`: the names of a job's secrets (JSON array of
    // strings). Never their values.
    r#"
    ALTER TABLE jobs ADD COLUMN secrets TEXT NOT NULL DEFAULT '[]';
    "#,
    // 12: the API on TCP (`belay serve --listen`): per-user tokens, kept
    // only as SHA-256 hashes, and each job's owner (the token's name; NULL:
    // the local user, whom the Unix socket and direct commands serve).
    r#"
    CREATE TABLE tokens (
        name       TEXT PRIMARY KEY,
        hash       TEXT NOT NULL UNIQUE,   -- hex SHA-256 of the token
        admin      INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        last_used  INTEGER
    );
    ALTER TABLE jobs ADD COLUMN owner TEXT;
    CREATE INDEX jobs_owner ON jobs (owner, created_at);
    "#,
    // 13: GPUs. A host's inventory as `host check` last read it (JSON array
    // of hosts::gpus::Gpu; NULL: never asked or nvidia-smi failed, then
    // gpu_error says how) and when; a running job's GPU processes as the
    // last probe saw them (JSON array; NULL: not seen).
    r#"
    ALTER TABLE hosts ADD COLUMN gpus TEXT;
    ALTER TABLE hosts ADD COLUMN gpus_at INTEGER;
    ALTER TABLE hosts ADD COLUMN gpu_error TEXT;
    ALTER TABLE jobs ADD COLUMN gpus TEXT;
    "#,
    // 14: jobs by host. A host list (and every live dashboard, twice a
    // second) counts each host's jobs and lists the hosts jobs ran on:
    // without it each count read the whole history (jobs_live leads with
    // the state), 1.8 ms a host at 17,000 jobs.
    r#"
    CREATE INDEX jobs_host ON jobs(host, state);
    "#,
];

/// Bring the schema up to date inside one immediate transaction, so two
/// processes opening a fresh store at once cannot both migrate.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, step) in STEPS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()
}

pub fn latest_version() -> i64 {
    STEPS.len() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_that_ended_before_outputs_were_fetched_by_belay_owe_none() {
        let mut conn = Connection::open_in_memory().unwrap();
        // The schema as it was before outputs were recorded.
        let before = STEPS
            .iter()
            .position(|s| s.contains("outputs_fetched_at"))
            .unwrap();
        for step in &STEPS[..before] {
            conn.execute_batch(step).unwrap();
        }
        conn.pragma_update(None, "user_version", before as i64)
            .unwrap();
        for (id, state) in [("a", "succeeded"), ("b", "running"), ("c", "lost")] {
            conn.execute(
                "INSERT INTO jobs (id, key, host, state, command, env, scheduler, created_at, \
                 updated_at, outputs) VALUES (?1, ?1, 'h', ?2, '[]', '[]', 'direct', 1, 2, '[\"o\"]')",
                [id, state],
            )
            .unwrap();
        }
        migrate(&mut conn).unwrap();
        let fetched = |id: &str| -> Option<i64> {
            conn.query_row(
                "SELECT outputs_fetched_at FROM jobs WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(fetched("a"), Some(2), "the user's to fetch, as before");
        assert_eq!(fetched("c"), Some(2));
        assert_eq!(fetched("b"), None, "still running: fetched when it ends");
    }
}
