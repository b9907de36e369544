//! Test-only crash points. `BELAY_FAILPOINT=NAME` makes the process SIGKILL
//! itself when it reaches the point called NAME, so tests can prove that
//! recovery works from every step of a multi-step operation, exactly as a
//! real crash would leave things (no destructors, no flushing).

/// Kill this process with SIGKILL if `BELAY_FAILPOINT` names `point`.
pub fn hit(point: &str) {
    if std::env::var_os("BELAY_FAILPOINT").is_some_and(|v| v == point) {
        kill_now();
    }
}

/// SIGKILL this process now (a failpoint that decided to fire).
pub fn kill_now() {
    // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}
