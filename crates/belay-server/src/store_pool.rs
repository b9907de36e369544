//! The daemon's store connections, kept open from one request to the next.
//!
//! Every request works through an engine of its own (on a blocking thread),
//! and an engine needs a store connection. Opening one costs more than most
//! requests' queries: SQLite reads and parses the whole schema, and the
//! journal mode, pragmas and schema version are checked again. Measured with
//! `perf` on a warm daemon, reading the schema alone was a tenth of its CPU
//! time for an attached `belay run HOST -- true` (four requests). So a
//! request's engine takes an idle connection from here ([`StorePool::engine`])
//! and gives it back when the request ends ([`RequestEngine`]'s drop).
//!
//! Kept connections also spare each request a WAL checkpoint: SQLite has the
//! last connection to close checkpoint the WAL into the database and sync
//! both. A connection is first opened by a request that needs the store
//! (never at start: a refused request creates no store), and once given back
//! it stays until the daemon ends, so no request's close is the last.
//!
//! A connection given back inside a transaction (every transaction is a
//! guard that ends on drop, so never expected) is closed, not kept.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use belay_core::engine::Engine;
use belay_core::error::Result;
use belay_core::home::BelayHome;
use belay_core::hosts::Hosts;
use belay_core::store::Store;

/// Idle connections kept beyond this many are closed: each holds its own
/// page cache (up to 2 MiB) and compiled statements. Two serve a request
/// beside a background pass; a burst opens more and closes them after.
const MAX_IDLE: usize = 2;

#[derive(Default)]
pub struct StorePool {
    idle: Mutex<Vec<Store>>,
}

impl StorePool {
    /// An engine over the shared hosts and an idle store connection (or a
    /// new one), for one request.
    pub fn engine(self: &Arc<Self>, home: &BelayHome, hosts: Arc<Hosts>) -> Result<RequestEngine> {
        let kept = self.idle.lock().expect("store pool lock").pop();
        let store = match kept {
            Some(store) => store,
            None => Store::open(&home.store_path())?,
        };
        Ok(RequestEngine {
            engine: Some(Engine::with_store(store, hosts)),
            pool: self.clone(),
        })
    }

    fn give_back(&self, store: Store) {
        if !store.is_idle() {
            return;
        }
        let mut idle = self.idle.lock().expect("store pool lock");
        if idle.len() < MAX_IDLE {
            idle.push(store);
        }
    }

    /// Connections idle now (tests).
    pub fn idle_count(&self) -> usize {
        self.idle.lock().expect("store pool lock").len()
    }
}

/// One request's engine; its store connection goes back to the pool when
/// the request is done with it.
pub struct RequestEngine {
    engine: Option<Engine>,
    pool: Arc<StorePool>,
}

impl Deref for RequestEngine {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        self.engine.as_ref().expect("engine present until drop")
    }
}

impl DerefMut for RequestEngine {
    fn deref_mut(&mut self) -> &mut Engine {
        self.engine.as_mut().expect("engine present until drop")
    }
}

impl Drop for RequestEngine {
    fn drop(&mut self) {
        if let Some(engine) = self.engine.take() {
            self.pool.give_back(engine.into_store());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> (tempfile::TempDir, BelayHome) {
        let dir = tempfile::tempdir().unwrap();
        let home = BelayHome::at(dir.path().join("home"));
        (dir, home)
    }

    #[test]
    fn a_request_reuses_the_connection_the_last_one_gave_back() {
        let (_dir, home) = home();
        let hosts = Arc::new(Hosts::new(&home, Default::default()).unwrap());
        let pool = Arc::new(StorePool::default());
        assert_eq!(pool.idle_count(), 0);
        {
            let _first = pool.engine(&home, hosts.clone()).unwrap();
            let _overlapping = pool.engine(&home, hosts.clone()).unwrap();
            assert_eq!(pool.idle_count(), 0, "both in use");
        }
        assert_eq!(pool.idle_count(), 2, "both given back");
        let again = pool.engine(&home, hosts.clone()).unwrap();
        assert_eq!(pool.idle_count(), 1, "one taken, none opened");
        drop(again);
        assert_eq!(pool.idle_count(), 2);
    }

    #[test]
    fn no_more_than_the_cap_are_kept() {
        let (_dir, home) = home();
        let hosts = Arc::new(Hosts::new(&home, Default::default()).unwrap());
        let pool = Arc::new(StorePool::default());
        let many: Vec<_> = (0..MAX_IDLE + 3)
            .map(|_| pool.engine(&home, hosts.clone()).unwrap())
            .collect();
        drop(many);
        assert_eq!(pool.idle_count(), MAX_IDLE);
    }
}
