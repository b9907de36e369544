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
//! now and then ([`TRIM_EVERY`]): 36 MiB, and nothing added on the paths
//! that move data.

use std::time::Duration;

/// How often free memory is handed back.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

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

/// [`give_back_free_memory`] every [`TRIM_EVERY`], on a blocking thread
/// (it walks every arena), for the daemon's life.
pub async fn trim_periodically() {
    loop {
        tokio::time::sleep(TRIM_EVERY).await;
        let _ = tokio::task::spawn_blocking(give_back_free_memory).await;
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
