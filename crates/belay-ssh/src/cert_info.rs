//! What an OpenSSH user certificate allows — its validity window and
//! principals — read from its file, so a diagnosis can say why a
//! certificate was not offered or was refused ("expired at …", "for
//! principals alice, not root").

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A user certificate's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateTerms {
    pub key_id: String,
    /// The users it may log in as (empty: any).
    pub principals: Vec<String>,
    pub valid_after: SystemTime,
    pub valid_before: SystemTime,
}

impl CertificateTerms {
    /// `2026-12-05 10:00:00 UTC → 2026-12-05 11:00:00 UTC`.
    pub fn window(&self) -> String {
        format!("{} → {}", utc(self.valid_after), utc(self.valid_before))
    }

    /// Whether it lets `user` log in (by principal).
    pub fn allows_user(&self, user: &str) -> bool {
        self.principals.is_empty() || self.principals.iter().any(|p| p == user)
    }
}

/// Reads the certificate at `path` (`…-cert.pub`).
pub fn certificate_terms(path: &Path) -> Result<CertificateTerms, String> {
    let c = russh::keys::load_openssh_certificate(path).map_err(|e| e.to_string())?;
    let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s.min(i64::MAX as u64 / 2));
    Ok(CertificateTerms {
        key_id: c.key_id().to_string(),
        principals: c.valid_principals().to_vec(),
        valid_after: at(c.valid_after()),
        valid_before: at(c.valid_before()),
    })
}

/// A time as `YYYY-MM-DD HH:MM:SS UTC` (civil-from-days, no time crate).
fn utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if secs >= 253_402_300_800 {
        return "forever".into();
    }
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            utc(UNIX_EPOCH + Duration::from_secs(1_764_931_845)),
            "2025-12-05 10:50:45 UTC"
        );
        assert_eq!(
            utc(UNIX_EPOCH + Duration::from_secs(u64::MAX / 4)),
            "forever"
        );
    }
}
