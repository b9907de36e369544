//! The engine: every job operation, in the order that keeps jobs safe.
//!
//! - [`submit`]: record intent (`queued`, then `submitting`) before staging
//!   and launching on the host; both remote steps are idempotent and the
//!   launch is guarded by `launch.lock`, so a retry adopts instead of
//!   starting a second copy.
//! - [`reconcile`]: one probe per host brings the store in line with the
//!   job directories, finishes submits whose submitter died, and marks jobs
//!   `lost` only on proof (the wrapper is gone and left no exit file).
//! - [`cancel`] and [`output`]: stopping jobs and reading their output from
//!   byte offsets; [`follow`]: streaming it as it is written.
//! - [`fetch`]: copying a job's declared outputs here (beside input upload
//!   in [`submit`]).
//! - [`release`]: ending a debug hold (`held`, see `run --hold-on-failure`).
//! - [`health`]: the one writer of host health.
//! - [`advance`]: one pass over every host with work (cancels recorded,
//!   queued and orphaned submits, live jobs, outputs owed): the daemon's
//!   loop, runnable by any command.

pub mod advance;
pub mod apps;
pub mod cancel;
pub mod fetch;
pub mod follow;
pub mod health;
pub mod output;
pub mod reconcile;
pub mod release;
pub mod shell_target;
pub mod submit;
pub mod submitter;
pub mod wait_modes;

use std::sync::Arc;

use crate::error::{CoreError, Result};
use crate::home::BelayHome;
use crate::hosts::{Hosts, HostsOptions};
use crate::job::Job;
use crate::remote::scripts::job_dir_word;
use crate::scheduler::{self, Scheduler};
use crate::store::Store;
use crate::transport::Transport;

pub use advance::{HostPass, next_interval};
pub use follow::{Offsets, Piece, StreamEnd};
pub use reconcile::{HostProblem, SLURM_QUEUE_REASON};
pub use submit::SubmitOptions;

/// How often the wrapper touches `heartbeat`.
pub const HEARTBEAT_SECS: u32 = 15;

/// A launch that has held `launch.lock` this long without the wrapper
/// starting was interrupted: the job will never start.
pub const LAUNCH_TIMEOUT_SECS: i64 = 60;

/// Told each job a submit has just recorded.
pub type RecordedHook = Box<dyn FnMut(&Job) + Send>;

pub struct Engine {
    store: Store,
    /// Shared by every engine of a daemon (one pooled connection per host
    /// for its whole life); a CLI process has just one engine.
    hosts: Arc<Hosts>,
    /// Shown while a submit copies its inputs (a terminal's progress bar).
    progress: Option<Box<dyn crate::transfer::Progress>>,
    /// Has the user asked to stop (Ctrl-C)? Checked by a submit between
    /// its steps, so it stops before the launch or not at all.
    stop: Option<Box<dyn Fn() -> bool + Send>>,
    /// Called just before a submit records its job: the CLI routes Ctrl-C
    /// to `stop` from then on (before, nothing is recorded, and Ctrl-C may
    /// end belay at once, e.g. during a slow connect).
    arm_stop: Option<Box<dyn FnMut() + Send>>,
    /// Told the job's id as soon as a submit has recorded it (the daemon
    /// tells its client, which may want to cancel it).
    recorded: Option<RecordedHook>,
}

impl Engine {
    /// Open the store under `home` (creating it) with the hosts belay knows.
    pub fn open(home: &BelayHome, options: HostsOptions) -> Result<Self> {
        Self::with_hosts(home, Arc::new(Hosts::new(home, options)?))
    }

    /// Open the store under `home` with hosts (and their connections)
    /// shared with other engines: the daemon opens one engine per request.
    pub fn with_hosts(home: &BelayHome, hosts: Arc<Hosts>) -> Result<Self> {
        Ok(Self::with_store(Store::open(&home.store_path())?, hosts))
    }

    /// An engine over a store connection already open: the daemon hands
    /// each request one it keeps between requests (opening one reads and
    /// parses the whole schema again).
    pub fn with_store(store: Store, hosts: Arc<Hosts>) -> Self {
        Self {
            store,
            hosts,
            progress: None,
            stop: None,
            arm_stop: None,
            recorded: None,
        }
    }

    /// The engine's store connection, for the next engine to use.
    pub fn into_store(self) -> Store {
        self.store
    }

    /// Report input copies of later submits to `progress`.
    pub fn set_transfer_progress(&mut self, progress: Box<dyn crate::transfer::Progress>) {
        self.progress = Some(progress);
    }

    /// Ask `stop` between the steps of later submits whether the user wants
    /// out (the CLI's Ctrl-C flag): before the launch, the job is recorded
    /// cancelled and nothing runs; once the launch is sent, the submit ends
    /// normally and the caller detaches.
    /// `arm` is called once a submit is about to record its job.
    pub fn set_stop_check(
        &mut self,
        arm: Box<dyn FnMut() + Send>,
        stop: Box<dyn Fn() -> bool + Send>,
    ) {
        self.arm_stop = Some(arm);
        self.stop = Some(stop);
    }

    /// Call `recorded` once each later submit has recorded its job.
    pub fn on_recorded(&mut self, recorded: RecordedHook) {
        self.recorded = Some(recorded);
    }

    fn note_recorded(&mut self, job: &Job) {
        if let Some(recorded) = self.recorded.as_mut() {
            recorded(job);
        }
    }

    fn arm_stop(&mut self) {
        if let Some(arm) = self.arm_stop.as_mut() {
            arm();
        }
    }

    fn stop_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    pub fn hosts(&self) -> &Hosts {
        &self.hosts
    }

    pub fn shared_hosts(&self) -> Arc<Hosts> {
        self.hosts.clone()
    }

    fn transport(&self, host: &str) -> Result<Arc<dyn Transport>> {
        self.hosts.get(host)
    }

    fn scheduler(&self, job: &Job) -> Result<Box<dyn Scheduler>> {
        let poll = self
            .hosts
            .config()?
            .host(&job.host)
            .poll_interval(&job.host)?;
        let settings = scheduler::SchedulerSettings {
            poll_secs: poll.as_secs().max(1),
        };
        scheduler::by_name(&job.scheduler, settings).ok_or_else(|| CoreError::Protocol {
            host: job.host.clone(),
            message: format!(
                "job {} uses scheduler '{}', which this build does not know",
                job.id, job.scheduler
            ),
        })
    }

    /// The job directory as a shell word on its host.
    fn dir_word(transport: &dyn Transport, job: &Job) -> String {
        job_dir_word(&transport.workroot(), &job.key, job.remote_dir.as_deref())
    }

    /// Resolve a job reference (id, name or id prefix) and reconcile it.
    pub fn job(&mut self, reference: &str) -> Result<(Job, Vec<HostProblem>)> {
        let job = self.store.resolve(reference)?;
        if !reconcile::wanted(&job) {
            return Ok((job, Vec::new()));
        }
        let problems = self.reconcile(std::slice::from_ref(&job))?;
        Ok((self.store.get(&job.id)?, problems))
    }

    /// Reconcile the live jobs among those listed, then list them afresh.
    pub fn list(
        &mut self,
        filter: &crate::store::JobFilter,
    ) -> Result<(Vec<Job>, Vec<HostProblem>)> {
        let live = self
            .store
            .reconcilable(filter.host.as_deref(), reconcile::LOST_RECHECK_MS)?;
        let problems = self.reconcile(&live)?;
        Ok((self.store.list(filter)?, problems))
    }
}
