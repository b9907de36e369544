//! The local terminal for `belay shell`: its size and modes (sent with the
//! pty request), raw mode with a guard that restores the saved modes on
//! every way out (return, error, panic, and SIGTERM/SIGHUP, which
//! [`Signals`] turns into ordinary events of the session loop), and the
//! signals a terminal session reacts to (SIGWINCH: a resize).
//!
//! Signals arrive through a self-pipe: the handler only `write`s the signal
//! number to a socket (async-signal-safe), the async side reads it. No
//! extra runtime feature, no polling.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// Is `fd` a terminal?
pub fn is_terminal(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// The terminal's size as (cols, rows), or 80x24 when it cannot be read.
pub fn size(fd: i32) -> (u32, u32) {
    // SAFETY: TIOCGWINSZ fills a winsize we own.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0 {
            (u32::from(ws.ws_col), u32::from(ws.ws_row))
        } else {
            (80, 24)
        }
    }
}

/// The control characters the remote pty should use (RFC 4254 opcodes):
/// the user's erase, interrupt, end-of-file… as set here.
pub fn modes(fd: i32) -> Vec<(u8, u32)> {
    // SAFETY: tcgetattr fills a termios we own.
    let t = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) != 0 {
            return Vec::new();
        }
        t
    };
    [
        (1, libc::VINTR),
        (2, libc::VQUIT),
        (3, libc::VERASE),
        (4, libc::VKILL),
        (5, libc::VEOF),
        (10, libc::VSUSP),
    ]
    .into_iter()
    .map(|(op, idx)| (op, u32::from(t.c_cc[idx])))
    .collect()
}

/// Raw mode on a terminal until dropped.
pub struct RawMode {
    fd: i32,
    saved: libc::termios,
}

impl RawMode {
    /// Puts `fd` in raw mode (no echo, no line editing, no signals from
    /// keys: Ctrl-C goes to the remote side).
    pub fn enable(fd: i32) -> std::io::Result<RawMode> {
        // SAFETY: termios structs we own; fd is the caller's terminal.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut saved) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            if libc::tcsetattr(fd, libc::TCSADRAIN, &raw) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(RawMode { fd, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the modes saved by `enable`.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSADRAIN, &self.saved);
        }
    }
}

/// A signal the session loop reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Resize,
    Terminate(i32),
}

/// The write end of the self-pipe, for the handler.
static PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = PIPE.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = sig as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is on our stack.
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

/// SIGWINCH, SIGTERM, SIGHUP (and SIGINT, for a session without a
/// terminal) as a stream of [`Signal`]s. The handlers stay installed for
/// the process's life (belay ends with the session).
pub struct Signals {
    read: tokio::net::UnixStream,
    _write: OwnedFd,
}

impl Signals {
    /// Installs the handlers. Call inside the tokio runtime.
    pub fn install() -> std::io::Result<Signals> {
        let (read, write) = std::os::unix::net::UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let read = tokio::net::UnixStream::from_std(read)?;
        // SAFETY: into_raw_fd hands over ownership of a valid descriptor.
        let write = unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(write)) };
        PIPE.store(write.as_raw_fd(), Ordering::SeqCst);
        for sig in [libc::SIGWINCH, libc::SIGTERM, libc::SIGHUP, libc::SIGINT] {
            // SAFETY: the handler only writes one byte to a descriptor;
            // the sigaction struct is fully initialised.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(sig, &action, std::ptr::null_mut());
            }
        }
        Ok(Signals {
            read,
            _write: write,
        })
    }

    /// The next signal.
    pub async fn next(&mut self) -> Signal {
        use tokio::io::AsyncReadExt;
        let mut byte = [0u8; 1];
        loop {
            match self.read.read(&mut byte).await {
                Ok(1) if i32::from(byte[0]) == libc::SIGWINCH => return Signal::Resize,
                Ok(1) => return Signal::Terminate(i32::from(byte[0])),
                // The pipe cannot close while we hold its write end.
                _ => std::future::pending::<()>().await,
            }
        }
    }
}
