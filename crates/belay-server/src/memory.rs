//! The daemon's heap: freed memory handed back to the system.
//!
//! glibc gives a thread that meets a locked arena an arena of its own (up
//! to eight per core), and memory freed into an arena stays with it. The
//! daemon runs requests on a pool of blocking threads that grows under a
//! burst (a thousand submits) and goes idle again, so each burst left
//! arenas holding freed memory: measured at rest with 1,000 live jobs after
//! `bench/daemon.py`'s other figures, 49-50 MiB resident. Fewer arenas
//! (`M_ARENA_MAX` 2) kept it at 33 MiB, but threads then share an arena's
//! lock, and a forward's CPU per GiB went from 0.65x `ssh -L`'s to 0.74x
//! in the one run compared (noisy). Instead the daemon trims every arena
//! now and then ([`TRIM_EVERY`]), and a second after a run of requests
//! ends ([`QUIET_AFTER`]): a burst's memory is back within a second or two
//! instead of up to ten (`bench/daemon.py` samples the rest figure five
//! seconds after its thousand submits: 49-51 MiB when no trim had come
//! yet, 37-40 MiB after one), and nothing is added on the paths that move
//! data.

use std::time::Duration;

/// How often free memory is handed back in any case (what background
/// passes and forwards free).
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// How long no request runs before the memory the last ones freed is
/// handed back.
pub const QUIET_AFTER: Duration = Duration::from_secs(1);

/// Hand the free pages of every malloc arena back to the system (glibc's
/// `malloc_trim`); elsewhere there is nothing to do. True when some memory
/// was released.
pub fn give_back_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes each arena's lock itself; it only
        // releases pages no allocation uses.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// [`give_back_free_memory`] every [`TRIM_EVERY`], and once requests have
/// run and then none for [`QUIET_AFTER`], on a blocking thread (it walks
/// every arena), for the daemon's life. `last_request_end`: when the last
/// request ended (ms), `None` while one runs.
pub async fn trim_periodically(last_request_end: impl Fn() -> Option<i64>) {
    let mut trimmed = std::time::Instant::now();
    let mut requests_trimmed = last_request_end();
    loop {
        tokio::time::sleep(QUIET_AFTER).await;
        let ended = last_request_end();
        let quiet_after_requests = ended.is_some_and(|at| {
            Some(at) != requests_trimmed
                && belay_core::time::now_ms() - at >= QUIET_AFTER.as_millis() as i64
        });
        if quiet_after_requests || trimmed.elapsed() >= TRIM_EVERY {
            requests_trimmed = ended.or(requests_trimmed);
            trimmed = std::time::Instant::now();
            let _ = tokio::task::spawn_blocking(give_back_free_memory).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_memory_is_handed_back() {
        // Many blocks freed in the middle of the heap (the last block kept
        // so the top cannot simply shrink): only a trim releases them.
        let blocks: Vec<Vec<u8>> = (0..2048).map(|_| vec![1u8; 16 * 1024]).collect();
        let keep = vec![1u8; 1024];
        drop(blocks);
        assert!(super::give_back_free_memory());
        drop(keep);
    }
}
