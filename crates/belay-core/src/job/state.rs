//! The job state machine. Every transition in belay is checked here and
//! nowhere else, so the allowed paths are readable in one table.
//!
//! ```text
//! queued -> submitting -> pending -> running -> succeeded | failed | cancelled | lost
//!                  \________\___________\____> (any end state)
//! running -> held -> succeeded | failed | cancelled     (debug hold, later)
//! lost -> succeeded | failed | cancelled                (an exit file appeared after all)
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Submitting,
    Pending,
    Running,
    Held,
    Succeeded,
    Failed,
    Cancelled,
    Lost,
}

impl JobState {
    pub const ALL: [JobState; 9] = [
        JobState::Queued,
        JobState::Submitting,
        JobState::Pending,
        JobState::Running,
        JobState::Held,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Submitting => "submitting",
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Held => "held",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Lost => "lost",
        }
    }

    /// No further change is expected (lost may still be corrected by an
    /// exit file that turns up later).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::Lost
        )
    }

    /// The command writes no more output and has an exit code: the job
    /// ended, or it is `held` (its command ended; the machine is kept for
    /// debugging). What `run`, `wait` and `logs -f` stop at.
    pub fn command_over(self) -> bool {
        !self.is_live() || self == JobState::Held
    }

    /// States whose truth lives on the host and must be reconciled.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            JobState::Queued
                | JobState::Submitting
                | JobState::Pending
                | JobState::Running
                | JobState::Held
        )
    }

    /// May a job move from `self` to `to`?
    pub fn can_move_to(self, to: JobState) -> bool {
        use JobState::*;
        matches!(
            (self, to),
            (Queued, Submitting | Cancelled | Failed)
                | (
                    Submitting,
                    Pending | Running | Held | Succeeded | Failed | Cancelled | Lost
                )
                | (
                    Pending,
                    Running | Held | Succeeded | Failed | Cancelled | Lost
                )
                | (Running, Held | Succeeded | Failed | Cancelled | Lost)
                | (Held, Succeeded | Failed | Cancelled | Lost)
                | (Lost, Succeeded | Failed | Cancelled)
        )
    }

    /// How far along the submit/run path a state is. A transition from a
    /// state that is as far or further than its target was decided from a
    /// stale view (another process got there first) and is skipped.
    pub fn progress(self) -> u8 {
        match self {
            JobState::Queued => 0,
            JobState::Submitting => 1,
            JobState::Pending => 2,
            JobState::Running => 3,
            JobState::Held => 4,
            _ => 5,
        }
    }

    /// Check a transition, naming both ends when it is refused.
    pub fn check_move(self, to: JobState) -> Result<(), InvalidTransition> {
        if self.can_move_to(to) {
            Ok(())
        } else {
            Err(InvalidTransition { from: self, to })
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown job state '{s}'"))
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("a job cannot move from {from} to {to}")]
pub struct InvalidTransition {
    pub from: JobState,
    pub to: JobState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_states_are_final_except_lost_correction() {
        for from in [JobState::Succeeded, JobState::Failed, JobState::Cancelled] {
            for to in JobState::ALL {
                assert!(!from.can_move_to(to), "{from} -> {to} must be refused");
            }
        }
        assert!(JobState::Lost.can_move_to(JobState::Succeeded));
        assert!(!JobState::Lost.can_move_to(JobState::Running));
    }

    #[test]
    fn live_and_terminal_partition_the_states() {
        for st in JobState::ALL {
            assert_ne!(st.is_live(), st.is_terminal(), "{st}");
            assert_eq!(st.as_str().parse::<JobState>().unwrap(), st);
        }
    }

    #[test]
    fn stale_moves_go_backwards_in_progress() {
        assert!(JobState::Running.progress() > JobState::Pending.progress());
        assert!(JobState::Cancelled.progress() > JobState::Running.progress());
        assert!(JobState::Lost.progress() >= JobState::Succeeded.progress());
    }

    #[test]
    fn submit_path_is_allowed_and_no_skipping_back() {
        assert!(JobState::Queued.check_move(JobState::Submitting).is_ok());
        assert!(JobState::Submitting.check_move(JobState::Running).is_ok());
        let err = JobState::Running.check_move(JobState::Queued).unwrap_err();
        assert_eq!(err.to_string(), "a job cannot move from running to queued");
    }
}
