//! How many remote commands this process has asked its hosts to run
//! (scripts on a persistent shell, plain execs, streams, SFTP sessions):
//! one process-wide count. The daemon reports it (`/v1/daemon`,
//! `remote_commands`) so that a benchmark can show what reads only the
//! store — dashboards, `ps` — adds none.

use std::sync::atomic::{AtomicU64, Ordering};

static REMOTE_COMMANDS: AtomicU64 = AtomicU64::new(0);

/// One more remote command asked for.
pub(crate) fn count() {
    REMOTE_COMMANDS.fetch_add(1, Ordering::Relaxed);
}

/// Remote commands this process has asked for so far.
pub fn remote_commands() -> u64 {
    REMOTE_COMMANDS.load(Ordering::Relaxed)
}
