//! The local store: SQLite under `BELAY_HOME`, in WAL mode on a local disk
//! and with a rollback journal on a network filesystem ([`filesystem`]).
//!
//! It holds what belay *intends* and what it last *saw*; the job directory on
//! the host holds what *happened*. Every state change goes through
//! [`Store::transition`], which checks the state machine and appends to the
//! event log in the same transaction. Writers take the lock up front
//! (`BEGIN IMMEDIATE`) and wait on a busy timeout, so concurrent `belay`
//! processes queue instead of failing.
//!
//! Layout: this file opens the store (journal mode, migrations) and holds
//! what every table shares; each table's queries are an `impl Store` block
//! of their own — [`jobs`] (the job rows and their state transitions),
//! [`events`] (the per-job event log), [`hosts`] (host health),
//! [`job_host`] (what a job's host copy is checked against: its workroot
//! marker, a cancel waiting for the host), [`outputs`] (declared outputs
//! still to copy here once their job ended), [`forwards`] (the forwards a
//! daemon listens for, bound again after a restart), [`tokens`] (the API's
//! per-user tokens, as hashes). Their queries go through the connection's
//! statement cache ([`cached`]).
//! `bench` seeds large stores for benchmarks only (feature `bench`).

#[cfg(any(test, feature = "bench"))]
mod bench;
mod cached;
mod events;
pub mod filesystem;
mod forwards;
mod hosts;
mod job_host;
mod jobs;
mod migrations;
mod outputs;
mod tokens;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use crate::error::{CoreError, Result};
use crate::job::id;
use filesystem::FsKind;

pub use forwards::ForwardRecord;
pub use hosts::{DEGRADED_WINDOW_MS, HostHealth};
pub use jobs::{JobFilter, JobUpdate};
pub use migrations::latest_version;
pub use outputs::OutputsFetch;
pub use tokens::TokenRecord;

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// [`Store::installation_id`], once read: it never changes once set,
    /// and every submit asks for it.
    installation: Option<String>,
}

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
        conn.set_prepared_statement_cache_capacity(cached::CACHE_CAPACITY);
        // WAL lets readers (`ps`) run while a writer (`run`) commits;
        // NORMAL sync is durable across process crashes, which is the
        // failure we design for (power loss may drop the last commit).
        // On a filesystem shared between machines WAL is unsafe (its index
        // is shared memory, one machine's): a rollback journal with FULL
        // syncs, which relies only on the file locks such filesystems have.
        // The journal mode persists in the file, so only a store that is
        // not yet in the wanted mode switches; that needs an exclusive lock
        // for which SQLite does not call the busy handler, so concurrent
        // first opens retry here.
        let fs = path.parent().map_or(FsKind::Local, filesystem::kind_of);
        let (want, sync) = match fs {
            FsKind::Local => ("wal", "NORMAL"),
            FsKind::Network(_) => ("delete", "FULL"),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mode: String = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .map_err(err)?;
            if mode.eq_ignore_ascii_case(want) {
                break;
            }
            let set = format!("PRAGMA journal_mode = {want}");
            match conn.query_row(&set, [], |r| r.get::<_, String>(0)) {
                // Not switched: another process has the store open.
                Ok(now) if !now.eq_ignore_ascii_case(want) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(CoreError::Io {
                            what: format!(
                                "store {}: cannot leave {now} mode for {want} ({})",
                                path.display(),
                                match fs {
                                    FsKind::Network(name) => format!(
                                        "it is on a network filesystem ({name}); stop the other belay processes using it, or set BELAY_HOME to a local disk"
                                    ),
                                    FsKind::Local => "it is in use".to_string(),
                                }
                            ),
                            source: std::io::Error::from(std::io::ErrorKind::ResourceBusy),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(_) => {}
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(err(e)),
            }
        }
        conn.pragma_update(None, "synchronous", sync).map_err(err)?;
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
            installation: None,
        })
    }

    pub(super) fn err(&self, source: rusqlite::Error) -> CoreError {
        store_error(&self.path)(source)
    }

    /// This installation's random id, created on first use.
    pub fn installation_id(&mut self) -> Result<String> {
        if let Some(id) = &self.installation {
            return Ok(id.clone());
        }
        let get = |c: &Connection| {
            c.query_row(
                "SELECT value FROM meta WHERE key = 'installation'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()
        };
        if let Some(v) = get(&self.conn).map_err(|e| self.err(e))? {
            self.installation = Some(v.clone());
            return Ok(v);
        }
        let fresh = id::random_hex(4)?;
        self.conn
            .execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('installation', ?1)",
                [&fresh],
            )
            .map_err(|e| self.err(e))?;
        let id = get(&self.conn)
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.err(rusqlite::Error::QueryReturnedNoRows))?;
        self.installation = Some(id.clone());
        Ok(id)
    }

    /// No transaction is open on this connection: it can serve another
    /// caller as if freshly opened.
    pub fn is_idle(&self) -> bool {
        self.conn.is_autocommit()
    }

    /// Run `PRAGMA integrity_check` (tests and `belay doctor`).
    pub fn integrity_check(&self) -> Result<String> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Errors of the store at `path`, for use while a transaction holds the
/// connection (so `self.err` cannot be borrowed).
pub(super) fn store_error(path: &Path) -> impl Fn(rusqlite::Error) -> CoreError + Copy + '_ {
    move |source| CoreError::Store {
        path: path.display().to_string(),
        source,
    }
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
