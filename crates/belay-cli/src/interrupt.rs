//! Ctrl-C while attached means "detach", not "kill": the job runs on the
//! host regardless. A SIGINT handler sets a flag that the output stream
//! checks at every frame (the host's follower sends one at least every
//! second), so belay never stops half-way through writing output or
//! recording state.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Route SIGINT to the flag from now on.
pub fn install() {
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe; the sigaction struct is fully initialised.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigint as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
    }
}

pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
