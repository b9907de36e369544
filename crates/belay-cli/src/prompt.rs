//! Asking the user at a terminal, for belay-ssh's `Prompter` hook: key
//! passphrases, keyboard-interactive answers (e.g. one-time codes) and
//! host-key confirmation under `StrictHostKeyChecking ask`.
//!
//! Questions go to `/dev/tty`, never to stdin/stdout (those carry job
//! output and may be pipes); secrets are read with echo off. Without a
//! controlling terminal (cron, CI, `belay serve`) there is no one to ask,
//! and belay-ssh fails with an error naming the remedy instead.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use belay_ssh::Prompter;

pub struct TtyPrompter;

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
        // SAFETY: termios calls on a terminal fd we opened; the struct is
        // filled by tcgetattr before use.
        let saved = unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return None;
            }
            t
        };
        if secret {
            let mut quiet = saved;
            quiet.c_lflag &= !libc::ECHO;
            quiet.c_lflag |= libc::ECHONL;
            // SAFETY: as above.
            unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
        }
        // Echo goes off before the prompt appears: an answer typed (or
        // pasted) the moment the prompt shows must not be echoed.
        let shown = tty.write_all(prompt.as_bytes()).and_then(|()| tty.flush());
        if shown.is_err() {
            if secret {
                // SAFETY: restoring the settings read above.
                unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
            }
            return None;
        }
        let mut line = String::new();
        let read = BufReader::new(&tty).read_line(&mut line);
        if secret {
            // SAFETY: restoring the settings read above.
            unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
        }
        read.ok().filter(|&n| n > 0)?;
        Some(line.trim_end_matches(['\n', '\r']).to_string())
    }
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
