//! belay-testbed: real test hosts for belay's integration tests.
//!
//! Everything here starts *real* OpenSSH components, never mocks:
//!
//! * [`Sshd`] — an `sshd` on a free port in a private temporary directory,
//!   optionally inside a network namespace, with a clean (tmpfs) home for the
//!   login user so timings are not polluted by the machine's own `.bashrc`.
//! * [`KeyPair`] / [`UserCa`] — keys made with `ssh-keygen`, and a user CA
//!   that signs OpenSSH user certificates (for sshd `TrustedUserCAKeys`).
//! * [`SshAgent`] — a private `ssh-agent` with its own socket.
//! * [`TestUser`] — a unique non-root login user (what an ordinary account
//!   can and cannot read), accepted by every testbed sshd.
//! * [`NetLab`] — hosts as network namespaces: a jump host reachable from the
//!   root namespace and isolated nodes behind it, each running its own sshd;
//!   [`LabHosts`] adds the client side (key, known_hosts, ssh_config).
//! * [`HostBlock`] — ssh_config `Host` stanzas built, not pasted.
//! * [`Slurm`] — a real single-node Slurm whose login node is an [`Sshd`]
//!   (daemons in the sshd's mount namespace, so jobs see its files), with
//!   counting and lying command wrappers, and optionally a second,
//!   isolated compute node `node1` (its own network namespace, the login
//!   node's files); [`NoSlurmPath`] for a host without.
//!
//! Rules every type follows: unique temporary directories and per-run names
//! (tests run concurrently), processes are killed by their own pid only, and
//! `Drop` cleans up everything that was created. Missing prerequisites (root,
//! `/usr/sbin/sshd`, `ip`) are reported by [`require`] as a clear error, never
//! as a silent skip.

mod agent;
mod client;
mod compute_node;
mod host_block;
mod keys;
mod lab_hosts;
mod netlab;
mod process;
mod slurm;
mod sshd;
mod user;

pub use agent::SshAgent;
pub use client::host_options;
pub use compute_node::NODE_NAME;
pub use host_block::HostBlock;
pub use keys::{KeyKind, KeyPair, UserCa};
pub use lab_hosts::LabHosts;
pub use netlab::{NetLab, NsHost};
pub use process::{Prerequisite, processes_matching, require, wait_until};
pub use slurm::{NoSlurmPath, SBATCH_LIE, Slurm, SlurmOptions};
pub use sshd::{Sshd, SshdOptions};
pub use user::TestUser;
