//! Transfer progress for people: a bar with bytes, rate, ETA and files on
//! a terminal's stderr; nothing at all when stderr is not a terminal
//! (scripts and logs get the `--json` summary instead). Warnings always go
//! to stderr, above the bar.

use std::io::IsTerminal;

use belay_core::transfer::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct TransferBar {
    bar: Option<ProgressBar>,
    files_total: u64,
    files_done: u64,
}

impl TransferBar {
    /// A bar labelled `what` (e.g. `push data → gpu1:/scratch`).
    pub fn new(what: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(what.to_string());
            bar
        });
        TransferBar {
            bar,
            files_total: 0,
            files_done: 0,
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn show_files(&self) {
        if let Some(b) = &self.bar {
            b.set_message(format!("{}/{} files", self.files_done, self.files_total));
        }
    }
}

impl Progress for TransferBar {
    fn begin(&mut self, files: u64, bytes: u64) {
        self.files_total = files;
        self.files_done = 0;
        if let Some(b) = &self.bar {
            b.set_length(bytes);
            b.set_position(0);
        }
        self.show_files();
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }

    fn file_done(&mut self) {
        self.files_done += 1;
        self.show_files();
    }

    fn warn(&mut self, message: &str) {
        let line = format!("belay: {message}");
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

impl Drop for TransferBar {
    fn drop(&mut self) {
        self.finish();
    }
}
