//! The exec movers: copies through the host's shell (`/bin/sh`, coreutils,
//! GNU find and tar) over [`crate::transport::Transport::open_stream`].
//! Small files travel as one tar stream per batch, big files one by one;
//! the host sums what it received. Works on `local` and on hosts without
//! an SFTP subsystem.

mod archive;
pub(super) mod pull;
pub(super) mod push;
mod scripts;
