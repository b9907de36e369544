//! Schedulers: how a staged job is handed to the host and how its liveness
//! is judged. Each contributes POSIX sh fragments to the remote protocol; the
//! rest of the protocol (job directory, wrapper, exit file) is shared.
//!
//! `direct` starts the wrapper under `setsid` and judges liveness by pid +
//! process start time + boot id. `slurm` hands the wrapper to `sbatch` as
//! the batch script: the job sits in `pending` (with Slurm's reason) until
//! the wrapper writes `started`, and liveness asks Slurm's queue and the
//! heartbeat instead of `/proc`.

pub mod direct;
pub mod slurm;
pub mod slurm_step;

pub use direct::Direct;
pub use slurm::Slurm;

use crate::job::Job;

pub trait Scheduler: Send + Sync {
    /// The name stored with each job (`direct`, `slurm`).
    fn name(&self) -> &'static str;

    /// sh that checks the host has what `submit` needs; prints one line
    /// `R unsupported <reason>` and exits if not. Runs before the launch
    /// lock is taken; the job then fails with that reason.
    fn preflight(&self) -> String;

    /// sh run in the job directory while holding `launch.lock`: hand
    /// `./run.sh` to the scheduler, fully detached (all three standard
    /// streams redirected, or the transport's channel would stay open).
    /// Sets `belay_ids` to `scheduler_id=ID` lines (possibly none), which
    /// are recorded in `launched`: e.g. `belay_ids=$(sbatch …)`. A
    /// scheduler with no ids leaves it empty and forks nothing more.
    /// `$belay_job` is the job's id. Setting `belay_refused` to the
    /// scheduler's message instead says it refused the job (nothing was
    /// submitted): the job fails with that message.
    fn submit(&self) -> String;

    /// Whether the launch may write its `launched` record in place (no
    /// temp file, no `mv`), and, where the clock cannot be read without
    /// `date`, in the background after its reply (which carries the same
    /// lines). Only where every reader takes a missing, empty or partly
    /// written record as no record: a probe then dates the launch by the
    /// lock, a cancel judges the job from this host, as they always could
    /// between the lock and the record. Not for a batch scheduler, whose
    /// cancel reads its job id there.
    fn records_launch_in_place(&self) -> bool {
        false
    }

    /// sh function `belay_alive DIR` for a job that has written `started`:
    /// sets `alive` to `yes`, `no` or `elsewhere` (it runs where this host
    /// cannot see: another node sharing the home, another container) and,
    /// unless `yes`, `why` to the reason. `$boot`, `$node` and `$pidns`
    /// describe where the probe runs (`$pidns` only after `belay_pidns`,
    /// which reads it once).
    fn liveness(&self) -> String;

    /// sh functions that stop started jobs, many at once: `belay_ours DIR`
    /// loads the job's `started` and sets `ours` to `yes`, `no` or
    /// `elsewhere` (with `why`, as `belay_alive`); `belay_term` signals TERM
    /// to the job so loaded if it is provably ours (status 1 if not);
    /// `belay_reap` waits up to `$grace` seconds for every job so signalled,
    /// then KILLs whatever is left (sets `belay_killed=yes` if it had to).
    fn stop(&self) -> String;

    /// sh functions for a cancel of launched jobs that have not started:
    /// `belay_unqueue DIR` takes the job out of the scheduler's queue (or
    /// returns 1: the wrapper itself will find `cancel-requested`), and
    /// `belay_unqueue_flush` sends what `belay_unqueue` gathered.
    fn unqueue(&self) -> String {
        "belay_unqueue() { return 1; }\nbelay_unqueue_flush() { :; }\n".to_string()
    }

    /// sh functions `belay_report` calls: `belay_sched_launched ID DIR`
    /// prints what the scheduler says of a launched job that has not
    /// started (`sched_state=`, `sched_reason=` lines); `belay_sched_ended
    /// ID DIR` sets `sched_info` (lines to add to an ended job's report)
    /// and `sched_hold` (non-empty: the scheduler has not settled the job;
    /// report it running for now). Defined by [`Scheduler::liveness`]
    /// where a scheduler has something to say; no-ops otherwise.
    fn report_hooks(&self) -> String {
        "belay_sched_launched() { :; }\nbelay_sched_ended() { sched_hold=; sched_info=; }\n"
            .to_string()
    }

    /// Lines that open the wrapper (after `#!/bin/sh`) for a batch
    /// scheduler: `#SBATCH …`. `Some` also means the wrapper finds its job
    /// directory where it was submitted, not beside `$0` (the scheduler
    /// runs a copy of it).
    fn batch_header(&self, _job: &Job) -> Option<String> {
        None
    }
}

/// How a host's scheduler is driven: its poll interval (from config.toml).
#[derive(Debug, Clone, Copy)]
pub struct SchedulerSettings {
    /// The least time between two scheduler queries on the host.
    pub poll_secs: u64,
}

/// The scheduler named `name`, if belay knows it.
pub fn by_name(name: &str, settings: SchedulerSettings) -> Option<Box<dyn Scheduler>> {
    match name {
        "direct" => Some(Box::new(Direct)),
        "slurm" => Some(Box::new(Slurm {
            poll_secs: settings.poll_secs,
        })),
        _ => None,
    }
}
