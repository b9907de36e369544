//! Job identifiers. The short id (8 hex digits) is what people type; the
//! key (`<id>-<installation id>`) names the job directory on a host, so two
//! installations sharing one account can never collide there.

use std::fmt;

use crate::error::{CoreError, Result};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobId(String);

impl JobId {
    /// A fresh random id. Uniqueness in the store is enforced on insert.
    pub fn random() -> Result<Self> {
        Ok(JobId(random_hex(4)?))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The job directory name on hosts.
    pub fn key(&self, installation: &str) -> String {
        format!("{}-{}", self.0, installation)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `bytes` random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| CoreError::Io {
        what: "reading the system random source".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Is `s` shaped like a short id (or a prefix of one)?
pub fn looks_like_id_prefix(s: &str) -> bool {
    !s.is_empty() && s.len() <= 8 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_eight_hex_digits_and_differ() {
        let a = JobId::random().unwrap();
        let b = JobId::random().unwrap();
        assert_eq!(a.as_str().len(), 8);
        assert!(looks_like_id_prefix(a.as_str()));
        assert_ne!(a, b);
        assert_eq!(a.key("cafe0123"), format!("{a}-cafe0123"));
    }
}
