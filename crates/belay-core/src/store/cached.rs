//! Queries through the connection's prepared-statement cache.
//!
//! rusqlite's `query_row` and `execute` compile their SQL anew on every
//! call, and a daemon answers every request on a connection kept from the
//! last one (see belay-server's `store_pool`): measured with `perf` on a
//! warm daemon, compiling statements was about an eighth of its CPU time for
//! an attached `belay run HOST -- true`. The store's queries go through
//! these instead, so each distinct statement is compiled once per
//! connection.

use rusqlite::{CachedStatement, Connection, Params, Row};

/// Distinct statements kept compiled per connection: every fixed query of
/// the store, with room for the list filters `ps` builds.
pub(super) const CACHE_CAPACITY: usize = 64;

pub(super) trait Cached {
    fn statement(&self, sql: &str) -> rusqlite::Result<CachedStatement<'_>>;

    /// `query_row` on a cached statement.
    fn cached_row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.statement(sql)?.query_row(params, f)
    }

    /// `execute` on a cached statement.
    fn cached_execute<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.statement(sql)?.execute(params)
    }
}

impl Cached for Connection {
    fn statement(&self, sql: &str) -> rusqlite::Result<CachedStatement<'_>> {
        self.prepare_cached(sql)
    }
}
