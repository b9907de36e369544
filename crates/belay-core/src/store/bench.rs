//! Benchmark support, not part of the production API: seeding a store with
//! many ended jobs (`ps` over 10,000 jobs in bench/local.py). Built only for
//! tests and with the `bench` feature (the `seed_store` example).

use rusqlite::params;

use super::{Store, store_error};
use crate::error::Result;
use crate::job::JobId;
use crate::time::now_ms;

impl Store {
    /// Bulk-insert ended jobs (benchmarks only: seeds a large store).
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
