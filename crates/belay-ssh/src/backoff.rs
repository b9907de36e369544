//! Reconnect pacing: capped exponential backoff with jitter and a minimum
//! interval between attempts, so a host that keeps failing is not hammered
//! (HPC sites ban clients that open connections in storms).

use std::time::Duration;

/// Reconnect policy. Attempt `n` (1-based, counting consecutive failures)
/// waits `min(cap, base × 2^(n-1))` scaled by a random factor in
/// `[0.5, 1.0]`, and never less than `min_interval` after the previous
/// attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub min_interval: Duration,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    /// 1 s minimum between attempts, 1 s base, 60 s cap.
    fn default() -> Self {
        Backoff {
            min_interval: Duration::from_secs(1),
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// Delay before the next attempt after `failures` consecutive failures
    /// (0 = the link was just lost, no failed attempt yet).
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return self.min_interval;
        }
        let exp = self
            .base
            .saturating_mul(1u32 << (failures - 1).min(20))
            .min(self.cap);
        let mut b = [0u8; 2];
        let r = if getrandom::fill(&mut b).is_ok() {
            u16::from_ne_bytes(b) as f64 / u16::MAX as f64
        } else {
            1.0
        };
        exp.mul_f64(0.5 + 0.5 * r).max(self.min_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let b = Backoff::default();
        assert_eq!(b.delay(0), Duration::from_secs(1));
        for _ in 0..50 {
            let d = b.delay(4);
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(8),
                "{d:?}"
            );
            assert!(b.delay(30) <= Duration::from_secs(60));
            assert!(b.delay(1) >= b.min_interval);
        }
    }
}
