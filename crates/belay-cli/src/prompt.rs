//! Asking the user at a terminal, for belay-ssh's `Prompter` hook: key
//! passphrases, keyboard-interactive answers (e.g. one-time codes) and
//! host-key confirmation under `StrictHostKeyChecking ask`.
//!
//! Questions go to `/dev/tty`, never to stdin/stdout (those carry job
//! output and may be pipes); secrets are read with echo off. Without a
//! controlling terminal (cron, CI, `belay serve`) there is no one to ask,
//! and belay-ssh fails with an error naming the remedy instead.
//!
//! A signal while echo is off (Ctrl-C, Ctrl-\, a hang-up, kill) first
//! restores the terminal, then takes its usual course — as OpenSSH's
//! `readpassphrase` does — so an aborted prompt never leaves the terminal
//! silent. Prompt texts from the server arrive already sanitised
//! (belay-ssh) of terminal control sequences.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use belay_ssh::Prompter;

pub struct TtyPrompter;

/// Signals that must not leave the terminal with echo off.
const SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP];

/// The terminal whose settings the handler restores (-1: none).
static TTY_FD: AtomicI32 = AtomicI32::new(-1);
/// The signal that arrived during a prompt (0: none).
static CAUGHT: AtomicI32 = AtomicI32::new(0);
/// The settings to restore; written before the handler is installed and
/// only read by it.
static mut SAVED: std::mem::MaybeUninit<libc::termios> = std::mem::MaybeUninit::uninit();

extern "C" fn restore_on_signal(sig: libc::c_int) {
    let fd = TTY_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: tcsetattr is async-signal-safe; SAVED was fully written
        // before TTY_FD was set.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, (&raw const SAVED).cast()) };
    }
    CAUGHT.store(sig, Ordering::SeqCst);
}

/// Echo off on `fd` until dropped (or until a signal, see the module
/// header); the signal, if any, is re-raised with its previous handling
/// once the terminal is back.
struct EchoOff {
    fd: libc::c_int,
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

impl EchoOff {
    fn new(fd: libc::c_int) -> Option<EchoOff> {
        // SAFETY: termios calls on a terminal fd we opened; the struct is
        // filled by tcgetattr before use. The handler is installed only
        // after SAVED and TTY_FD hold this terminal's settings.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return None;
            }
            (&raw mut SAVED).write(std::mem::MaybeUninit::new(t));
            TTY_FD.store(fd, Ordering::SeqCst);
            CAUGHT.store(0, Ordering::SeqCst);
            let mut previous = Vec::new();
            for sig in SIGNALS {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = restore_on_signal as *const () as usize;
                libc::sigemptyset(&mut action.sa_mask);
                // No SA_RESTART: the read below returns EINTR.
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, &action, &mut old);
                previous.push((sig, old));
            }
            let mut quiet = t;
            quiet.c_lflag &= !libc::ECHO;
            quiet.c_lflag |= libc::ECHONL;
            libc::tcsetattr(fd, libc::TCSANOW, &quiet);
            Some(EchoOff { fd, previous })
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restoring the settings read in `new` and the signal
        // dispositions it replaced.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSANOW, (&raw const SAVED).cast());
            TTY_FD.store(-1, Ordering::SeqCst);
            for (sig, old) in &self.previous {
                libc::sigaction(*sig, old, std::ptr::null_mut());
            }
            let sig = CAUGHT.swap(0, Ordering::SeqCst);
            if sig != 0 {
                // Its usual course now: for SIGINT without a handler, the
                // process ends (the terminal is already restored).
                libc::raise(sig);
            }
        }
    }
}

/// Reads one line from `fd` byte by byte (never past the newline); `None`
/// on end of file, an error, or a signal during the read. It polls, so a
/// signal handled on another thread is noticed within 100 ms too.
fn read_line(fd: libc::c_int) -> Option<String> {
    let mut line = Vec::new();
    loop {
        if CAUGHT.load(Ordering::SeqCst) != 0 {
            return None;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: polling one valid pollfd.
        match unsafe { libc::poll(&mut pfd, 1, 100) } {
            0 => continue,
            r if r < 0 => {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return None;
            }
            _ => {}
        }
        let mut b = 0u8;
        // SAFETY: reading one byte into a valid buffer.
        let n = unsafe { libc::read(fd, (&raw mut b).cast(), 1) };
        if n == 1 {
            if b == b'\n' {
                break;
            }
            line.push(b);
            continue;
        }
        if n == 0 {
            if line.is_empty() {
                return None;
            }
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted && CAUGHT.load(Ordering::SeqCst) == 0 {
            continue;
        }
        return None;
    }
    let s = String::from_utf8_lossy(&line).into_owned();
    Some(s.trim_end_matches('\r').to_string())
}

impl TtyPrompter {
    fn tty() -> Option<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()
    }

    /// Print `prompt` on the terminal and read one line, with echo off
    /// when `secret`.
    fn ask(prompt: &str, secret: bool) -> Option<String> {
        let mut tty = Self::tty()?;
        let fd = tty.as_raw_fd();
        // Echo goes off before the prompt appears: an answer typed (or
        // pasted) the moment the prompt shows must not be echoed.
        let quiet = if secret {
            Some(EchoOff::new(fd)?)
        } else {
            None
        };
        tty.write_all(prompt.as_bytes()).ok()?;
        tty.flush().ok()?;
        let line = read_line(fd);
        drop(quiet);
        line
    }
}

/// Asks on the terminal for a `--secret` value, echo off; `None` without a
/// terminal (or on end of input).
pub fn ask_secret(prompt: &str) -> Option<String> {
    TtyPrompter::ask(prompt, true)
}

impl Prompter for TtyPrompter {
    fn has_terminal(&self) -> bool {
        Self::tty().is_some()
    }

    fn confirm_host_key(&self, host: &str, key_type: &str, fingerprint: &str) -> bool {
        let q = format!(
            "The authenticity of host '{host}' can't be established.\n\
             {key_type} key fingerprint is {fingerprint}.\n\
             Are you sure you want to continue connecting (yes/no)? "
        );
        matches!(Self::ask(&q, false).as_deref(), Some("yes"))
    }

    fn passphrase(&self, key_file: &Path) -> Option<String> {
        Self::ask(
            &format!("Enter passphrase for key '{}': ", key_file.display()),
            true,
        )
    }

    fn keyboard_interactive(
        &self,
        name: &str,
        instructions: &str,
        prompts: &[(String, bool)],
    ) -> Option<Vec<String>> {
        let mut tty = Self::tty()?;
        for text in [name, instructions] {
            if !text.is_empty() {
                writeln!(tty, "{text}").ok()?;
            }
        }
        prompts
            .iter()
            .map(|(text, echo)| Self::ask(text, !echo))
            .collect()
    }
}
