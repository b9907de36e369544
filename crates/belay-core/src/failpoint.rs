//! Test-only hooks, live only in builds with the `failpoints` feature (the
//! test suite and the benches that need them turn it on; a plain or release
//! build of `belay` ignores them, so no environment variable can make a
//! user's belay kill itself or misread a host's boot id).
//!
//! - `BELAY_FAILPOINT=NAME` makes the process SIGKILL itself when it reaches
//!   the point called NAME, so tests can prove that recovery works from every
//!   step of a multi-step operation, exactly as a real crash would leave
//!   things (no destructors, no flushing). `transfer-bytes:N` fires once N
//!   bytes of file content have crossed the link.
//! - `pause-*` points sleep instead ([`pause`]), to order two processes.
//! - `BELAY_TEST_QUEUE=1` lets a direct-mode `run -d` queue a job for a
//!   host that does not answer, as a daemon's submit does.
//! - `BELAY_BOOT_ID_FILE` (read by the remote scripts) stands in for
//!   `/proc/sys/kernel/random/boot_id`, so a test can "reboot" a host.

/// Are the hooks compiled in?
pub const LIVE: bool = cfg!(feature = "failpoints");

/// Where the host's boot id is read, as a shell word for the remote scripts.
pub const BOOT_ID_FILE_WORD: &str = if LIVE {
    "\"${BELAY_BOOT_ID_FILE:-/proc/sys/kernel/random/boot_id}\""
} else {
    "/proc/sys/kernel/random/boot_id"
};

thread_local! {
    /// A failpoint for this thread's work only: the daemon serves many
    /// commands in one process, and each request may carry its own
    /// (`arm_for_thread`), as `BELAY_FAILPOINT` does for a whole CLI.
    static THREAD_POINT: std::cell::RefCell<Option<String>> =
        const { std::cell::RefCell::new(None) };
}

/// Arm `point` (or none) for the work this thread does next; ignored
/// unless hooks are live.
pub fn arm_for_thread(point: Option<String>) {
    if LIVE {
        THREAD_POINT.with(|p| *p.borrow_mut() = point);
    }
}

/// The failpoint armed for this thread, else named in the environment, if
/// hooks are live.
pub fn armed() -> Option<String> {
    if !LIVE {
        return None;
    }
    THREAD_POINT
        .with(|p| p.borrow().clone())
        .or_else(|| std::env::var("BELAY_FAILPOINT").ok())
}

/// Kill this process with SIGKILL if `BELAY_FAILPOINT` names `point`.
pub fn hit(point: &str) {
    if armed().is_some_and(|v| v == point) {
        kill_now();
    }
}

/// A failpoint that does not kill: true if `BELAY_FAILPOINT` names `point`,
/// and the caller then plays the fault (a lost reply, say).
pub fn hit_soft(point: &str) -> bool {
    armed().is_some_and(|v| v == point)
}

/// Sleep `for_` here if `BELAY_FAILPOINT` names `point`: a test holds one
/// process between two steps while another acts (a race made certain).
pub fn pause(point: &str, for_: std::time::Duration) {
    if armed().is_some_and(|v| v == point) {
        std::thread::sleep(for_);
    }
}

/// `BELAY_TEST_QUEUE=1`: `run -d` queues a job for a host that does not
/// answer even in direct mode (as the daemon does), so the queued path can
/// be tested without one.
pub fn queue_in_direct_mode() -> bool {
    LIVE && std::env::var_os("BELAY_TEST_QUEUE").is_some_and(|v| v == "1")
}

/// `BELAY_FAILPOINT=transfer-bytes:N`: N, if so armed.
pub fn transfer_kill_after() -> Option<u64> {
    armed()?
        .strip_prefix("transfer-bytes:")
        .and_then(|n| n.parse().ok())
}

/// SIGKILL this process now (a failpoint that decided to fire).
pub fn kill_now() {
    // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The crate's own unit tests build without the feature, as a release
    // build does: the hooks must be dead there.
    #[cfg(not(feature = "failpoints"))]
    #[test]
    fn without_the_feature_the_hooks_are_dead() {
        // SAFETY: no other test in this crate reads or writes this variable.
        unsafe { std::env::set_var("BELAY_FAILPOINT", "transfer-bytes:1") };
        assert_eq!(armed(), None);
        assert_eq!(transfer_kill_after(), None);
        hit("transfer-bytes:1"); // would SIGKILL the test binary if live
        assert_eq!(BOOT_ID_FILE_WORD, "/proc/sys/kernel/random/boot_id");
        assert!(!crate::remote::wrapper::render_for_test().contains("BELAY_BOOT_ID_FILE"));
        unsafe { std::env::remove_var("BELAY_FAILPOINT") };
    }

    #[cfg(feature = "failpoints")]
    #[test]
    fn with_the_feature_the_hooks_are_live() {
        // SAFETY: no other test in this crate reads or writes this variable.
        unsafe { std::env::set_var("BELAY_FAILPOINT", "transfer-bytes:7") };
        assert_eq!(transfer_kill_after(), Some(7));
        assert!(BOOT_ID_FILE_WORD.contains("BELAY_BOOT_ID_FILE"));
        assert!(crate::remote::wrapper::render_for_test().contains("BELAY_BOOT_ID_FILE"));
        unsafe { std::env::remove_var("BELAY_FAILPOINT") };
    }
}
