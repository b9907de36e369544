//! The `tokens` table: the API's per-user tokens (`belay token`), each
//! kept only as the SHA-256 of the token ([`crate::tokens`] makes and
//! checks them). A token's name is the owner of the jobs it submits.

use rusqlite::{OptionalExtension, params};

use super::Store;
use super::cached::Cached;
use crate::error::{CoreError, Result};
use crate::time::now_ms;

/// One token as `belay token list` shows it: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRecord {
    pub name: String,
    pub admin: bool,
    pub created_at: i64,
    pub last_used: Option<i64>,
}

/// `last_used` is written at most this often per token: a dashboard's
/// requests must not each take the store's write lock.
const LAST_USED_STEP_MS: i64 = 10_000;

impl Store {
    /// Record a token's hash under `name`; a name in use is bad input.
    pub fn insert_token(&mut self, name: &str, hash: &str, admin: bool) -> Result<TokenRecord> {
        let now = now_ms();
        let inserted = self.conn.cached_execute(
            "INSERT INTO tokens (name, hash, admin, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (name) DO NOTHING",
            params![name, hash, admin, now],
        );
        match inserted.map_err(|e| self.err(e))? {
            0 => Err(CoreError::BadInput(format!(
                "a token named '{name}' exists already (revoke it first)"
            ))),
            _ => Ok(TokenRecord {
                name: name.to_string(),
                admin,
                created_at: now,
                last_used: None,
            }),
        }
    }

    /// Every token, oldest first.
    pub fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT name, admin, created_at, last_used FROM tokens ORDER BY created_at, name",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |r| {
            Ok(TokenRecord {
                name: r.get(0)?,
                admin: r.get(1)?,
                created_at: r.get(2)?,
                last_used: r.get(3)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }

    /// Every token's hash with its record, for [`crate::tokens::verify`].
    pub fn token_hashes(&self) -> Result<Vec<(String, TokenRecord)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT hash, name, admin, created_at, last_used FROM tokens")
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                TokenRecord {
                    name: r.get(1)?,
                    admin: r.get(2)?,
                    created_at: r.get(3)?,
                    last_used: r.get(4)?,
                },
            ))
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }

    /// Note that `token` was used now (at most every few seconds).
    pub fn token_used(&mut self, token: &TokenRecord) -> Result<()> {
        let now = now_ms();
        if token.last_used.is_some_and(|t| now - t < LAST_USED_STEP_MS) {
            return Ok(());
        }
        self.conn
            .cached_execute(
                "UPDATE tokens SET last_used = ?2 WHERE name = ?1",
                params![token.name, now],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Remove the token `name`; false if there was none.
    pub fn revoke_token(&mut self, name: &str) -> Result<bool> {
        let n = self
            .conn
            .cached_execute("DELETE FROM tokens WHERE name = ?1", [name])
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// The owner of job `job_id` (`None`: the local user's), if it exists.
    pub fn job_owner(&self, job_id: &str) -> Result<Option<Option<String>>> {
        self.conn
            .cached_row("SELECT owner FROM jobs WHERE id = ?1", [job_id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }
}
