//! Reconciliation: bring the store in line with the job directories.
//!
//! One probe script per host covers all of that host's live jobs. What the
//! host says wins, with two rules learnt the hard way elsewhere: a job is
//! never "done" without its `exit` file, and never "lost" on a failed
//! connection — only on proof that its wrapper is gone (pid + start time +
//! boot id) without an `exit` file. A missing job directory is proof only
//! when the workroot could be listed and carries the marker the job was
//! staged under. A host that cannot be reached, or does not answer properly
//! (an unreadable workroot, a stale mount), leaves its jobs as they were and
//! is reported as a [`HostProblem`].

use std::collections::BTreeMap;

use super::{Engine, LAUNCH_TIMEOUT_SECS, submitter};
use crate::error::{CoreError, Result};
use crate::job::{Job, JobState};
use crate::remote::scripts::{self, ProbeTarget};
use crate::remote::{HostReport, JobReport, RemoteStatus};
use crate::store::JobUpdate;
use crate::time::now_ms;

/// How long a `lost` job is still probed for an exit file that turns up
/// late (a host that came back with its files, a verdict from a stale view).
pub const LOST_RECHECK_MS: i64 = 3 * 24 * 3600 * 1000;

/// How a pending Slurm job's reason begins; Slurm's own reason follows
/// (`Priority`, `Resources`, …), which `ps` shows beside the state.
pub const SLURM_QUEUE_REASON: &str = "waiting in Slurm's queue: ";

/// Does this job's truth still live on its host?
pub fn wanted(job: &Job) -> bool {
    job.state.is_live()
        || (job.state == JobState::Lost && now_ms() - job.updated_at < LOST_RECHECK_MS)
}

/// A host that could not be asked about its jobs, and why.
#[derive(Debug, Clone)]
pub struct HostProblem {
    pub host: String,
    /// Set when the problem is one job's, not the host's.
    pub job: Option<String>,
    pub error: String,
}

impl Engine {
    /// Probe the hosts of `jobs` (live ones only) and record what they say.
    pub fn reconcile(&mut self, jobs: &[Job]) -> Result<Vec<HostProblem>> {
        let mut by_host: BTreeMap<&str, Vec<&Job>> = BTreeMap::new();
        for job in jobs.iter().filter(|j| wanted(j)) {
            by_host.entry(job.host.as_str()).or_default().push(job);
        }
        let mut problems = Vec::new();
        for (host, jobs) in by_host {
            match self.reconcile_host(host, &jobs) {
                Ok(job_problems) => {
                    self.note_host(host, Ok(()));
                    problems.extend(job_problems);
                }
                Err(CoreError::Transport(t)) => {
                    self.note_host(host, Err(&t));
                    problems.push(HostProblem {
                        host: host.to_string(),
                        job: None,
                        error: t.to_string(),
                    });
                }
                // The host answered outside the protocol (a probe cut
                // short, a broken tool there): that host's problem only;
                // the other hosts are still asked and listed.
                Err(CoreError::Protocol { host: _, message }) => problems.push(HostProblem {
                    host: host.to_string(),
                    job: None,
                    error: format!("host {host}: {message}"),
                }),
                Err(other) => return Err(other),
            }
        }
        Ok(problems)
    }

    fn reconcile_host(&mut self, host: &str, jobs: &[&Job]) -> Result<Vec<HostProblem>> {
        let mut problems = Vec::new();
        // Cancels the user asked for while this host was away come first:
        // a job cancelled then must not be launched or resumed now.
        for (id, e) in self.carry_out_pending_cancels(host)? {
            problems.push(HostProblem {
                host: host.to_string(),
                job: Some(id),
                error: e.to_string(),
            });
        }
        // One probe per scheduler the host's jobs use (almost always one).
        let mut groups: BTreeMap<&str, Vec<&Job>> = BTreeMap::new();
        for job in jobs {
            groups.entry(job.scheduler.as_str()).or_default().push(job);
        }
        for group in groups.values() {
            self.reconcile_group(host, group, &mut problems)?;
        }
        Ok(problems)
    }

    /// [`Self::reconcile_host`] for the jobs of one scheduler.
    fn reconcile_group(
        &mut self,
        host: &str,
        jobs: &[&Job],
        problems: &mut Vec<HostProblem>,
    ) -> Result<()> {
        let transport = self.transport(host)?;
        let scheduler = self.scheduler(jobs[0])?;
        let targets: Vec<ProbeTarget<'_>> = jobs
            .iter()
            .map(|j| ProbeTarget {
                job_id: &j.id,
                dir: Self::dir_word(&*transport, j),
                known: j
                    .liveness
                    .as_deref()
                    .filter(|_| j.state == JobState::Running),
            })
            .collect();
        let out = transport.run_script(&scripts::probe(&*scheduler, &targets))?;
        crate::failpoint::pause("pause-after-probe", std::time::Duration::from_secs(3));
        let text = String::from_utf8_lossy(&out.stdout);
        if !text.lines().any(|l| l == "END") {
            return Err(CoreError::Protocol {
                host: host.to_string(),
                message: format!(
                    "the status probe did not finish (exit status {}): {}",
                    out.status,
                    out.stderr_text()
                ),
            });
        }
        let report = HostReport::parse(&text);
        let mut still_running: Vec<&str> = Vec::new();
        for job in jobs {
            let Some(jr) = report.jobs.get(&job.id) else {
                continue;
            };
            if jr.status == RemoteStatus::Running && job.state == JobState::Running {
                still_running.push(&job.id); // nothing to record but "seen"
                continue;
            }
            // Re-read: another belay process may have moved it meanwhile.
            let current = self.store.get(&job.id)?;
            if !wanted(&current) {
                continue;
            }
            if current.state != job.state {
                // Moved since the probe's list was read (a submit that
                // staged and launched it meanwhile): the report may predate
                // that, and is no verdict. The next probe judges it.
                continue;
            }
            if current.state == JobState::Lost {
                // Only an exit file can correct a lost verdict.
                if jr.status == RemoteStatus::Exit {
                    self.apply_report(&current, jr)?;
                }
                continue;
            }
            if let Some(why) = self.no_verdict(&current, jr)? {
                // The host did not answer properly for this job: it keeps
                // its state, and the host is reported (once).
                if !problems.iter().any(|p: &HostProblem| p.job.is_none()) {
                    problems.push(HostProblem {
                        host: host.to_string(),
                        job: None,
                        error: format!("host {host} is not answering properly: {why}"),
                    });
                }
                continue;
            }
            let resumable = matches!(jr.status, RemoteStatus::Staged | RemoteStatus::Absent)
                && matches!(current.state, JobState::Queued | JobState::Submitting);
            if resumable {
                if current
                    .submitter
                    .as_deref()
                    .is_some_and(|t| submitter::may_be_working(t, current.updated_at, now_ms()))
                {
                    continue; // its submitter is alive and at work (or elsewhere)
                }
                let me = submitter::current();
                if !self
                    .store
                    .claim_submit(&current.id, current.submitter.as_deref(), &me)?
                {
                    continue; // another process took it over first
                }
                crate::failpoint::hit("after-resume-claim");
                match self.stage_and_launch(&current) {
                    Ok(()) => {}
                    // The host went away: the host's problem, reported by the caller.
                    Err(e @ CoreError::Transport(_)) => return Err(e),
                    // Anything else is this job's alone (e.g. its workdir is
                    // gone, so it was marked failed): the other jobs go on.
                    Err(e) => problems.push(HostProblem {
                        host: host.to_string(),
                        job: Some(current.id.clone()),
                        error: format!("job {}: {e}", current.id),
                    }),
                }
                continue;
            }
            self.apply_report(&current, jr)?;
        }
        self.store.touch_seen(&still_running)?;
        self.record_job_gpus(host, &report, &still_running, jobs)?;
        Ok(())
    }

    /// The GPU processes the probe listed (when the host has nvidia-smi),
    /// given to the running jobs they belong to: by the `BELAY_JOB_ID` in
    /// their environment, else by their session (the job's wrapper leads
    /// it). A running job holding none gets an empty list.
    fn record_job_gpus(
        &mut self,
        host: &str,
        report: &HostReport,
        running: &[&str],
        jobs: &[&Job],
    ) -> Result<()> {
        use crate::hosts::gpus::{JobGpu, parse_apps_line};
        if report.tagged("GA").is_none() || running.is_empty() {
            return Ok(());
        }
        let inventory = self.host_health(host)?.gpus.unwrap_or_default();
        let mut by_job: BTreeMap<&str, Vec<JobGpu>> =
            running.iter().map(|id| (*id, Vec::new())).collect();
        let sid_of: BTreeMap<u32, &str> = jobs
            .iter()
            .filter(|j| by_job.contains_key(j.id.as_str()))
            .filter_map(|j| {
                let pid = j.liveness.as_deref()?.split(' ').next()?.parse().ok()?;
                Some((pid, j.id.as_str()))
            })
            .collect();
        for line in report.other.iter().filter(|l| l.starts_with("G ")) {
            let Some((sid, env_job, app)) = parse_apps_line(line) else {
                continue;
            };
            let owner = env_job
                .as_deref()
                .and_then(|j| by_job.keys().find(|k| **k == j).copied())
                .or_else(|| sid.and_then(|s| sid_of.get(&s).copied()));
            if let Some(id) = owner {
                let gpu_index = inventory
                    .iter()
                    .find(|g| g.uuid == app.gpu_uuid)
                    .map(|g| g.index);
                by_job.entry(id).or_default().push(JobGpu {
                    pid: app.pid,
                    gpu_uuid: app.gpu_uuid,
                    gpu_index,
                    used_memory_mib: app.used_memory_mib,
                });
            }
        }
        let rows: Vec<(&str, Option<String>)> = by_job
            .into_iter()
            .map(|(id, g)| (id, serde_json::to_string(&g).ok()))
            .collect();
        self.store.set_job_gpus(&rows)
    }

    /// Why this report is no verdict on the job, if it is not: its files
    /// could not be seen (`unseen`), or they are missing from a workroot
    /// other than the one the job was staged under (another machine behind
    /// the same name, a different mount).
    pub(crate) fn no_verdict(&self, job: &Job, jr: &JobReport) -> Result<Option<String>> {
        Ok(match jr.status {
            RemoteStatus::Unseen => Some(
                jr.field("why")
                    .unwrap_or("the job's files cannot be seen")
                    .to_string(),
            ),
            RemoteStatus::Absent => {
                let staged_under = self.store.workroot_id(&job.id)?;
                let seen = jr.field("workroot_id");
                match staged_under {
                    Some(m) if seen != Some(m.as_str()) => Some(format!(
                        "job {} is missing from a workroot whose marker is {}, not the {m} it was staged under",
                        job.id,
                        seen.unwrap_or("missing")
                    )),
                    _ => None,
                }
            }
            _ => None,
        })
    }

    /// Record what the host said about one job. A report that is no
    /// verdict ([`Self::no_verdict`]) changes nothing.
    pub(crate) fn apply_report(&mut self, job: &Job, jr: &JobReport) -> Result<()> {
        if self.no_verdict(job, jr)?.is_some() {
            return Ok(());
        }
        let seen = Some(now_ms());
        // Seconds from the host, truncated: never before the job existed.
        let started_at = jr.time_ms("started_at").map(|t| t.max(job.created_at));
        // The scheduler's id: the wrapper's pid under `direct`; a batch
        // scheduler's job id was recorded at launch and stays.
        let pid = jr
            .field("pid")
            .filter(|_| job.scheduler == "direct")
            .map(str::to_string);
        let slurm_end = jr.field("sched_state").map(|state| SlurmEnd {
            state,
            reason: jr.field("sched_reason"),
        });
        match jr.status {
            RemoteStatus::Exit => {
                let code = jr.int("code").map(|c| c as i32);
                let (to, reason) = if jr.field("never_launched").is_some() {
                    (
                        JobState::Cancelled,
                        "cancelled before it was launched".to_string(),
                    )
                } else if jr.field("never_started").is_some() {
                    (
                        JobState::Cancelled,
                        "cancelled while it waited in the scheduler's queue (it never started)"
                            .to_string(),
                    )
                } else if jr.field("refused").is_some() {
                    let why = jr.field("why").unwrap_or("the scheduler refused the job");
                    (JobState::Failed, format!("Slurm refused the job: {why}"))
                } else if let Some(end) = slurm_end.as_ref().filter(|e| e.abnormal()) {
                    // A signal belay did not send: Slurm says whose.
                    end.verdict(exit_reason("ended", code).trim_start_matches("ended: "))
                } else if jr.field("cancelled") == Some("1") {
                    (JobState::Cancelled, exit_reason("cancelled", code))
                } else if let Some(why) = jr.field("why") {
                    // The wrapper refused to run the command (a full disk).
                    (JobState::Failed, why.to_string())
                } else if code == Some(0) {
                    (JobState::Succeeded, "exited with code 0".to_string())
                } else {
                    (JobState::Failed, exit_reason("failed", code))
                };
                // After a debug hold: how the hold ended, too.
                let reason = match jr.field("hold_end") {
                    Some("released") => format!("{reason}; its hold was released"),
                    Some("expired") => format!("{reason}; its hold expired"),
                    Some("cancelled") => format!("{reason} while held"),
                    _ => reason,
                };
                let update = JobUpdate {
                    exit_code: code,
                    started_at,
                    ended_at: jr
                        .time_ms("ended_at")
                        .map(|t| t.max(started_at.unwrap_or(job.created_at))),
                    scheduler_id: pid,
                    last_seen: seen,
                    // The hold's reason (shell, release) is history now;
                    // a refusal's or Slurm's verdict is the reason.
                    reason: if jr.field("refused").is_some()
                        || slurm_end.as_ref().is_some_and(|e| e.abnormal())
                    {
                        Some(reason.clone())
                    } else {
                        jr.field("why")
                            .map(str::to_string)
                            .or_else(|| jr.field("hold_end").map(|_| reason.clone()))
                    },
                    ..Default::default()
                };
                self.move_job(job, to, &reason, update)
            }
            RemoteStatus::Running => {
                let update = JobUpdate {
                    started_at,
                    scheduler_id: pid,
                    last_seen: seen,
                    liveness: liveness_token(jr),
                    ..Default::default()
                };
                if matches!(job.state, JobState::Running | JobState::Held) {
                    self.store.touch(&job.id, &update)
                } else {
                    self.move_job(job, JobState::Running, "the wrapper started", update)
                }
            }
            RemoteStatus::Held => {
                let code = jr.int("code").map(|c| c as i32);
                let until = jr.int("until").map(|s| s * 1000);
                let mut update = JobUpdate {
                    exit_code: code,
                    started_at,
                    scheduler_id: pid,
                    last_seen: seen,
                    liveness: liveness_token(jr),
                    hold_until: until,
                    ..Default::default()
                };
                if job.state == JobState::Held {
                    return self.store.touch(&job.id, &update);
                }
                let until_text =
                    until.map_or_else(|| "its time limit".to_string(), crate::job::view::rfc3339);
                let what = if jr.field("hold") == Some("requested") {
                    format!(
                        "{}; held as it asked (a `hold` file)",
                        exit_reason("ended", code)
                    )
                } else {
                    format!("{}; held for debugging", exit_reason("failed", code))
                };
                let limit = if job.scheduler == "slurm" {
                    " (or until the job's Slurm time limit, if that comes first: the hold keeps its allocation)"
                } else {
                    ""
                };
                let reason = format!(
                    "{what} until {until_text}{limit}: `belay shell {id}`, `belay release {id}`",
                    id = job.id
                );
                update.reason = Some(reason.clone());
                self.move_job(job, JobState::Held, &reason, update)
            }
            RemoteStatus::Dead if slurm_end.is_some() => {
                // Slurm ended it and no exit file was written (a node
                // failure, an out-of-memory kill, a time limit with no
                // grace): Slurm's word names the end.
                let end = slurm_end.as_ref().expect("checked");
                let (to, reason) = end.verdict("it left no exit file");
                self.settle(
                    job,
                    to,
                    &reason,
                    JobUpdate {
                        started_at,
                        ..Default::default()
                    },
                )
            }
            RemoteStatus::Dead => {
                let why = jr.field("why").unwrap_or("its wrapper process is gone");
                let reason = format!("{why}, and it left no exit file");
                self.settle(
                    job,
                    JobState::Lost,
                    &reason,
                    JobUpdate {
                        started_at,
                        scheduler_id: pid,
                        ..Default::default()
                    },
                )?;
                self.kill_remnants(job)
            }
            // No verdict from here.
            RemoteStatus::Elsewhere | RemoteStatus::Unseen => Ok(()),
            RemoteStatus::Launching => {
                let age = jr.int("lock_age").unwrap_or(0);
                let accepted = jr.field("scheduler").is_some();
                let mut job = job.clone();
                if accepted && job.state == JobState::Submitting {
                    let sid = jr.field("scheduler_id");
                    let update = JobUpdate {
                        scheduler_id: sid.map(str::to_string),
                        last_seen: seen,
                        ..Default::default()
                    };
                    let why = match (jr.field("submit_note"), sid) {
                        (Some(note), _) => format!("handed to the scheduler: {note}"),
                        (None, Some(id)) if job.scheduler == "slurm" => {
                            format!("handed to the scheduler: Slurm job {id}")
                        }
                        _ => "handed to the scheduler".to_string(),
                    };
                    self.move_job(&job, JobState::Pending, &why, update)?;
                    job = self.store.get(&job.id)?;
                }
                if let Some(end) = &slurm_end {
                    return self.slurm_waiting(&job, end, age);
                }
                if jr.field("sched_unknown").is_some() {
                    // Slurm could not say: no verdict, the job stays.
                    return self.store.touch(
                        &job.id,
                        &JobUpdate {
                            last_seen: seen,
                            ..Default::default()
                        },
                    );
                }
                let job = &job;
                if age <= LAUNCH_TIMEOUT_SECS {
                    return self.store.touch(
                        &job.id,
                        &JobUpdate {
                            last_seen: seen,
                            ..Default::default()
                        },
                    );
                }
                let reason = format!(
                    "its launch was interrupted: launch.lock is {age} s old and the job never started"
                );
                self.settle(job, JobState::Lost, &reason, JobUpdate::default())
            }
            RemoteStatus::Staged | RemoteStatus::Absent => {
                if matches!(job.state, JobState::Queued | JobState::Submitting) {
                    return Ok(()); // a submit in progress; reconcile resumes it if orphaned
                }
                let reason = format!(
                    "its job directory {} is gone from the host",
                    job.remote_dir.as_deref().unwrap_or(&job.key)
                );
                self.settle(job, JobState::Lost, &reason, JobUpdate::default())
            }
        }
    }

    /// A launched Slurm job that has not started: pending with Slurm's
    /// reason, or ended by Slurm before it ran.
    fn slurm_waiting(&mut self, job: &Job, end: &SlurmEnd<'_>, lock_age: i64) -> Result<()> {
        let seen = Some(now_ms());
        if end.state == "gone" {
            let reason = "it left Slurm's queue before it started, and Slurm keeps no record of it";
            return self.settle(job, JobState::Lost, reason, JobUpdate::default());
        }
        if !end.live() {
            // A shared file system may show the wrapper's files late: the
            // verdict waits a little after the launch.
            if lock_age < 10 {
                return Ok(());
            }
            let what = if end.abnormal() {
                "before it started"
            } else {
                // Slurm ran it, yet the wrapper recorded nothing here: its
                // node cannot see the job directory.
                "but its wrapper never recorded a start in the job directory: is the workroot \
                 on a file system the compute nodes share? (workroot under [hosts.H] in \
                 config.toml; slurm-<id>.out in the job directory, if any, says more)"
            };
            let (to, reason) = end.verdict(what);
            return self.settle(job, to, &reason, JobUpdate::default());
        }
        let reason = match (end.state, end.reason) {
            ("PENDING", Some(r)) if r != "None" => format!("{SLURM_QUEUE_REASON}{r}"),
            ("PENDING", _) => "waiting in Slurm's queue".to_string(),
            (state, _) => format!("Slurm says {state}; the wrapper has not started yet"),
        };
        self.store.touch(
            &job.id,
            &JobUpdate {
                last_seen: seen,
                reason: (job.reason.as_deref() != Some(reason.as_str())).then_some(reason),
                ..Default::default()
            },
        )
    }

    /// Transition, passing through `submitting` when a queued job turns out
    /// to have gone further (its submitter died before recording it).
    fn move_job(&mut self, job: &Job, to: JobState, reason: &str, update: JobUpdate) -> Result<()> {
        if job.state == JobState::Queued && !JobState::Queued.can_move_to(to) {
            self.store.transition(
                &job.id,
                JobState::Submitting,
                "found staged on the host",
                &JobUpdate::default(),
            )?;
        }
        self.store.transition(&job.id, to, reason, &update)?;
        Ok(())
    }

    /// End `job` in a state whose cause is not an exit code (lost, failed
    /// to submit): the cause is both the event's and the job's reason.
    pub(crate) fn settle(
        &mut self,
        job: &Job,
        to: JobState,
        reason: &str,
        update: JobUpdate,
    ) -> Result<()> {
        let update = JobUpdate {
            reason: Some(reason.to_string()),
            last_seen: Some(now_ms()),
            ..update
        };
        self.move_job(job, to, reason, update)
    }

    /// Stop processes a lost job left behind (its session, provably ours).
    fn kill_remnants(&mut self, job: &Job) -> Result<()> {
        let transport = self.transport(&job.host)?;
        let scheduler = self.scheduler(job)?;
        let dir = Self::dir_word(&*transport, job);
        transport.run_script(&scripts::kill_remnants(&*scheduler, &dir))?;
        Ok(())
    }
}

/// "pid ticks boot node pidns" from a `started` report, when complete
/// (values never contain spaces: numbers, a uuid, a hostname).
fn liveness_token(jr: &JobReport) -> Option<String> {
    let parts = ["pid", "start_ticks", "boot_id", "node", "pidns"]
        .map(|k| jr.fields.get(k).map(String::as_str).unwrap_or(""));
    let complete =
        parts[..3].iter().all(|p| !p.is_empty()) && !parts.iter().any(|p| p.contains(' '));
    complete.then(|| parts.join(" "))
}

fn exit_reason(what: &str, code: Option<i32>) -> String {
    match code {
        Some(c) if c > 128 => format!("{what}: exited with code {c} (signal {})", c - 128),
        Some(c) => format!("{what}: exited with code {c}"),
        None => what.to_string(),
    }
}

/// What Slurm's listing says of a job (`sched_state`, `sched_reason`).
struct SlurmEnd<'a> {
    state: &'a str,
    reason: Option<&'a str>,
}

impl SlurmEnd<'_> {
    /// Still queued or holding its allocation.
    fn live(&self) -> bool {
        matches!(
            self.state,
            "PENDING"
                | "RUNNING"
                | "CONFIGURING"
                | "COMPLETING"
                | "SUSPENDED"
                | "REQUEUED"
                | "REQUEUE_HOLD"
                | "REQUEUE_FED"
                | "RESIZING"
                | "SIGNALING"
                | "STAGE_OUT"
                | "STOPPED"
                | "RESV_DEL_HOLD"
                | "SPECIAL_EXIT"
        )
    }

    /// Slurm ended the job, not the job itself: a time limit, a node
    /// failure, a preemption, memory, someone's scancel.
    fn abnormal(&self) -> bool {
        self.reason == Some("TimeLimit")
            || matches!(
                self.state,
                "TIMEOUT"
                    | "NODE_FAIL"
                    | "PREEMPTED"
                    | "OUT_OF_MEMORY"
                    | "CANCELLED"
                    | "BOOT_FAIL"
                    | "DEADLINE"
            )
    }

    /// The state and reason a Slurm-side end gives the job; `what` says
    /// what else is known ("it left no exit file", the exit code).
    fn verdict(&self, what: &str) -> (JobState, String) {
        let state = if self.reason == Some("TimeLimit") {
            "TIMEOUT"
        } else {
            self.state
        };
        let why = match state {
            "TIMEOUT" => "it reached its time limit",
            "NODE_FAIL" => "its node failed",
            "PREEMPTED" => "it was preempted",
            "OUT_OF_MEMORY" => "it ran out of memory",
            "CANCELLED" => "it was cancelled outside belay (scancel)",
            "BOOT_FAIL" => "its node failed to boot",
            "DEADLINE" => "it reached its deadline",
            _ => "Slurm ended it",
        };
        let reason = match self.reason.filter(|r| *r != "None" && *r != "TimeLimit") {
            Some(r) => format!("{why} (Slurm: {state}, {r}); {what}"),
            None => format!("{why} (Slurm: {state}); {what}"),
        };
        let to = if state == "CANCELLED" {
            JobState::Cancelled
        } else {
            JobState::Failed
        };
        (to, reason)
    }
}
