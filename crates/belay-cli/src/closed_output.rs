//! A reader that stopped reading (`belay logs JOB | head`, `belay ps --json
//! | head -c 100`) ends belay quietly, as it ends `cat`: no panic, no
//! "Broken pipe" line, and the status a shell expects of a process that
//! SIGPIPE ended (141). belay ignores SIGPIPE (Rust's default, which keeps
//! a closed SSH or daemon socket an error rather than a silent death), so
//! a write to the closed pipe comes back as EPIPE — from `println!` as a
//! panic, from explicit writes as an error — and both are caught here.
//! Only when stdout itself is broken: a broken pipe to a host or to the
//! daemon is still reported as the failure it is.

/// The exit status of a process ended by SIGPIPE (128 + 13).
pub const STATUS: u8 = 141;

/// Is stdout a pipe whose reader has gone? (poll reports POLLERR on the
/// write end of such a pipe, without writing anything.)
pub fn stdout_is_closed() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n == 1 && fd.revents & libc::POLLERR != 0
}

/// Is `err` a broken pipe, with stdout the pipe that broke?
pub fn is_closed_stdout(err: &anyhow::Error) -> bool {
    let broken_pipe = Some(std::io::ErrorKind::BrokenPipe);
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().map(|e| e.kind()) == broken_pipe
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == broken_pipe
    }) && stdout_is_closed()
}

/// `println!` to a closed stdout panics; end quietly instead (every other
/// panic goes to the default hook).
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && stdout_is_closed() {
            std::process::exit(i32::from(STATUS));
        }
        default(info);
    }));
}
