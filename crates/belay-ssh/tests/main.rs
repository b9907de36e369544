//! belay-ssh's integration tests: the SSH engine against a real OpenSSH
//! sshd on loopback, real agents and CAs ([`loopback`]), and jump chains
//! through hosts in network namespaces ([`netns`]). One test binary;
//! shared set-up lives in [`common`].
//!
//! Run one area with `cargo test -p belay-ssh --test integration netns::`.

mod common;

mod forward;
mod loopback;
mod netns;
mod pty;
