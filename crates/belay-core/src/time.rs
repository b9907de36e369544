//! Wall-clock time as the store keeps it: milliseconds since the Unix epoch.
//! One representation everywhere keeps comparisons and SQL indexes simple;
//! formatting for people happens at the edges.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
