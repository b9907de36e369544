//! The forward manager (`belay forward`): local listeners whose
//! connections each open a forwarded channel on the pooled connection to a
//! host, as `ssh -L` would, but self-healing ([`relay`]: the listener stays
//! bound through a dropped link, connections accepted meanwhile wait for
//! it). The daemon holds forwards for as long as it lives and records them
//! in the store, so a daemon killed with SIGKILL binds them again on
//! restart ([`Forwards::restore`], the same local address when still free,
//! a note otherwise). `belay forward --foreground` and `--no-daemon` run
//! the same manager in the CLI, unrecorded.
//!
//! A forward to a job goes to the node the job runs on (its host alias;
//! a connection that reaches another node than the job's recorded one is
//! refused; a live Slurm job is reached by a relay step inside its
//! allocation, on whichever compute node it runs: [`route`]) and closes when the job ends ([`Forwards::close_ended_jobs`],
//! which the daemon calls after its background passes see the end):
//! `--list` then says "job ended".
//!
//! - [`spec`]: `[LOCAL:]REMOTE` parsing;
//! - [`local`]: binding the local end (port in use → bad input);
//! - [`relay`]: accepting and relaying, waiting for the link;
//! - [`route`]: how each connection reaches the target.

pub mod local;
pub mod relay;
pub mod route;
pub mod spec;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use belay_core::CoreError;
use belay_core::engine::Engine;
use belay_core::hosts::Hosts;
use belay_core::store::ForwardRecord;
use belay_core::time::now_ms;
use serde::{Deserialize, Serialize};

use local::{Bound, bind};
use relay::Activity;
use route::Route;
use spec::{ForwardSpec, LocalEnd};

/// Why a forward could not be opened or found.
#[derive(Debug, thiserror::Error)]
pub enum ForwardsError {
    /// Bad input (spec, unknown host or job, port in use), or the store.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The host refused to forward there, or could not be reached.
    #[error(transparent)]
    Forward(#[from] belay_ssh::ForwardError),
    /// The job runs on another node than this connection reaches.
    #[error("{0}")]
    Elsewhere(String),
    /// No forward has this id (or the job has none).
    #[error("{0}")]
    NotFound(String),
}

/// What `--list` shows of one forward.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardView {
    #[serde(flatten)]
    pub record: ForwardRecord,
    /// `listening`, `job ended`, or why it does not listen.
    pub state: String,
    /// Local connections being relayed now.
    pub connections: usize,
    /// The last error a connection met, if any.
    pub last_error: Option<String>,
}

/// Which forwards to stop.
#[derive(Debug, Clone)]
pub enum Which {
    Id(String),
    Job(String),
    All,
}

struct Serving {
    record: ForwardRecord,
    task: tokio::task::AbortHandle,
    activity: Arc<Activity>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.task.abort();
        // Our own socket file only (the task no longer accepts on it).
        if let LocalEnd::Socket(path) = LocalEnd::from_recorded(&self.record.local) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The forwards this process serves.
pub struct Forwards {
    /// Record them in the store (the daemon); the CLI's are not.
    persist: bool,
    serving: Mutex<HashMap<String, Serving>>,
}

impl Forwards {
    pub fn new(persist: bool) -> Forwards {
        Forwards {
            persist,
            serving: Mutex::new(HashMap::new()),
        }
    }

    fn serving(&self) -> std::sync::MutexGuard<'_, HashMap<String, Serving>> {
        self.serving.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forwards listening now (the daemon does not idle-exit while any is).
    pub fn open_count(&self) -> usize {
        self.serving().len()
    }

    /// Opens a forward to `to` (a job reference, else a host alias) per
    /// `spec`: checks that the host forwards there (one channel opened and
    /// closed, so a refusal is said now), binds the local end, records it,
    /// and serves it on the SSH runtime. Blocking (engine thread).
    pub fn open(
        &self,
        engine: &mut Engine,
        to: &str,
        spec: &str,
    ) -> Result<ForwardView, ForwardsError> {
        let spec = ForwardSpec::parse(spec).map_err(CoreError::BadInput)?;
        let (host, job) = destination(engine, to)?;
        let mut chosen = Route::choose(engine.hosts(), &host, job.as_ref(), spec.remote.clone());
        if let (Some(job), Route::Channel(_), None) = (&job, &chosen.route, &chosen.fallback) {
            check_node(engine.hosts(), job)?;
        }
        // Dropped on the runtime: closing the channel is sent from there.
        let runtime = belay_core::transport::ssh::runtime();
        if let Err(e) = runtime.block_on(chosen.route.check(&chosen.client)) {
            // A compute node that does not take SSH or forwards nothing
            // (no job-owner access, no route, AllowTcpForwarding no): into
            // the allocation instead. Nothing listening is the answer
            // either way.
            let nothing_there = matches!(e, belay_ssh::ForwardError::NothingThere { .. });
            let Some(fallback) = chosen.fallback.take().filter(|_| !nothing_there) else {
                return Err(e.into());
            };
            tracing::info!(node = %chosen.client.alias(), "no SSH to the job's node ({e}); forwarding through srun");
            chosen = *fallback;
            runtime.block_on(chosen.route.check(&chosen.client))?;
        }
        let (client, route) = (chosen.client, chosen.route);
        let bound = bind(&spec.local)?;
        let record = ForwardRecord {
            id: belay_core::job::id::random_hex(4)?,
            host,
            job_id: job.map(|j| j.id),
            local: bound.address(),
            remote: spec.remote.to_string(),
            created_at: now_ms(),
            closed: None,
            note: None,
        };
        if self.persist {
            engine.store_mut().insert_forward(&record)?;
        }
        Ok(self.serve(record, bound, client, route))
    }

    fn serve(
        &self,
        record: ForwardRecord,
        bound: Bound,
        client: Arc<belay_ssh::Client>,
        target: Route,
    ) -> ForwardView {
        let activity = Arc::new(Activity::default());
        let runtime = belay_core::transport::ssh::runtime();
        let task = {
            let _entered = runtime.enter();
            runtime
                .spawn(relay::serve(bound, client, target, activity.clone()))
                .abort_handle()
        };
        tracing::info!(id = %record.id, host = %record.host, local = %record.local, remote = %record.remote, "forward listening");
        let view = view_of(&record, Some(&activity));
        self.serving().insert(
            record.id.clone(),
            Serving {
                record,
                task,
                activity,
            },
        );
        view
    }

    /// Every forward: the recorded ones (the daemon) or those served here.
    pub fn list(&self, engine: &Engine) -> Result<Vec<ForwardView>, ForwardsError> {
        let serving = self.serving();
        if !self.persist {
            let mut views: Vec<_> = serving
                .values()
                .map(|s| view_of(&s.record, Some(&s.activity)))
                .collect();
            views.sort_by_key(|v| v.record.created_at);
            return Ok(views);
        }
        Ok(engine
            .store()
            .forwards()?
            .into_iter()
            .map(|r| {
                let activity = serving.get(&r.id).map(|s| s.activity.clone());
                let mut v = view_of(&r, activity.as_ref());
                if r.closed.is_none() && activity.is_none() {
                    v.state = "not listening".into();
                }
                v
            })
            .collect())
    }

    /// Stops forwards (the listener closed at once, the record removed);
    /// returns those stopped.
    pub fn stop(
        &self,
        engine: &mut Engine,
        which: &Which,
    ) -> Result<Vec<ForwardRecord>, ForwardsError> {
        let records: Vec<ForwardRecord> = if self.persist {
            engine.store().forwards()?
        } else {
            self.serving().values().map(|s| s.record.clone()).collect()
        };
        let chosen: Vec<ForwardRecord> = match which {
            Which::All => records,
            Which::Id(id) => records.into_iter().filter(|r| &r.id == id).collect(),
            Which::Job(reference) => {
                let job = engine.store().resolve(reference)?;
                records
                    .into_iter()
                    .filter(|r| r.job_id.as_deref() == Some(job.id.as_str()))
                    .collect()
            }
        };
        if chosen.is_empty()
            && let Which::Id(id) | Which::Job(id) = which
        {
            return Err(ForwardsError::NotFound(format!(
                "no forward '{id}' (see `belay forward --list`)"
            )));
        }
        for r in &chosen {
            self.serving().remove(&r.id);
            if self.persist {
                engine.store_mut().delete_forward(&r.id)?;
            }
            tracing::info!(id = %r.id, "forward stopped");
        }
        Ok(chosen)
    }

    /// Binds the recorded forwards again (a daemon starting after one that
    /// was killed): the same local address when it is free, else another,
    /// with a note saying so. The link is not needed: connections wait.
    pub fn restore(&self, engine: &mut Engine) -> Result<(), ForwardsError> {
        for mut record in engine.store().forwards()? {
            if record.closed.is_some() || self.serving().contains_key(&record.id) {
                continue;
            }
            let Ok(target) = belay_ssh::ForwardTarget::parse(&record.remote) else {
                continue;
            };
            let wanted = LocalEnd::from_recorded(&record.local);
            let bound = match bind(&wanted) {
                Ok(b) => b,
                Err(e) if matches!(wanted, LocalEnd::Port(_)) => {
                    let b = bind(&LocalEnd::Port(0))?;
                    let note = format!(
                        "{} was taken when the daemon restarted ({e}); now {}",
                        record.local,
                        b.address()
                    );
                    tracing::warn!(id = %record.id, "{note}");
                    engine.store_mut().update_forward_local(
                        &record.id,
                        &b.address(),
                        Some(&note),
                    )?;
                    record.local = b.address();
                    record.note = Some(note);
                    b
                }
                Err(e) => {
                    engine
                        .store_mut()
                        .close_forward(&record.id, &format!("not restored: {e}"))?;
                    continue;
                }
            };
            let job = match &record.job_id {
                Some(id) => engine.store().resolve(id).ok(),
                None => None,
            };
            // Not checked (the link may be down): the first choice.
            let chosen = Route::choose(engine.hosts(), &record.host, job.as_ref(), target);
            self.serve(record, bound, chosen.client, chosen.route);
        }
        Ok(())
    }

    /// Closes the forwards of jobs that are no longer live (as the store
    /// says: the daemon's passes record the end); `--list` says "job
    /// ended". Returns how many closed.
    pub fn close_ended_jobs(&self, engine: &mut Engine) -> Result<usize, ForwardsError> {
        let jobs: Vec<(String, String)> = self
            .serving()
            .values()
            .filter_map(|s| Some((s.record.id.clone(), s.record.job_id.clone()?)))
            .collect();
        let mut closed = 0;
        for (id, job_id) in jobs {
            let job = engine.store().resolve(&job_id)?;
            if job.state.is_live() {
                continue;
            }
            self.serving().remove(&id);
            if self.persist {
                engine.store_mut().close_forward(&id, "job ended")?;
            }
            tracing::info!(id = %id, job = %job_id, "forward closed: job ended");
            closed += 1;
        }
        Ok(closed)
    }

    /// Whether any forward served here belongs to a job.
    pub fn has_job_forwards(&self) -> bool {
        self.serving().values().any(|s| s.record.job_id.is_some())
    }
}

fn view_of(record: &ForwardRecord, activity: Option<&Arc<Activity>>) -> ForwardView {
    ForwardView {
        record: record.clone(),
        state: record
            .closed
            .clone()
            .unwrap_or_else(|| "listening".to_string()),
        connections: activity.map_or(0, |a| {
            a.connections.load(std::sync::atomic::Ordering::SeqCst)
        }),
        last_error: activity.and_then(|a| a.last_error.lock().ok().and_then(|e| e.clone())),
    }
}

/// The host `to` names: a job's host (the job must be live), else `to`
/// itself as a host alias.
fn destination(
    engine: &Engine,
    to: &str,
) -> Result<(String, Option<belay_core::job::Job>), ForwardsError> {
    match engine.store().resolve(to) {
        Ok(job) => {
            if !job.state.is_live() {
                return Err(CoreError::BadInput(format!(
                    "job {} is {}: nothing to forward to",
                    job.id, job.state
                ))
                .into());
            }
            if Hosts::is_local(&job.host) {
                return Err(CoreError::BadInput(format!(
                    "job {} runs here (local): connect to it directly",
                    job.id
                ))
                .into());
            }
            Ok((job.host.clone(), Some(job)))
        }
        Err(CoreError::UnknownJob(_)) => {
            if Hosts::is_local(to) {
                return Err(CoreError::BadInput(
                    "'local' is this machine: connect to it directly".into(),
                )
                .into());
            }
            engine.hosts().validate(to)?;
            Ok((to.to_string(), None))
        }
        Err(e) => Err(e.into()),
    }
}

/// A job's forward must reach the node the job runs on: the node in its
/// recorded identity ("pid ticks boot node pidns") against the one this
/// connection reaches.
fn check_node(hosts: &Hosts, job: &belay_core::job::Job) -> Result<(), ForwardsError> {
    let Some(node) = job
        .liveness
        .as_deref()
        .and_then(|l| l.split(' ').nth(3))
        .filter(|n| !n.is_empty())
    else {
        return Ok(());
    };
    let out = hosts
        .get(&job.host)?
        .run_script("read -r node < /proc/sys/kernel/hostname; printf '%s\\n' \"$node\"")
        .map_err(CoreError::from)?;
    let reached = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !reached.is_empty() && reached != node {
        return Err(ForwardsError::Elsewhere(format!(
            "job {} runs on {node}, and this connection to {} reached {reached}: not forwarding there",
            job.id, job.host
        )));
    }
    Ok(())
}
