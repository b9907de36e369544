//! Progress reporting and the byte meter every transfer counts through.
//! The meter also carries the test failpoint `transfer-bytes:N`, which
//! SIGKILLs the process once N bytes of file content have moved — the way a
//! crash or a cut link would stop a copy half-way.

/// Told about a transfer as it goes (the CLI draws a bar from it).
pub trait Progress {
    /// The work found: files to copy and their total size.
    fn begin(&mut self, _files: u64, _bytes: u64) {}
    /// Bytes of file content moved (or kept from a verified partial).
    fn advance(&mut self, _bytes: u64) {}
    /// One more file landed under its final name.
    fn file_done(&mut self) {}
    /// Something the user should know that does not stop the copy.
    fn warn(&mut self, _message: &str) {}
}

/// A [`Progress`] that shows nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// Counts bytes for the summary and the progress display.
pub struct Meter<'a> {
    pub progress: &'a mut dyn Progress,
    pub sent: u64,
    /// Bytes kept from verified partials.
    pub resumed: u64,
    kill_after: Option<u64>,
}

impl<'a> Meter<'a> {
    pub fn new(progress: &'a mut dyn Progress) -> Self {
        let kill_after = crate::failpoint::transfer_kill_after();
        Meter {
            progress,
            sent: 0,
            resumed: 0,
            kill_after,
        }
    }

    /// `n` bytes of file content crossed the link.
    pub fn moved(&mut self, n: u64) {
        self.sent += n;
        self.progress.advance(n);
        if self.kill_after.is_some_and(|k| self.sent >= k) {
            crate::failpoint::kill_now();
        }
    }

    /// `n` bytes were already in place (a verified partial).
    pub fn kept(&mut self, n: u64) {
        self.resumed += n;
        self.progress.advance(n);
    }
}
