//! Cancelling jobs: the host-side script does the work (TERM the jobs'
//! sessions, KILL after the grace period, record the exits) so a dropped
//! link mid-cancel leaves nothing half-done; the engine records the outcome.
//!
//! One script per host, whatever the number of jobs: cancelling a thousand
//! jobs is one round trip and one shared grace period, not a thousand. A
//! host that cannot be reached gets the cancel recorded as intent in the
//! store (`cancel_pending`); the next command that reaches the host carries
//! it out before anything else there (see [`Engine::carry_out_pending_cancels`]),
//! so a job whose submit was deferred is never launched after the user
//! cancelled it. The intent is recorded before the script is sent, so a
//! process killed mid-cancel (a daemon SIGKILLed) leaves it to the next
//! command too. A job queued for a host that did not answer (no submitter
//! has claimed it) is cancelled in the store alone: nothing of it exists on
//! the host, and the claim and the cancel are exclusive.

use std::collections::{BTreeMap, HashMap};

use super::Engine;
use crate::error::{CoreError, Result};
use crate::job::{Job, JobState};
use crate::remote::scripts::{self, CancelTarget};
use crate::remote::{HostReport, JobReport, RemoteStatus};

/// The reason of a job cancelled while it waited in `queued`.
const CANCELLED_QUEUED: &str = "cancelled (belay cancel) while queued: it was never launched";

/// Default seconds between TERM and KILL.
pub const DEFAULT_GRACE_SECS: u32 = 10;

/// The same failure for every job of one host's cancel.
fn fail_all(
    results: &mut HashMap<String, Result<Job>>,
    host: &str,
    jobs: &[&Job],
    cause: &CoreError,
) {
    for job in jobs {
        results.insert(
            job.id.clone(),
            Err(CoreError::Protocol {
                host: host.to_string(),
                message: format!("cancelling job {}: {cause}", job.id),
            }),
        );
    }
}

impl Engine {
    /// Stop a job. Ended jobs are returned unchanged.
    pub fn cancel(&mut self, job: &Job, grace_secs: u32) -> Result<Job> {
        self.cancel_many(std::slice::from_ref(job), grace_secs)
            .pop()
            .expect("one result per job")
    }

    /// `belay cancel REF…`: every reference resolved before anything is
    /// stopped (a typo stops nothing), then the live ones cancelled, one
    /// script per host. One entry per reference, in order: the job as it
    /// was, and what its cancel came to (`None`: it had ended already).
    pub fn cancel_references(
        &mut self,
        references: &[String],
        grace_secs: u32,
    ) -> Result<Vec<(Job, Option<Result<Job>>)>> {
        let jobs = references
            .iter()
            .map(|r| self.store.resolve(r))
            .collect::<Result<Vec<_>>>()?;
        let live: Vec<Job> = jobs.iter().filter(|j| j.state.is_live()).cloned().collect();
        let mut outcomes = self.cancel_many(&live, grace_secs).into_iter();
        Ok(jobs
            .into_iter()
            .map(|job| {
                let outcome = job
                    .state
                    .is_live()
                    .then(|| outcomes.next().expect("one outcome per live job"));
                (job, outcome)
            })
            .collect())
    }

    /// Stop jobs, one script per host; one result per job, in order. Ended
    /// jobs are returned unchanged. A job whose host cannot be reached gets
    /// [`CoreError::CancelDeferred`]: the cancel is recorded and carried out
    /// when the host answers.
    pub fn cancel_many(&mut self, jobs: &[Job], grace_secs: u32) -> Vec<Result<Job>> {
        let mut by_host: BTreeMap<&str, Vec<&Job>> = BTreeMap::new();
        let mut results: HashMap<String, Result<Job>> = HashMap::new();
        for job in jobs.iter().filter(|j| j.state.is_live()) {
            // A job still waiting for its host exists only here: cancelled
            // here, no host needed — unless a pass claimed it meanwhile
            // (then it is cancelled as a job that may have reached it).
            if job.state == JobState::Queued {
                match self.store.cancel_queued(&job.id, CANCELLED_QUEUED) {
                    Ok(true) => {
                        results.insert(job.id.clone(), self.store.get(&job.id));
                        continue;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        results.insert(job.id.clone(), Err(e));
                        continue;
                    }
                }
            }
            by_host.entry(job.host.as_str()).or_default().push(job);
        }
        for (host, host_jobs) in by_host {
            // Intent first: killed between here and the recorded outcome
            // (a daemon SIGKILLed mid-cancel), the cancel is carried out by
            // the next command that reaches the host, never forgotten.
            let ids: Vec<&str> = host_jobs.iter().map(|j| j.id.as_str()).collect();
            if let Err(e) = self.store.record_cancels_pending(&ids, grace_secs) {
                fail_all(&mut results, host, &host_jobs, &e);
                continue;
            }
            match self.cancel_on_host(host, &host_jobs, grace_secs) {
                Ok(done) => results.extend(done),
                Err(CoreError::Transport(t)) => {
                    // The intent stays recorded for the next try.
                    self.note_host(host, Err(&t));
                    for job in host_jobs {
                        results.insert(
                            job.id.clone(),
                            Err(CoreError::CancelDeferred {
                                id: job.id.clone(),
                                host: host.to_string(),
                                source: t.clone(),
                            }),
                        );
                    }
                }
                Err(e) => {
                    // Not a cause a retry cures: said now, not retried by
                    // every later pass.
                    let _ = self.store.clear_cancels_pending(host, &ids);
                    fail_all(&mut results, host, &host_jobs, &e);
                }
            }
        }
        jobs.iter()
            .map(|j| results.remove(&j.id).unwrap_or_else(|| Ok(j.clone())))
            .collect()
    }

    /// Carry out the cancels recorded while `host` could not be reached.
    /// Per-job failures are returned with the job's id; a transport error
    /// leaves them recorded for the next try.
    pub(crate) fn carry_out_pending_cancels(
        &mut self,
        host: &str,
    ) -> Result<Vec<(String, CoreError)>> {
        let pending = self.store.cancels_pending(host)?;
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let grace = pending.iter().map(|(_, g)| *g).max().unwrap_or(0);
        let mut jobs = Vec::new();
        for (id, _) in &pending {
            let job = self.store.get(id)?;
            if job.state.is_live() {
                jobs.push(job);
            } else {
                self.store.set_cancel_pending(id, None)?;
            }
        }
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let refs: Vec<&Job> = jobs.iter().collect();
        let done = self.cancel_on_host(host, &refs, grace)?;
        Ok(done
            .into_iter()
            .filter_map(|(id, r)| r.err().map(|e| (id, e)))
            .collect())
    }

    /// One cancel script for `jobs` (all live, all on `host`) per
    /// scheduler they use.
    fn cancel_on_host(
        &mut self,
        host: &str,
        jobs: &[&Job],
        grace_secs: u32,
    ) -> Result<Vec<(String, Result<Job>)>> {
        let mut groups: std::collections::BTreeMap<&str, Vec<&Job>> = Default::default();
        for job in jobs {
            groups.entry(job.scheduler.as_str()).or_default().push(job);
        }
        let mut done = Vec::new();
        for group in groups.values() {
            done.extend(self.cancel_group(host, group, grace_secs)?);
        }
        Ok(done)
    }

    /// [`Self::cancel_on_host`] for the jobs of one scheduler.
    fn cancel_group(
        &mut self,
        host: &str,
        jobs: &[&Job],
        grace_secs: u32,
    ) -> Result<Vec<(String, Result<Job>)>> {
        let transport = self.transport(host)?;
        let scheduler = self.scheduler(jobs[0])?;
        let targets: Vec<CancelTarget<'_>> = jobs
            .iter()
            .map(|j| CancelTarget {
                job_id: &j.id,
                dir: Self::dir_word(&*transport, j),
                never_staged: j.remote_dir.is_none(),
            })
            .collect();
        let script = scripts::cancel(&*scheduler, &targets, grace_secs);
        crate::failpoint::hit("before-cancel-script");
        let out = transport.run_script(&script)?;
        crate::failpoint::hit("after-cancel-script");
        self.note_host(host, Ok(()));
        let text = String::from_utf8_lossy(&out.stdout);
        if !text.lines().any(|l| l == "END") {
            return Err(CoreError::Protocol {
                host: host.to_string(),
                message: format!(
                    "the cancel script did not finish (exit status {}): {}",
                    out.status,
                    out.stderr_text()
                ),
            });
        }
        let report = HostReport::parse(&text);
        // The host answered: whatever it said, the recorded intents are
        // settled (one transaction for the host, not one per job).
        let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        self.store.clear_cancels_pending(host, &ids)?;
        let mut results = Vec::new();
        for job in jobs {
            let r = self.record_cancel(job, report.jobs.get(&job.id));
            results.push((job.id.clone(), r));
        }
        Ok(results)
    }

    /// Record what the cancel script reported about one job.
    fn record_cancel(&mut self, job: &Job, jr: Option<&JobReport>) -> Result<Job> {
        let Some(jr) = jr else {
            return Err(CoreError::Protocol {
                host: job.host.clone(),
                message: format!("cancelling job {} gave no report", job.id),
            });
        };
        if jr.status == RemoteStatus::Elsewhere {
            return Err(CoreError::Protocol {
                host: job.host.clone(),
                message: format!(
                    "cannot cancel job {} from here: {}",
                    job.id,
                    jr.field("why").unwrap_or("it runs elsewhere")
                ),
            });
        }
        let current = self.store.get(&job.id)?;
        if let Some(why) = self.no_verdict(&current, jr)? {
            return Err(CoreError::Protocol {
                host: job.host.clone(),
                message: format!("cannot cancel job {} now: {why}", job.id),
            });
        }
        if jr.status == RemoteStatus::Absent && current.remote_dir.is_none() {
            // Never staged, and its directory cannot even be created there:
            // nothing can launch it; the intent is simply withdrawn.
            self.settle(
                &current,
                JobState::Cancelled,
                "cancelled before it was staged",
                Default::default(),
            )?;
            return self.store.get(&job.id);
        }
        if current.state.is_live() {
            self.apply_report(&current, jr)?;
        }
        self.store.get(&job.id)
    }
}
