//! Submitting a job: intent first, then idempotent remote steps.
//!
//! ```text
//! store: queued ─(failpoint after-record)─> submitting
//! host:  stage (dir, spec.json, run.sh) ─(after-stage)─>
//! host:  launch (launch.lock, scheduler) ─(after-launch)─>
//! store: pending (or running / ended, if the host says so) ─(after-store)
//! ```
//!
//! With no inputs to copy in between, stage and launch are one script
//! (one round trip: most of a submit's cost is round trips and the
//! processes each script forks on the host); the working directory is
//! checked there before anything is created, and by an earlier round trip
//! only when `--workdir` was given (a bad one is bad input, refused before
//! the record).
//!
//! A crash anywhere leaves a job that `reconcile` can finish: before the
//! lock it stages and launches again (same files, same lock), after it the
//! job is adopted. Never two launches.
//!
//! Asked to ([`SubmitOptions::queue_if_unreachable`]: the daemon's `run -d`),
//! a submit to a known host that does not answer records the job `queued`
//! with no submitter and the reason, and touches nothing else; the first
//! pass that reaches the host (`Engine::advance`, any reconcile) claims it
//! and runs the steps above from staging.
//!
//! A submit that stops without a crash says which job it leaves, and how:
//! - the link went away (transient): `SubmitDeferred`, "not launched yet"
//!   or, once the launch was sent, "may have started"; the next command
//!   that reaches the host finishes the submit or adopts the job;
//! - any other cause: `SubmitStopped`, naming the job; before the launch it
//!   fails with the cause (nothing ran), after it it stays `submitting`
//!   with the cause as its reason until a reconcile settles it;
//! - the user's Ctrl-C (the engine's stop check) before the launch: the job
//!   is recorded cancelled, nothing is launched (`SubmitInterrupted`); once
//!   the launch is sent the submit finishes and the caller detaches;
//! - a `belay cancel` recorded meanwhile by another command (the host out
//!   of its reach) is checked just before the launch: the job ends
//!   `cancelled` unlaunched (`SubmitCancelled`).

use serde_json::json;

use super::{Engine, HEARTBEAT_SECS, submitter};
use crate::error::{CoreError, Result};
use crate::failpoint;
use crate::job::{Job, JobSpec, JobState};
use crate::remote::{HostReport, scripts, wrapper};
use crate::secrets::SecretValue;
use crate::store::JobUpdate;
use crate::transport::Transport;

/// How a submit treats a host that does not answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubmitOptions {
    /// A known host that does not answer (a transient error: unreachable,
    /// not responding) gets the job recorded `queued`, with the SSH error
    /// and "starts when HOST answers" as its reason, instead of a refusal;
    /// [`Engine::advance`] starts it when the host answers. A host that
    /// refuses us (authentication, host key) is refused as always.
    pub queue_if_unreachable: bool,
}

impl Engine {
    /// Record and launch a job. Bad input (unknown host) is refused before
    /// anything is written.
    pub fn submit(&mut self, spec: &JobSpec) -> Result<Job> {
        self.submit_with(spec, SubmitOptions::default())
    }

    /// [`Self::submit`], with a choice for a host that does not answer.
    pub fn submit_with(&mut self, spec: &JobSpec, options: SubmitOptions) -> Result<Job> {
        self.submit_with_secrets(spec, options, Vec::new())
    }

    /// [`Self::submit_with`] for a job with `--secret`s: `secrets` holds a
    /// value for each name in `spec.secrets`. The values stay in this
    /// process's memory until the launch carries them to the host (see
    /// [`crate::secrets`]); the store and the host's job record get the
    /// names only.
    pub fn submit_with_secrets(
        &mut self,
        spec: &JobSpec,
        options: SubmitOptions,
        secrets: Vec<SecretValue>,
    ) -> Result<Job> {
        crate::secrets::check_values(&spec.secrets, &secrets)?;
        self.hosts.validate(&spec.host)?;
        let (scheduler, sbatch) = self.scheduler_of(spec)?;
        // Reach the host before recording anything: a host that does not
        // answer (or refuses us) gets no job stuck in `submitting`.
        let transport = self.transport(&spec.host)?;
        let reached = transport.connect();
        self.note_host(&spec.host, reached.as_ref().map(|_| ()));
        match reached {
            Ok(_) => {}
            Err(e) if e.is_transient() && options.queue_if_unreachable => {
                // Nothing touches the host: the job waits, recorded, with
                // no submitter, for the first pass that reaches the host.
                let reason = format!("{e}; starts when {} answers", spec.host);
                let job =
                    self.store
                        .insert_scheduled(spec, scheduler, &sbatch, None, Some(&reason))?;
                crate::secrets::keep(&job.id, secrets);
                self.note_recorded(&job);
                return Ok(job);
            }
            Err(e) => return Err(e.into()),
        }
        // A working directory that does not exist is bad input: refuse it
        // before anything is recorded (one round trip, no side effect).
        // Without `--workdir` the job runs in the home directory (or, with
        // inputs, in its own inputs directory, which staging creates): no
        // round trip for that — staging checks it again anyway and fails
        // the job if it is missing.
        if let Some(workdir) = spec.workdir.as_deref() {
            let word = wrapper::workdir_word(Some(workdir));
            let check = transport.run_script(&format!(
                "{{ cd \"$HOME\" 2>/dev/null; cd {word} 2>/dev/null; }} && echo ok"
            ))?;
            if !String::from_utf8_lossy(&check.stdout).contains("ok") {
                return Err(CoreError::BadInput(format!(
                    "bad --workdir: {}",
                    missing_workdir(Some(workdir), &spec.host)
                )));
            }
        }
        self.arm_stop();
        if self.stop_requested() {
            return Err(CoreError::SubmitInterrupted { id: None });
        }
        let me = submitter::current();
        let job = self
            .store
            .insert_scheduled(spec, scheduler, &sbatch, Some(&me), None)?;
        crate::secrets::keep(&job.id, secrets);
        self.note_recorded(&job);
        failpoint::hit("after-record");
        let mut launch_sent = false;
        match self.stage_and_launch_steps(&job, &mut launch_sent) {
            Ok(()) => {}
            Err(CoreError::Transport(e)) if e.is_transient() => {
                // Left for the next pass that reaches the host, whoever
                // runs it (this process too, if it is a daemon).
                let _ = self.store.release_submit(&job.id, &submitter::current());
                return Err(CoreError::SubmitDeferred {
                    id: job.id.clone(),
                    host: job.host.clone(),
                    launch_sent,
                    source: e,
                });
            }
            // (Bad input found by the host — a scheduler that refused the
            // job, one missing — has already failed the job with the cause.)
            Err(
                e @ (CoreError::SubmitInterrupted { .. }
                | CoreError::SubmitCancelled { .. }
                | CoreError::BadInput(_)),
            ) => {
                return Err(e);
            }
            Err(e) => return Err(self.submit_stopped(&job, launch_sent, e)),
        }
        failpoint::hit("after-store");
        self.store.get(&job.id)
    }

    /// The scheduler a job of `spec` runs under (`--scheduler`, else the
    /// host's config) and its sbatch options (the flags over the host's
    /// defaults). Slurm flags for a `direct` job are bad input.
    fn scheduler_of(&self, spec: &JobSpec) -> Result<(&'static str, Vec<String>)> {
        let config = self.hosts.config()?.host(&spec.host);
        let configured = config.scheduler(&spec.host)?;
        let scheduler = match spec.scheduler.as_deref().unwrap_or(configured) {
            "slurm" => "slurm",
            _ => "direct",
        };
        if scheduler == "direct" {
            if let Some(flag) = spec.slurm.flags_given().first() {
                return Err(CoreError::BadInput(format!(
                    "bad {flag}: it is a Slurm option, and jobs on {host} run directly \
                     (give --scheduler slurm, or set scheduler = \"slurm\" under [hosts.{host}] in config.toml)",
                    host = spec.host
                )));
            }
            return Ok((scheduler, Vec::new()));
        }
        let resources = spec.slurm.over(&config.slurm);
        if let Some(bad) = resources
            .sbatch_args
            .iter()
            .find_map(|a| crate::scheduler::slurm::reserved_arg(a).map(|r| (a, r)))
        {
            return Err(CoreError::BadInput(format!(
                "bad --sbatch-arg '{}': belay sets {} itself (the job's name, token, output and directory are how it tracks the job)",
                bad.0, bad.1
            )));
        }
        Ok((scheduler, resources.sbatch_options()?))
    }

    /// A submit ended by a cause that retrying will not cure, after the job
    /// was recorded. Never left for a later `ps` to launch unseen: before
    /// the launch was sent nothing can be running, so a job still waiting
    /// to be launched fails with the cause; after it, the job may be
    /// running, so it stays `submitting` with the cause recorded and the
    /// next reconcile adopts it. Either way the error names the job.
    fn submit_stopped(&mut self, job: &Job, launch_sent: bool, cause: CoreError) -> CoreError {
        let current = match self.store.get(&job.id) {
            Ok(current) => current,
            Err(_) => {
                return CoreError::SubmitStopped {
                    id: job.id.clone(),
                    host: job.host.clone(),
                    what: "its submit stopped".into(),
                    source: Box::new(cause),
                };
            }
        };
        let waiting = matches!(current.state, JobState::Queued | JobState::Submitting);
        let what = if !waiting {
            format!("its submit stopped (the job is {})", current.state)
        } else if launch_sent {
            let reason = format!(
                "its launch was sent but the reply was not understood ({cause}); `belay ps` settles it"
            );
            let _ = self.store.touch(
                &job.id,
                &JobUpdate {
                    reason: Some(reason),
                    ..Default::default()
                },
            );
            "its launch was sent and the reply was not understood (`belay ps` settles it)".into()
        } else {
            let reason = format!("submit failed before launch: {cause}");
            let _ = self.settle(&current, JobState::Failed, &reason, JobUpdate::default());
            "it failed before its launch (nothing was started)".into()
        };
        CoreError::SubmitStopped {
            id: job.id.clone(),
            host: job.host.clone(),
            what,
            source: Box::new(cause),
        }
    }

    /// The remote half of a submit, safe to repeat: used by `submit` and by
    /// reconcile when a submitter died mid-way.
    pub(crate) fn stage_and_launch(&mut self, job: &Job) -> Result<()> {
        self.stage_and_launch_steps(job, &mut false)
    }

    /// [`Self::stage_and_launch`], saying whether the launch script was
    /// sent (`launch_sent`): after that, a lost reply means "may be
    /// running", not "not launched".
    fn stage_and_launch_steps(&mut self, job: &Job, launch_sent: &mut bool) -> Result<()> {
        let result = self.stage_and_launch_inner(job, launch_sent);
        // The secrets' values were needed for this launch only: once it
        // happened, or never will, this process forgets them. (A dropped
        // link keeps them for the next try.)
        if !job.secrets.is_empty()
            && !matches!(&result, Err(CoreError::Transport(e)) if e.is_transient())
        {
            crate::secrets::forget(&job.id);
        }
        result
    }

    fn stage_and_launch_inner(&mut self, job: &Job, launch_sent: &mut bool) -> Result<()> {
        if self.stop_requested() {
            return self.cancel_unlaunched(job);
        }
        let transport = self.transport(&job.host)?;
        let scheduler = self.scheduler(job)?;
        if job.state == JobState::Queued {
            self.store.transition(
                &job.id,
                JobState::Submitting,
                "staging the job directory on the host",
                &JobUpdate::default(),
            )?;
        }

        let command = crate::job::Command::from_argv(job.command.clone());
        let header = scheduler.batch_header(job);
        let run_sh = wrapper::render(&wrapper::WrapperSpec {
            batch_header: header.as_deref(),
            job_id: &job.id,
            command: &command,
            workdir: job.workdir.as_deref(),
            env: &job.env,
            login_shell: job.login_shell,
            heartbeat_secs: HEARTBEAT_SECS,
            run_in_inputs: job.runs_in_inputs(),
            hold_secs: job.hold_secs.unwrap_or(0),
            secrets: &job.secrets,
        });
        let spec_json = serde_json::to_string_pretty(&json!({
            "id": job.id,
            "key": job.key,
            "name": job.name,
            "host": job.host,
            "command": job.command,
            "workdir": job.workdir,
            "env": job.env.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "scheduler": job.scheduler,
            "sbatch": job.sbatch,
            "inputs": job.inputs,
            "outputs": job.outputs,
            "hold_on_failure": job.hold_secs,
            "secrets": job.secrets,
            "created_at": job.created_at,
            "belay_version": env!("CARGO_PKG_VERSION"),
        }))
        .expect("spec serialises");
        let workdir_word = if job.runs_in_inputs() {
            "\"$belay_jd/inputs\"".to_string()
        } else {
            wrapper::workdir_word(job.workdir.as_deref())
        };
        failpoint::pause("pause-before-stage", std::time::Duration::from_secs(1));
        // With no inputs to copy in between, staging and the launch are one
        // script: one round trip. Checked first, as between the two steps:
        // the user's Ctrl-C and a cancel recorded by another command.
        // (Test builds keep the steps apart when a failpoint stops between
        // them.)
        // Secrets go between the two, on a stream of their own.
        let fold = job.inputs.is_empty()
            && job.secrets.is_empty()
            && !failpoint::armed().is_some_and(|p| p == "after-stage" || p == "stage-fails-hard");
        if fold {
            self.may_launch(job)?;
        }
        let marker = crate::job::id::random_hex(8)?;
        let out = if fold {
            *launch_sent = true;
            transport.run_script(&scripts::stage_and_launch(
                &transport.workroot(),
                &job.key,
                &spec_json,
                &run_sh,
                &workdir_word,
                &marker,
                &*scheduler,
                &job.id,
            ))?
        } else {
            transport.run_script(&scripts::stage(
                &transport.workroot(),
                &job.key,
                &spec_json,
                &run_sh,
                &workdir_word,
                !job.inputs.is_empty(),
                &marker,
            ))?
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let (text, launched) = match text.split_once(&format!("\n{}\n", scripts::LAUNCH_MARK)) {
            Some((staged, launched)) => (staged.to_string(), Some(launched.to_string())),
            None => (text.into_owned(), None),
        };
        let dir = text
            .lines()
            .find_map(|l| l.strip_prefix("dir="))
            .map(str::to_string);
        let Some(dir) = dir.filter(|_| out.status == 0) else {
            // Not a dropped link (that is an Err above, retried later): the
            // host refuses the directory (a bad workroot, a full quota).
            // Retrying cannot help, so the job ends here with the cause.
            let err = protocol_error(
                &*transport,
                "staging the job directory failed",
                &out.stderr_text(),
            );
            let current = self.store.get(&job.id)?;
            self.settle(
                &current,
                JobState::Failed,
                &err.to_string(),
                JobUpdate::default(),
            )?;
            return Err(err);
        };
        self.store.touch(
            &job.id,
            &JobUpdate {
                remote_dir: Some(dir.clone()),
                ..Default::default()
            },
        )?;
        if let Some(marker) = text
            .lines()
            .find_map(|l| l.strip_prefix("workroot_id="))
            .filter(|m| !m.is_empty())
        {
            self.store.set_workroot_id(&job.id, marker)?;
        }
        if text.lines().any(|l| l == "workdir=missing") {
            // Checked before recording; gone since (a race): a failure.
            let reason = missing_workdir(job.workdir.as_deref(), &job.host);
            let current = self.store.get(&job.id)?;
            self.settle(&current, JobState::Failed, &reason, JobUpdate::default())?;
            return Err(CoreError::Protocol {
                host: job.host.clone(),
                message: reason,
            });
        }
        if let Some(launched) = launched {
            return self.launched(job, &*transport, &launched, &out.stderr_text());
        }
        let locked = text.lines().any(|l| l == "locked");
        if !job.secrets.is_empty() && !locked && crate::secrets::get(&job.id).is_none() {
            // Restaged by a process that never had the values (the one
            // that did crashed): the job must not run without them.
            let reason = crate::secrets::lost_reason(&job.secrets[0]);
            // A secret file the crashed submit left on the host goes too
            // (best effort: the job fails either way).
            let _ = transport.run_script(&remove_secrets_in(&dir));
            let current = self.store.get(&job.id)?;
            self.settle(&current, JobState::Failed, &reason, JobUpdate::default())?;
            return Err(CoreError::Protocol {
                host: job.host.clone(),
                message: format!("job {}: {reason}", job.id),
            });
        }
        failpoint::hit("after-stage");
        if failpoint::hit_soft("stage-fails-hard") {
            // As if the host refused the next step for good.
            return Err(CoreError::Protocol {
                host: job.host.clone(),
                message: "failpoint stage-fails-hard".into(),
            });
        }
        self.copy_inputs(&*transport, job, &dir)?;
        self.may_launch(job)?;
        if !job.secrets.is_empty() && !locked {
            self.send_secrets(&*transport, job, &dir)?;
        }

        *launch_sent = true;
        let out = transport.run_script(&scripts::launch(
            &*scheduler,
            &job.id,
            &crate::shell::quote(&dir),
        ))?;
        self.launched(
            job,
            &*transport,
            &String::from_utf8_lossy(&out.stdout),
            &out.stderr_text(),
        )
    }

    /// What the launch script said (`R …` and the job's report), recorded.
    fn launched(
        &mut self,
        job: &Job,
        transport: &dyn Transport,
        stdout: &str,
        stderr: &str,
    ) -> Result<()> {
        failpoint::hit("after-launch");
        if failpoint::hit_soft("launch-reply-lost") {
            // As if the link dropped right after the launch ran.
            return Err(CoreError::Transport(
                crate::transport::TransportError::NotResponding {
                    host: job.host.clone(),
                    message: "failpoint launch-reply-lost".into(),
                },
            ));
        }
        let report = HostReport::parse(stdout);
        if let Some(why) = report
            .tagged("R")
            .and_then(|r| r.strip_prefix("unsupported "))
        {
            let reason = format!("cannot launch on {}: {why}", job.host);
            let current = self.store.get(&job.id)?;
            self.settle(&current, JobState::Failed, &reason, JobUpdate::default())?;
            if job.scheduler != "direct" {
                // A host configured for a scheduler it lacks: the
                // configuration (or --scheduler) is what is wrong.
                return Err(CoreError::BadInput(format!(
                    "host {}: {why} (job {} failed)",
                    job.host, job.id
                )));
            }
            return Err(CoreError::Protocol {
                host: job.host.clone(),
                message: why.to_string(),
            });
        }
        if let Some(why) = report.tagged("R").and_then(|r| r.strip_prefix("refused ")) {
            // The scheduler refused the job (a bad partition, a bad time
            // limit): nothing was submitted; the job failed with its word.
            if let Some(jr) = report.jobs.get(&job.id) {
                let current = self.store.get(&job.id)?;
                self.apply_report(&current, jr)?;
            }
            // Slurm does not always repeat the value it refused
            // ("Invalid --time specification"): the options are named.
            let options = if job.sbatch.is_empty() {
                String::new()
            } else {
                format!(" [its options: {}]", job.sbatch.join(" "))
            };
            return Err(CoreError::BadInput(format!(
                "Slurm refused job {} (it failed; nothing was submitted): {}{options}",
                job.id,
                why.trim()
            )));
        }
        if let Some(note) = report.tagged("R").and_then(|r| r.strip_prefix("unsure ")) {
            // No answer from the scheduler and no job with our token: the
            // next look adopts it if it shows up, else it is lost.
            self.store.touch(
                &job.id,
                &JobUpdate {
                    reason: Some(format!(
                        "its submission is unconfirmed ({}); belay looks for it by its token",
                        note.trim()
                    )),
                    ..Default::default()
                },
            )?;
        }
        match report.jobs.get(&job.id) {
            Some(jr) => {
                let current = self.store.get(&job.id)?;
                self.apply_report(&current, jr)?;
                Ok(())
            }
            None => Err(protocol_error(
                transport,
                "launching the job gave no report",
                stderr,
            )),
        }
    }
}

impl Engine {
    /// Just before a launch is sent: the user's Ctrl-C, or a cancel
    /// recorded meanwhile by another command (one that could not reach the
    /// host, the user's last word), ends the job unlaunched.
    fn may_launch(&mut self, job: &Job) -> Result<()> {
        if self.stop_requested() {
            return self.cancel_unlaunched(job);
        }
        if self.store.cancel_recorded(&job.id)? {
            return self.settle_cancelled_unlaunched(job);
        }
        Ok(())
    }

    /// The user stopped a submit before its launch: the job is recorded
    /// cancelled (so no later reconcile launches it) and the submit ends.
    fn cancel_unlaunched(&mut self, job: &Job) -> Result<()> {
        self.settle_unlaunched(job, "interrupted (Ctrl-C) before it was launched")?;
        Err(CoreError::SubmitInterrupted {
            id: Some(job.id.clone()),
        })
    }

    /// Carries out a recorded cancel of a job that was never launched: it
    /// ends `cancelled` here and nothing is left for the host to do.
    fn settle_cancelled_unlaunched(&mut self, job: &Job) -> Result<()> {
        self.settle_unlaunched(job, "cancelled (belay cancel) before it was launched")?;
        self.store
            .clear_cancels_pending(&job.host, &[job.id.as_str()])?;
        Err(CoreError::SubmitCancelled { id: job.id.clone() })
    }

    /// Records a job that never reached its launch as `cancelled`, unless
    /// something settled it already.
    fn settle_unlaunched(&mut self, job: &Job, reason: &str) -> Result<()> {
        let current = self.store.get(&job.id)?;
        if matches!(current.state, JobState::Queued | JobState::Submitting) {
            self.settle(&current, JobState::Cancelled, reason, JobUpdate::default())?;
        }
        Ok(())
    }

    /// Writes the job's secret values to the host through a stream's stdin
    /// (never a command line): see [`crate::secrets::store_script`].
    fn send_secrets(&mut self, transport: &dyn Transport, job: &Job, dir: &str) -> Result<()> {
        let Some(values) = crate::secrets::get(&job.id) else {
            return Ok(());
        };
        let script = crate::secrets::store_script(
            &crate::shell::quote(dir),
            &job.key,
            job.scheduler != "direct",
        );
        let mut stream = transport.open_stream(&script)?;
        stream.write_all(crate::secrets::file_content(&values).as_bytes())?;
        stream.close_input()?;
        let mut said = Vec::new();
        while let Some(piece) = stream.read_chunk()? {
            said.extend_from_slice(&piece);
        }
        let out = stream.finish()?;
        let said = String::from_utf8_lossy(&said);
        if out.status != 0 || !said.lines().any(|l| l == "stored" || l == "locked") {
            let err = protocol_error(
                transport,
                "storing the job's secrets on the host failed",
                &out.stderr_text(),
            );
            // (Best effort: whatever part of it was written goes.)
            let _ = transport.run_script(&remove_secrets_in(dir));
            let current = self.store.get(&job.id)?;
            self.settle(
                &current,
                JobState::Failed,
                &err.to_string(),
                JobUpdate::default(),
            )?;
            return Err(err);
        }
        failpoint::hit("after-secrets");
        Ok(())
    }

    /// Copies the job's inputs into `DIR/inputs/` — resumable and
    /// idempotent like every submit step (complete files are skipped), so
    /// a submit resumed after a crash just finishes the copy. An input that
    /// has vanished locally fails the job with the path named.
    fn copy_inputs(&mut self, transport: &dyn Transport, job: &Job, dir: &str) -> Result<()> {
        if job.inputs.is_empty() || self.store.get(&job.id)?.state != JobState::Submitting {
            return Ok(());
        }
        for input in &job.inputs {
            if self.stop_requested() {
                return self.cancel_unlaunched(job);
            }
            let target = format!("{dir}/inputs/{}", input.name);
            if let Some((parent, _)) = input.name.rsplit_once('/') {
                let out = transport.run_script(&format!(
                    "mkdir -p -- {}",
                    crate::shell::quote(&format!("{dir}/inputs/{parent}"))
                ))?;
                if out.status != 0 {
                    return Err(protocol_error(
                        transport,
                        "creating the inputs directory failed",
                        &out.stderr_text(),
                    ));
                }
            }
            let mut quiet = crate::transfer::Quiet;
            let progress: &mut dyn crate::transfer::Progress = match self.progress.as_mut() {
                Some(p) => p.as_mut(),
                None => &mut quiet,
            };
            match crate::transfer::push_exact(
                transport,
                std::path::Path::new(&input.local),
                &target,
                progress,
            ) {
                Ok(_) => {}
                Err(CoreError::Transport(e)) => return Err(CoreError::Transport(e)),
                Err(e) => {
                    let reason = format!("copying input '{}' failed: {e}", input.local);
                    let current = self.store.get(&job.id)?;
                    self.settle(&current, JobState::Failed, &reason, JobUpdate::default())?;
                    return Err(e);
                }
            }
        }
        failpoint::hit("after-inputs");
        Ok(())
    }
}

/// A script removing the secret file of the job in `dir`, if any.
fn remove_secrets_in(dir: &str) -> String {
    format!(
        "cd {} 2>/dev/null && {{\n{}}}",
        crate::shell::quote(dir),
        crate::secrets::REMOVE_LINES
    )
}

fn missing_workdir(workdir: Option<&str>, host: &str) -> String {
    format!(
        "working directory '{}' does not exist on {host}",
        workdir.unwrap_or("~")
    )
}

fn protocol_error(transport: &dyn Transport, what: &str, stderr: &str) -> CoreError {
    CoreError::Protocol {
        host: transport.host().to_string(),
        message: if stderr.is_empty() {
            what.to_string()
        } else {
            format!("{what}: {stderr}")
        },
    }
}
