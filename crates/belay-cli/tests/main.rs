//! belay's integration tests: the real `belay` binary against real
//! processes — a real OpenSSH sshd on loopback, hosts as network
//! namespaces, real files and SIGKILLs. One test binary (one link step on
//! a 2-core CI machine instead of seven); each module is one area and its
//! test names read as specs. Shared set-up lives in [`support`].
//!
//! Run one area with `cargo test -p belay-cli --test integration remote::`.

mod support;

mod app;
mod chaos;
mod daemon;
mod dashboard;
mod doctor_connection;
mod doctor_host;
mod exec;
mod forward;
mod gpus;
mod hold;
mod hosts_and_outputs;
mod lifecycle;
mod queue;
mod recovery;
mod remote;
mod remote_netns;
mod secrets;
mod shared_home;
mod shell;
mod slurm;
mod slurm_into;
mod ssh_trust;
mod states;
mod store_and_input;
mod streaming;
mod submit_outcomes;
mod tls;
mod tokens;
mod transfer;
mod transfer_hardening;
