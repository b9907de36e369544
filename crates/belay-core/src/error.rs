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
    /// A host key was not recorded (`belay host trust`).
    #[error(transparent)]
    Trust(#[from] crate::hosts::keys::TrustError),
    /// The job is recorded but its host went away mid-submit; any later
    /// belay command that reaches the host finishes the submit, or adopts
    /// the job if the launch did run (never twice). `launch_sent`: the link
    /// went away after the launch was sent, so it may well be running.
    #[error("{}", deferred_message(id, host, *launch_sent, source))]
    SubmitDeferred {
        id: String,
        host: String,
        launch_sent: bool,
        #[source]
        source: TransportError,
    },
    /// A submit stopped after the job was recorded, for a cause retrying
    /// will not cure: the job is named so that the user has seen its id
    /// (`belay ps`/`show` give its state and the reason).
    #[error("job {id} is recorded on {host} but {what}: {source}")]
    SubmitStopped {
        id: String,
        host: String,
        what: String,
        #[source]
        source: Box<CoreError>,
    },
    /// The user interrupted a submit (Ctrl-C) before the launch: the job,
    /// if one was recorded, is cancelled and nothing was launched.
    #[error("{}", match id {
        Some(id) => format!("interrupted: job {id} is recorded as cancelled; nothing was launched"),
        None => "interrupted: nothing was recorded or launched".to_string(),
    })]
    SubmitInterrupted { id: Option<String> },
    /// A cancel recorded while the job was still being submitted (`belay
    /// cancel` elsewhere, its host out of that command's reach): honoured
    /// before the launch, so the job never starts.
    #[error("job {id} was cancelled (belay cancel) before its launch; nothing was launched")]
    SubmitCancelled { id: String },
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
    /// Something on this machine is not as belay left it (a store record
    /// it cannot read, a local destination it will not write through):
    /// `path` names it, never an invented host.
    #[error("{path}: {message}")]
    Local { path: String, message: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl CoreError {
    /// `run `belay doctor HOST`` for a failure to connect to or log in on
    /// a host (unreachable, not responding, host key or authentication
    /// refused), where a diagnosis names the hop, the cause and the fix.
    pub fn doctor_hint(&self) -> Option<String> {
        let host = match self {
            CoreError::Transport(t) | CoreError::SubmitDeferred { source: t, .. } => match t {
                TransportError::Unreachable { host, .. }
                | TransportError::NotResponding { host, .. }
                | TransportError::Refused { host, .. } => host,
                _ => return None,
            },
            CoreError::SubmitStopped { source, .. } => return source.doctor_hint(),
            _ => return None,
        };
        (!crate::hosts::Hosts::is_local(host)).then(|| format!("run `belay doctor {host}`"))
    }

    /// The message with [`CoreError::doctor_hint`] after it, where there
    /// is one: what the CLI and the daemon's API show.
    pub fn message(&self) -> String {
        match self.doctor_hint() {
            Some(hint) => format!("{self} — {hint}"),
            None => self.to_string(),
        }
    }

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

fn deferred_message(id: &str, host: &str, launch_sent: bool, source: &TransportError) -> String {
    if launch_sent {
        format!(
            "job {id} is recorded and may have started on {host}: its launch was sent but the reply was lost ({source}). `belay ps` will settle it (it adopts the job; it never launches a second one)"
        )
    } else {
        format!(
            "job {id} is recorded but not launched yet: {source}. belay finishes submitting it when {host} answers (run `belay ps`)"
        )
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
