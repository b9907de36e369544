//! API tokens (`belay token`, `belay serve --listen`): 32 random bytes,
//! shown once as `belay_` and 64 hex digits, and stored only as their
//! SHA-256 (a token has the entropy of a key, so a fast hash is enough; no
//! salt or stretching is needed). Checking a presented token compares its
//! hash with every stored one in constant time, so neither the comparison
//! nor the lookup says how much of a guess was right.

use sha2::{Digest, Sha256};

use crate::error::{CoreError, Result};
use crate::store::{Store, TokenRecord};

const PREFIX: &str = "belay_";

/// A fresh token (to print once) and its hash (to store).
pub fn generate() -> Result<(String, String)> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| CoreError::Io {
        what: "drawing a random token".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let token = format!("{PREFIX}{}", hex(&bytes));
    let hash = hash(&token);
    Ok((token, hash))
}

/// The stored form of `token`: hex SHA-256.
pub fn hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal, in a time that depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Bad input unless `name` suits a token (it becomes its jobs' owner).
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(CoreError::BadInput(format!(
            "bad token name '{name}': use 1-64 letters, digits, '.', '_' or '-'"
        )))
    }
}

/// The token `presented` belongs to, if any (its use is noted).
pub fn verify(store: &mut Store, presented: &str) -> Result<Option<TokenRecord>> {
    let wanted = hash(presented);
    let mut found = None;
    // Every row is compared, whether or not one matched already.
    for (stored, record) in store.token_hashes()? {
        if constant_time_eq(stored.as_bytes(), wanted.as_bytes()) {
            found = Some(record);
        }
    }
    if let Some(record) = &found {
        store.token_used(record)?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_stored_only_as_its_hash_and_verifies_by_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let (token, hashed) = generate().unwrap();
        assert!(token.starts_with("belay_") && token.len() == 6 + 64);
        assert_ne!(token, hashed);
        store.insert_token("alice", &hashed, false).unwrap();
        assert_eq!(
            verify(&mut store, &token).unwrap().map(|t| t.name),
            Some("alice".to_string())
        );
        assert!(verify(&mut store, "belay_00").unwrap().is_none());
        assert!(store.insert_token("alice", "x", true).is_err());
        assert!(store.revoke_token("alice").unwrap());
        assert!(verify(&mut store, &token).unwrap().is_none());
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
