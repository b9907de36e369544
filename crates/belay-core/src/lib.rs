//! belay-core: the job system.
//!
//! Data flows one way: the CLI (or API) calls the [`engine`], which records
//! intent in the [`store`] *before* every remote side effect and then acts on
//! a host through a [`transport::Transport`], speaking the agentless
//! [`remote`] protocol (POSIX sh scripts and a per-job directory). The remote
//! job directory is the truth about what happened on the host; the engine's
//! reconciler brings the store in line with it.
//!
//! The job system knows no SSH library: a transport runs a shell script on
//! a host and returns its output, and that is all it needs. One seam is
//! open, plainly: `transfer/sftp/` (the movers for hosts that refuse
//! commands) drives `belay_ssh::Sftp` and russh-sftp's request and status
//! types directly; `transfer/sftp/files.rs` is the one place that turns
//! them into core types ([`transfer::listing::Entry`], [`error::CoreError`]).
//! Nothing outside `transfer/sftp/` names russh-sftp.
//!
//! [`paths`] holds the path rules shared by transfers and job specs (one
//! `join`, `parent`, `partial_beside`, `safe_relative`, `base_name`).

pub mod apps;
pub mod config;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod failpoint;
pub mod fanout;
pub mod home;
pub mod hosts;
pub mod job;
pub mod paths;
pub mod remote;
pub mod scheduler;
pub mod secrets;
pub mod shell;
pub mod store;
pub mod time;
pub mod tokens;
pub mod transfer;
pub mod transport;

pub use error::CoreError;
