//! The `hosts` table: what belay last saw of each host — when it last
//! answered and through which route, the last error — from which `host
//! list` derives healthy / degraded / unreachable.

use rusqlite::{OptionalExtension, params};

use super::Store;
use super::cached::Cached;
use crate::error::Result;
use crate::hosts::gpus::{Gpu, Inventory};
use crate::time::now_ms;

/// What belay last saw of a host (times in ms since the epoch).
#[derive(Debug, Clone, Default)]
pub struct HostHealth {
    pub last_ok_at: Option<i64>,
    pub last_route: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// [`crate::transport::TransportError::kind`] of the last error
    /// (`None` for errors recorded before belay kept it).
    pub last_error_kind: Option<String>,
    /// The GPUs `host check` last listed (`None`: never asked, or
    /// nvidia-smi failed: see `gpu_error`).
    pub gpus: Option<Vec<Gpu>>,
    pub gpus_at: Option<i64>,
    pub gpu_error: Option<String>,
}

/// How long an error keeps an answering host `degraded`.
pub const DEGRADED_WINDOW_MS: i64 = 10 * 60 * 1000;

impl HostHealth {
    /// `unreachable`: the last contact failed. `degraded`: it answers, but
    /// its link failed within the last ten minutes, or it answers only
    /// through a fallback jump host. `healthy`: it answers (a refusal the
    /// user has fixed since, such as an untrusted host key, is history, not
    /// a symptom). `unknown`: never contacted.
    pub fn status(&self, now: i64) -> &'static str {
        match (self.last_ok_at, self.last_error_at) {
            (None, None) => "unknown",
            (None, Some(_)) => "unreachable",
            (Some(ok), Some(err)) if err > ok => "unreachable",
            (Some(_), Some(err)) if now - err < DEGRADED_WINDOW_MS && self.link_failed() => {
                "degraded"
            }
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

    /// Whether the last error was the link failing (or of a kind not
    /// recorded), as opposed to a refusal that needed the user.
    fn link_failed(&self) -> bool {
        match self.last_error_kind.as_deref() {
            None => true,
            Some(kind) => matches!(kind, "unreachable" | "not_responding"),
        }
    }

    /// The host answered after its last error.
    pub fn answered_since_error(&self) -> bool {
        matches!((self.last_ok_at, self.last_error_at), (Some(ok), Some(err)) if ok >= err)
    }
}

impl Store {
    /// The host answered (through `route`).
    pub(crate) fn record_host_ok(&mut self, host: &str, route: Option<&str>) -> Result<()> {
        self.conn
            .cached_execute(
                "INSERT INTO hosts (name, last_ok_at, last_route) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(name) DO UPDATE SET last_ok_at = ?2, last_route = COALESCE(?3, last_route)",
                params![host, now_ms(), route],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The host could not be reached or refused us (`kind`: see
    /// [`crate::transport::TransportError::kind`]).
    pub(crate) fn record_host_error(&mut self, host: &str, kind: &str, error: &str) -> Result<()> {
        self.conn
            .cached_execute(
                "INSERT INTO hosts (name, last_error, last_error_at, last_error_kind) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(name) DO UPDATE SET last_error = ?2, last_error_at = ?3, last_error_kind = ?4",
                params![host, error, now_ms(), kind],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// What `host check` read of the host's GPUs (`Unknown` keeps the
    /// last record).
    pub(crate) fn record_host_gpus(&mut self, host: &str, inventory: &Inventory) -> Result<()> {
        let (gpus, error) = match inventory {
            Inventory::Unknown => return Ok(()),
            Inventory::NoTool => (Some("[]".to_string()), None),
            Inventory::Gpus(g) => (serde_json::to_string(g).ok(), None),
            Inventory::Failed(e) => (None, Some(e.as_str())),
        };
        self.conn
            .cached_execute(
                "INSERT INTO hosts (name, gpus, gpus_at, gpu_error) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(name) DO UPDATE SET gpus = ?2, gpus_at = ?3, gpu_error = ?4",
                params![host, gpus, now_ms(), error],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// What belay last saw of `host`.
    pub fn host_health(&self, host: &str) -> Result<Option<HostHealth>> {
        self.conn
            .cached_row(
                "SELECT last_ok_at, last_route, last_error, last_error_at, last_error_kind, \
                 gpus, gpus_at, gpu_error FROM hosts WHERE name = ?1",
                [host],
                |r| {
                    Ok(HostHealth {
                        last_ok_at: r.get(0)?,
                        last_route: r.get(1)?,
                        last_error: r.get(2)?,
                        last_error_at: r.get(3)?,
                        last_error_kind: r.get(4)?,
                        gpus: r
                            .get::<_, Option<String>>(5)?
                            .and_then(|t| serde_json::from_str(&t).ok()),
                        gpus_at: r.get(6)?,
                        gpu_error: r.get(7)?,
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
            .prepare_cached(
                "SELECT DISTINCT host FROM jobs UNION SELECT name FROM hosts ORDER BY 1",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(|r| r.collect())
            .map_err(|e| self.err(e))
    }

    /// Job counts of every host that has jobs: (live, all), in one pass
    /// over the history (`jobs_host`), for lists of hosts.
    pub fn job_counts_by_host(&self) -> Result<std::collections::HashMap<String, (i64, i64)>> {
        let mut stmt = self
            .conn
            .prepare_cached(JOB_COUNTS_BY_HOST)
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
            .and_then(|r| r.collect())
            .map_err(|e| self.err(e))
    }
}

/// [`Store::job_counts_by_host`]'s query.
const JOB_COUNTS_BY_HOST: &str = "SELECT host, \
     COUNT(*) FILTER (WHERE state IN ('queued','submitting','pending','running','held')), \
     COUNT(*) FROM jobs GROUP BY host";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every host's counts in one pass, read through `jobs_host` (not the
    /// whole table once per host).
    #[test]
    fn job_counts_come_per_host_from_one_pass_over_the_hosts_index() {
        use crate::job::{JobSpec, JobState};
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let spec = |host: &str| JobSpec::new(host, None, vec!["true".into()], None, &[]).unwrap();
        for host in ["a", "a", "a", "b"] {
            store.insert_job(&spec(host), "direct", "1:1").unwrap();
        }
        let ended = store.insert_job(&spec("a"), "direct", "1:1").unwrap();
        let none = crate::store::JobUpdate::default();
        store
            .transition(&ended.id, JobState::Submitting, "x", &none)
            .unwrap();
        store
            .transition(&ended.id, JobState::Succeeded, "x", &none)
            .unwrap();
        let counts = store.job_counts_by_host().unwrap();
        assert_eq!(counts.get("a"), Some(&(3, 4)));
        assert_eq!(counts.get("b"), Some(&(1, 1)));
        assert_eq!(counts.len(), 2);
        let plan: Vec<String> = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {JOB_COUNTS_BY_HOST}"))
            .unwrap()
            .query_map([], |r| r.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(plan.iter().any(|p| p.contains("jobs_host")), "{plan:?}");
    }

    fn health(kind: Option<&str>, error_at: i64, ok_at: i64) -> HostHealth {
        HostHealth {
            last_ok_at: Some(ok_at),
            last_route: Some("direct".into()),
            last_error: Some("an error".into()),
            last_error_at: Some(error_at),
            last_error_kind: kind.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn a_fixed_refusal_is_history_but_a_failed_link_degrades_for_ten_minutes() {
        let now = 1_000_000_000;
        // Refused (untrusted key), then answered: healthy, error kept.
        let h = health(Some("refused"), now - 2000, now - 1000);
        assert_eq!(h.status(now), "healthy");
        assert!(h.answered_since_error());
        // The link failed, then answered: degraded for the window.
        for kind in [Some("unreachable"), Some("not_responding"), None] {
            let h = health(kind, now - 2000, now - 1000);
            assert_eq!(h.status(now), "degraded", "{kind:?}");
            assert_eq!(h.status(now + DEGRADED_WINDOW_MS), "healthy", "{kind:?}");
        }
        // The last contact failed, whatever the kind: unreachable.
        let h = health(Some("refused"), now - 1000, now - 2000);
        assert_eq!(h.status(now), "unreachable");
        assert!(!h.answered_since_error());
    }
}
