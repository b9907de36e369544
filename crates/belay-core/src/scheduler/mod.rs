//! Schedulers: how a staged job is handed to the host and how its liveness
//! is judged. Each contributes POSIX sh fragments to the remote protocol; the
//! rest of the protocol (job directory, wrapper, exit file) is shared.
//!
//! `direct` starts the wrapper under `setsid` and judges liveness by pid +
//! process start time + boot id. A batch scheduler (Slurm) fits the same
//! shape: `submit` runs `sbatch run.sh` and prints the scheduler id, the job
//! sits in `pending` until the wrapper writes `started`, and liveness asks
//! the scheduler and the heartbeat instead of `/proc`.

pub mod direct;

pub use direct::Direct;

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
    fn submit(&self) -> String;

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
}

/// The scheduler named `name`, if belay knows it.
pub fn by_name(name: &str) -> Option<Box<dyn Scheduler>> {
    match name {
        "direct" => Some(Box::new(Direct)),
        _ => None,
    }
}
