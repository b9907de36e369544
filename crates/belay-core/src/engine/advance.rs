//! One pass that moves all work forward, with no user command waiting on
//! it: what the daemon's loop runs every interval, and what any command may
//! run. Per host that has work, in this order:
//!
//! 1. reconcile its live jobs ([`Engine::reconcile`], one probe for all of
//!    them), which first carries out the cancels recorded while it was away,
//!    then resumes queued submits and finishes submits whose submitter died
//!    (claimed with `Store::claim_submit`, guarded on the host by
//!    `launch.lock`: never launched twice), then records what the host says;
//! 2. fetch the declared outputs of its jobs that ended and whose outputs
//!    are not here yet, into `$BELAY_HOME/results/<id>/` — recorded in the
//!    store once copied (an output the job did not write is recorded, not
//!    retried), retried next pass while the host is away.
//!
//! Every step records its intent before its remote side effect (the
//! submit's own steps, the copy being idempotent and resumable), so a pass
//! killed anywhere is finished by the next. Host health is recorded by the
//! steps themselves ([`super::health`] is the one writer).
//!
//! The pass returns what it saw of each host ([`HostPass`]);
//! [`next_interval`] turns that into when to look at the host again.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use super::Engine;
use super::reconcile::{HostProblem, LOST_RECHECK_MS};
use crate::error::{CoreError, Result};
use crate::home::BelayHome;
use crate::job::JobState;
use crate::time::now_ms;

/// What one pass saw of one host.
#[derive(Debug, Clone, Default)]
pub struct HostPass {
    pub host: String,
    /// The host answered whatever the pass asked of it (or nothing needed
    /// asking).
    pub answered: bool,
    /// Why it did not answer (properly), when it did not.
    pub error: Option<String>,
    /// How long since it last answered, when it did not answer now
    /// (`None`: never answered, or it answered).
    pub unreachable_for: Option<Duration>,
    /// Its jobs that have not ended.
    pub live_jobs: usize,
    /// Of those, the ones with declared outputs: their end must be seen
    /// soon (the outputs are fetched then).
    pub live_with_outputs: usize,
    /// A job there is starting (queued, submitting, pending), changed state
    /// in this pass, or still owes its outputs: look again soon.
    pub busy: bool,
    /// A batch scheduler's poll interval, when the host has live jobs
    /// under one: their ends are seen within it, and jobs waiting in its
    /// queue (for hours, maybe) do not make the host busy.
    pub scheduler_poll: Option<Duration>,
    /// Jobs whose outputs this pass copied here.
    pub outputs_fetched: Vec<String>,
    /// Problems of single jobs (a resumed submit that failed, an output
    /// that could not be copied).
    pub problems: Vec<HostProblem>,
}

/// How soon to look again at a host that has a job starting or ending, or
/// one being followed.
pub const BUSY_INTERVAL: Duration = Duration::from_millis(500);
/// How soon to look again at a host whose jobs just run and one of them
/// owes outputs when it ends (fetched within a few seconds of the end).
pub const LIVE_INTERVAL: Duration = Duration::from_secs(3);
/// How soon to look again at a host whose jobs just run, none owing
/// outputs: a thousand jobs at rest cost next to nothing, and a command
/// that asks reconciles them itself.
pub const RESTING_INTERVAL: Duration = Duration::from_secs(10);
/// How soon to look again at a host with no work.
pub const IDLE_INTERVAL: Duration = Duration::from_secs(60);
/// The first and the longest wait before asking a host that did not answer.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// When to look at a host again after `pass` (`followed`: a client is
/// following one of its jobs). Fast while something moves, slow at rest,
/// and, for a host that does not answer, a wait that grows with how long it
/// has been away (a quarter of it), capped so that a host back from a
/// partition is seen within [`BACKOFF_MAX`]. (Jitter, to keep many hosts
/// apart, is the caller's.)
pub fn next_interval(pass: &HostPass, followed: bool) -> Duration {
    if !pass.answered {
        let away = pass.unreachable_for.unwrap_or(BACKOFF_MAX * 4);
        return (away / 4).clamp(BACKOFF_MIN, BACKOFF_MAX);
    }
    let interval = if followed || pass.busy {
        BUSY_INTERVAL
    } else if pass.live_with_outputs > 0 {
        LIVE_INTERVAL
    } else if pass.live_jobs > 0 {
        RESTING_INTERVAL
    } else {
        IDLE_INTERVAL
    };
    match pass.scheduler_poll {
        Some(poll) => interval.min(poll),
        None => interval,
    }
}

impl Engine {
    /// One pass over every host that has work (see the module doc). An
    /// error is the store's (a host's trouble is in its [`HostPass`]).
    pub fn advance(&mut self, home: &BelayHome) -> Result<Vec<HostPass>> {
        let mut passes = Vec::new();
        for host in self.hosts_with_work()? {
            passes.push(self.advance_host(home, &host)?);
        }
        Ok(passes)
    }

    /// Hosts with something to do: live jobs (or recently lost ones, which
    /// a late exit file may correct), or outputs owed by ended jobs.
    pub fn hosts_with_work(&self) -> Result<Vec<String>> {
        let mut hosts = BTreeSet::new();
        for job in self.store.reconcilable(None, LOST_RECHECK_MS)? {
            hosts.insert(job.host);
        }
        for job in self.store.outputs_due(None)? {
            hosts.insert(job.host);
        }
        Ok(hosts.into_iter().collect())
    }

    /// The pass for one host (a daemon may run each host on its own clock,
    /// from several threads: every step re-reads the store and claims what
    /// it changes).
    pub fn advance_host(&mut self, home: &BelayHome, host: &str) -> Result<HostPass> {
        let jobs = self.store.reconcilable(Some(host), LOST_RECHECK_MS)?;
        let mut pass = HostPass {
            host: host.to_string(),
            answered: true,
            ..Default::default()
        };
        for problem in self.reconcile(&jobs)? {
            if problem.job.is_none() {
                pass.answered = false;
                pass.error = Some(problem.error);
            } else {
                pass.problems.push(problem);
            }
        }
        if pass.answered {
            self.fetch_due_outputs(home, host, &mut pass)?;
        }
        let after_jobs = self.store.reconcilable(Some(host), LOST_RECHECK_MS)?;
        pass.live_with_outputs = after_jobs
            .iter()
            .filter(|j| j.state.is_live() && !j.outputs.is_empty())
            .count();
        let batch = |j: &crate::job::Job| j.scheduler != "direct";
        if after_jobs.iter().any(|j| j.state.is_live() && batch(j)) {
            let config = self.hosts.config()?.host(host);
            pass.scheduler_poll = Some(config.poll_interval(host)?);
        }
        // Waiting in a batch queue is not starting: it may last hours, and
        // the scheduler is asked once per its poll interval anyway.
        let starting = after_jobs.iter().any(|j| {
            matches!(j.state, JobState::Queued | JobState::Submitting)
                || (j.state == JobState::Pending && !batch(j))
        });
        let after: HashMap<String, JobState> =
            after_jobs.into_iter().map(|j| (j.id, j.state)).collect();
        let moved = jobs.iter().any(|j| after.get(&j.id) != Some(&j.state));
        pass.live_jobs = after.values().filter(|s| s.is_live()).count();
        pass.busy = moved || starting || !self.store.outputs_due(Some(host))?.is_empty();
        if !pass.answered {
            let health = self.store.host_health(host)?.unwrap_or_default();
            pass.unreachable_for = health
                .last_ok_at
                .map(|ok| Duration::from_millis((now_ms() - ok).max(0) as u64));
        }
        Ok(pass)
    }

    /// Copy the outputs `host`'s ended jobs still owe. A host that stops
    /// answering ends the step (each job keeps its place for next pass).
    fn fetch_due_outputs(
        &mut self,
        home: &BelayHome,
        host: &str,
        pass: &mut HostPass,
    ) -> Result<()> {
        for job in self.store.outputs_due(Some(host))? {
            if job.remote_dir.is_none() {
                // Never staged: there is nothing on the host to copy.
                self.store
                    .record_outputs_fetched(&job.id, Some("the job never reached its host"))?;
                continue;
            }
            match self
                .fetch_outputs_home(home, &job, false, &mut |_| Box::new(crate::transfer::Quiet))
            {
                Ok(None) => {} // another process fetched them meanwhile
                Ok(Some(report)) => {
                    pass.outputs_fetched.push(job.id.clone());
                    let problems = report.problems(host);
                    if !problems.is_empty() {
                        pass.problems.push(HostProblem {
                            host: host.to_string(),
                            job: Some(job.id.clone()),
                            error: problems.join("; "),
                        });
                    }
                }
                Err(CoreError::Transport(t)) => {
                    self.note_host(host, Err(&t));
                    self.store
                        .record_outputs_fetch_failed(&job.id, &t.to_string())?;
                    pass.answered = false;
                    pass.error = Some(t.to_string());
                    return Ok(());
                }
                // Something here (a full disk) or a host that answered
                // outside the protocol: kept for the next pass, said now.
                Err(e) => {
                    self.store
                        .record_outputs_fetch_failed(&job.id, &e.to_string())?;
                    pass.problems.push(HostProblem {
                        host: host.to_string(),
                        job: Some(job.id.clone()),
                        error: format!("fetching the outputs of job {}: {e}", job.id),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(answered: bool, live_jobs: usize, busy: bool) -> HostPass {
        HostPass {
            host: "h".into(),
            answered,
            live_jobs,
            busy,
            ..Default::default()
        }
    }

    #[test]
    fn a_host_with_something_moving_is_looked_at_soon() {
        assert_eq!(next_interval(&pass(true, 3, true), false), BUSY_INTERVAL);
        assert_eq!(next_interval(&pass(true, 0, false), true), BUSY_INTERVAL);
        let owing = HostPass {
            live_with_outputs: 1,
            ..pass(true, 3, false)
        };
        assert_eq!(next_interval(&owing, false), LIVE_INTERVAL);
        assert_eq!(
            next_interval(&pass(true, 3, false), false),
            RESTING_INTERVAL
        );
        assert_eq!(next_interval(&pass(true, 0, false), false), IDLE_INTERVAL);
        assert!(
            BUSY_INTERVAL < LIVE_INTERVAL
                && LIVE_INTERVAL < RESTING_INTERVAL
                && RESTING_INTERVAL < IDLE_INTERVAL
        );
    }

    #[test]
    fn a_host_away_is_asked_less_often_the_longer_it_is_away_but_within_the_cap() {
        let away = |secs: u64| HostPass {
            unreachable_for: Some(Duration::from_secs(secs)),
            ..pass(false, 2, true)
        };
        assert_eq!(
            next_interval(&away(0), true),
            BACKOFF_MIN,
            "busy or followed: still backoff"
        );
        assert_eq!(next_interval(&away(12), false), Duration::from_secs(3));
        assert_eq!(next_interval(&away(3600), false), BACKOFF_MAX);
        let never = pass(false, 1, false);
        assert_eq!(next_interval(&never, false), BACKOFF_MAX);
        // Healing within the cap: a 30 s partition is seen ≤ 10 s after.
        assert!(next_interval(&away(30), false) <= Duration::from_secs(10));
    }
}
