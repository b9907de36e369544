//! The error type at belay-core's boundary.
//!
//! Variants are split by who must act: [`CoreError::is_bad_input`] marks the
//! errors that are the caller's to fix (the CLI maps them to exit status 2);
//! everything else is a failure of the machinery (exit status 1) and carries
//! its real cause, never a paraphrase.

use crate::job::{InvalidTransition, JobState};
use crate::transport::TransportError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Input that can never work: a malformed flag value, a missing command.
    #[error("{0}")]
    BadInput(String),
    #[error("unknown job '{0}' (see `belay ps --all`)")]
    UnknownJob(String),
    #[error("job reference '{reference}' is ambiguous: it matches {candidates}")]
    AmbiguousJob {
        reference: String,
        candidates: String,
    },
    #[error("unknown host '{host}'{hint}")]
    UnknownHost { host: String, hint: String },
    #[error("job {id} is {state}: {what}")]
    WrongState {
        id: String,
        state: JobState,
        what: String,
    },
    #[error("store {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Transition(#[from] InvalidTransition),
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The job is recorded but its host went away mid-submit; any later
    /// belay command that reaches the host finishes the submit (never twice).
    #[error(
        "job {id} is recorded but not launched yet: {source}. belay finishes submitting it when {host} answers (run `belay ps`)"
    )]
    SubmitDeferred {
        id: String,
        host: String,
        #[source]
        source: TransportError,
    },
    /// The job's host could not be reached: the cancel is recorded and is
    /// carried out by the next belay command that reaches the host (before
    /// anything else there, so a deferred submit never launches).
    #[error("cancel recorded; will be carried out when {host} answers ({source})")]
    CancelDeferred {
        id: String,
        host: String,
        #[source]
        source: TransportError,
    },
    /// The host answered, but not in the protocol's terms (a corrupt job
    /// directory, a missing POSIX tool).
    #[error("host {host}: {message}")]
    Protocol { host: String, message: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl CoreError {
    /// True when the caller's input is at fault (exit status 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            CoreError::BadInput(_)
                | CoreError::UnknownJob(_)
                | CoreError::AmbiguousJob { .. }
                | CoreError::UnknownHost { .. }
                | CoreError::Transport(TransportError::BadHost { .. })
        )
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
