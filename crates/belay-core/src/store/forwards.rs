//! The `forwards` table: the forwards a daemon holds (`belay forward`),
//! recorded before the listener serves, so a daemon killed with SIGKILL
//! binds them again when the next one starts. A forward whose job ended
//! stays listed (closed, with why) until stopped.

use rusqlite::params;

use super::cached::Cached;
use super::{Store, store_error};
use crate::error::Result;

/// One recorded forward.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ForwardRecord {
    pub id: String,
    /// The host alias whose connection carries it.
    pub host: String,
    /// The job it belongs to (closed when the job ends).
    pub job_id: Option<String>,
    /// Where it listens here: `127.0.0.1:PORT` or a socket path.
    pub local: String,
    /// Where connections go, as seen from the host: `host:port` or a path.
    pub remote: String,
    pub created_at: i64,
    /// Why it no longer listens (e.g. "job ended"); None while it should.
    pub closed: Option<String>,
    /// Something the user should know (e.g. the local port changed).
    pub note: Option<String>,
}

const COLUMNS: &str = "id, host, job_id, local, remote, created_at, closed, note";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ForwardRecord> {
    Ok(ForwardRecord {
        id: r.get(0)?,
        host: r.get(1)?,
        job_id: r.get(2)?,
        local: r.get(3)?,
        remote: r.get(4)?,
        created_at: r.get(5)?,
        closed: r.get(6)?,
        note: r.get(7)?,
    })
}

impl Store {
    pub fn insert_forward(&mut self, f: &ForwardRecord) -> Result<()> {
        self.conn
            .cached_execute(
                &format!("INSERT INTO forwards ({COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)"),
                params![
                    f.id,
                    f.host,
                    f.job_id,
                    f.local,
                    f.remote,
                    f.created_at,
                    f.closed,
                    f.note
                ],
            )
            .map_err(store_error(&self.path))?;
        Ok(())
    }

    /// Every recorded forward, oldest first.
    pub fn forwards(&self) -> Result<Vec<ForwardRecord>> {
        let serr = store_error(&self.path);
        let mut q = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM forwards ORDER BY created_at, id"
            ))
            .map_err(serr)?;
        let rows = q.query_map([], row).map_err(serr)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(serr)
    }

    /// Where it listens now and what the user should know about it.
    pub fn update_forward_local(
        &mut self,
        id: &str,
        local: &str,
        note: Option<&str>,
    ) -> Result<()> {
        self.conn
            .cached_execute(
                "UPDATE forwards SET local = ?2, note = ?3 WHERE id = ?1",
                params![id, local, note],
            )
            .map_err(store_error(&self.path))?;
        Ok(())
    }

    /// It no longer listens, and why.
    pub fn close_forward(&mut self, id: &str, why: &str) -> Result<()> {
        self.conn
            .cached_execute(
                "UPDATE forwards SET closed = ?2 WHERE id = ?1",
                params![id, why],
            )
            .map_err(store_error(&self.path))?;
        Ok(())
    }

    pub fn delete_forward(&mut self, id: &str) -> Result<()> {
        self.conn
            .cached_execute("DELETE FROM forwards WHERE id = ?1", [id])
            .map_err(store_error(&self.path))?;
        Ok(())
    }
}
