//! `belay run`: submit a job, then stream it (or, with -d, print its id).

use anyhow::Result;
use belay_core::CoreError;
use belay_core::engine::{Engine, SubmitOptions};
use belay_core::job::spec::{check_inputs, check_outputs};
use belay_core::job::{Input, Job, JobSpec, JobState};

use super::{Ctx, finish};
use crate::cli::RunArgs;
use crate::daemon::{self, Submitted};
use crate::follow::{self, Outcome, Streams};
use crate::progress::TransferBar;
use crate::render;

pub fn run(ctx: &Ctx, a: RunArgs) -> Result<u8> {
    let mut workdir = a.workdir.clone();
    // With inputs and no --workdir the job runs in its inputs directory.
    if a.host == "local" && (workdir.is_some() || a.inputs.is_empty()) {
        // On the embedded host a job runs where you are, like any command.
        let cwd = std::env::current_dir()?;
        workdir = Some(match workdir {
            None => cwd.display().to_string(),
            Some(w) if !w.starts_with('/') && !w.starts_with('~') => {
                cwd.join(w).display().to_string()
            }
            Some(w) => w,
        });
    }
    // Validate everything before the store is even opened.
    let mut spec = JobSpec::new(&a.host, a.name.clone(), a.command.clone(), workdir, &a.env)?;
    spec.login_shell = !a.no_login_shell;
    spec.inputs = a
        .inputs
        .iter()
        .map(|i| Input::parse(i))
        .collect::<Result<_, _>>()?;
    check_inputs(&spec.inputs)?;
    check_outputs(&a.outputs)?;
    spec.outputs = a.outputs.clone();
    let (names, secret_values) = crate::secrets::resolve(&a.secrets)?;
    let spec = spec
        .with_secrets(names)?
        .with_hold(a.hold_on_failure)?
        .with_scheduler(a.scheduler.clone(), a.slurm.resources())?;
    if let Some(client) = ctx.daemon(true) {
        // (A passphrase or second factor the daemon's connection needs is
        // relayed to this terminal: see daemon::submit.)
        return through_daemon(client, &a, &spec, secret_values);
    }
    belay_core::hosts::Hosts::new(&ctx.home, ctx.hosts.clone())?.validate(&spec.host)?;
    let mut engine = ctx.engine()?;
    // Ctrl-C during the submit (an input upload, say) stops it before the
    // launch with the job recorded cancelled, or, once the launch is sent,
    // lets it finish and detaches: never a half-submitted job that a later
    // `ps` would launch behind the user's back. (Until the job is recorded,
    // Ctrl-C ends belay at once: nothing is left behind.)
    engine.set_stop_check(
        Box::new(crate::interrupt::install),
        Box::new(crate::interrupt::requested),
    );
    if !spec.inputs.is_empty() {
        engine.set_transfer_progress(Box::new(TransferBar::new(&format!(
            "inputs → {}",
            spec.host
        ))));
    }
    // Queueing for a host that does not answer is the daemon's (which
    // then starts the job); a direct `run` refuses, as `--no-queue` asks.
    let options = SubmitOptions {
        queue_if_unreachable: a.detach
            && !a.no_queue
            && belay_core::failpoint::queue_in_direct_mode(),
    };
    let job = engine.submit_with_secrets(&spec, options, secret_values)?;
    say_if_queued(&job);
    // (A Ctrl-C that came after the launch was sent: `follow` detaches at
    // once, saying how to re-attach.)
    if a.detach {
        return print_detached(&job, a.json);
    }
    let outcome = follow::follow(
        &mut engine,
        job,
        Streams {
            stdout: true,
            stderr: true,
        },
    )?;
    finish_run(ctx, outcome, engine)
}

/// One line for a job recorded to start when its host answers.
fn say_if_queued(job: &Job) {
    if job.state == JobState::Queued {
        eprintln!(
            "belay: job {} queued: {}",
            job.id,
            belay_ssh::terminal_safe(job.reason.as_deref().unwrap_or("waiting for its host"))
        );
    }
}

/// `run` through the daemon: the submit (input progress drawn here), then
/// the job's output streamed as it is written.
fn through_daemon(
    client: &belay_server::Client,
    a: &RunArgs,
    spec: &JobSpec,
    secrets: Vec<belay_core::secrets::SecretValue>,
) -> Result<u8> {
    // The daemon checks the host name as the engine would (exit 2).
    let mut bar =
        (!spec.inputs.is_empty()).then(|| TransferBar::new(&format!("inputs → {}", spec.host)));
    let job = match daemon::submit(
        client,
        spec,
        &secrets,
        !a.no_queue,
        bar.as_mut()
            .map(|b| b as &mut dyn belay_core::transfer::Progress),
    )? {
        Submitted::Job(job) => job,
        Submitted::Interrupted(Some(job)) if job.state == JobState::Cancelled => {
            return Err(CoreError::SubmitInterrupted { id: Some(job.id) }.into());
        }
        Submitted::Interrupted(Some(job)) => return Ok(finish(Outcome::Detached(job))),
        Submitted::Interrupted(None) => {
            return Err(CoreError::SubmitInterrupted { id: None }.into());
        }
    };
    drop(bar);
    say_if_queued(&job);
    if a.detach {
        return print_detached(&job, a.json);
    }
    let outcome = daemon::follow(
        client,
        job,
        Streams {
            stdout: true,
            stderr: true,
        },
    )?;
    if let Outcome::Ended(job) = &outcome
        && !job.outputs.is_empty()
    {
        // The daemon copies them (once: its own pass may have already).
        match daemon::fetch_outputs(client, &job.id, false, None, &mut super::fetch::bar) {
            Ok(f) => {
                for problem in &f.problems {
                    eprintln!("belay: warning: {}", belay_ssh::terminal_safe(problem));
                }
                let already = if f.copied { "" } else { " (fetched already)" };
                eprintln!(
                    "belay: outputs of {} in {}{already}",
                    job.id,
                    f.dir.display()
                );
            }
            Err(e) => eprintln!(
                "belay: warning: fetching outputs of {} failed: {e:#}",
                job.id
            ),
        }
    }
    Ok(finish(outcome))
}

fn print_detached(job: &Job, json: bool) -> Result<u8> {
    if json {
        println!("{}", serde_json::to_string_pretty(&render::job_view(job))?);
    } else {
        println!("{}", job.id);
    }
    Ok(0)
}

/// An attached run's end: its declared outputs fetched here, its exit
/// status the job's.
fn finish_run(ctx: &Ctx, outcome: Outcome, mut engine: Engine) -> Result<u8> {
    if let Outcome::Ended(job) = &outcome
        && !job.outputs.is_empty()
    {
        match super::fetch::fetch_outputs(ctx, &mut engine, job, None, false) {
            // Copied already (by a daemon's pass, or another command that
            // saw the job end): not a second time.
            Ok((to, None)) => {
                eprintln!(
                    "belay: outputs of {} in {} (fetched already)",
                    job.id,
                    to.display()
                );
            }
            Ok((to, Some(report))) => {
                for missing in &report.problems(&job.host) {
                    eprintln!("belay: warning: {missing}");
                }
                eprintln!("belay: outputs of {} in {}", job.id, to.display());
            }
            Err(e) => eprintln!(
                "belay: warning: fetching outputs of {} failed: {e:#}",
                job.id
            ),
        }
    }
    Ok(finish(outcome))
}
