//! `belay fetch`: copy a job's declared outputs (`run --output`) to this
//! machine, each at its path under DIR (an absolute output by its name) —
//! resumable and verified like `pull`. The copying is the engine's
//! (`Engine::fetch_outputs`); this renders it. An attached `belay run`
//! calls the same code when its job ends. With a daemon, the daemon copies
//! (its pooled connection; progress and prompts come back as JSON lines)
//! and the same lines, `--json` and exit status come out here.

use std::path::{Path, PathBuf};

use anyhow::Result;
use belay_core::engine::Engine;
use belay_core::engine::fetch::FetchReport;
use belay_core::job::Job;

use super::Ctx;
use crate::cli::FetchArgs;
use crate::daemon;
use crate::progress::TransferBar;

/// Where outputs go unless `--to` says otherwise.
pub fn default_dir(ctx: &Ctx, job_id: &str) -> PathBuf {
    ctx.home.results_dir(job_id)
}

/// The progress bar of one output being fetched.
pub fn bar(output: &str) -> Box<dyn belay_core::transfer::Progress> {
    Box::new(TransferBar::new(&format!("fetch {output}")))
}

/// Fetches `job`'s outputs with a progress bar per output, into `to`, or
/// by default into their own place (recorded there, so that they are not
/// copied again; `again`: even if they were). Returns where they went, the
/// report (`None`: fetched already) and the lines that make `fetch` exit 1
/// (outputs not found, remote entries refused).
pub fn fetch_outputs(
    ctx: &Ctx,
    engine: &mut Engine,
    job: &Job,
    to: Option<&Path>,
    again: bool,
) -> Result<(PathBuf, Option<FetchReport>)> {
    let mut bar = bar;
    Ok(match to {
        Some(to) => (
            to.to_path_buf(),
            Some(engine.fetch_outputs(job, to, &mut bar)?),
        ),
        None => (
            default_dir(ctx, &job.id),
            engine.fetch_outputs_home(&ctx.home, job, again, &mut bar)?,
        ),
    })
}

/// What a `belay fetch` came to, whoever copied.
struct Done {
    job: String,
    to: PathBuf,
    problems: Vec<String>,
    /// `--json`'s document ([`FetchReport::json`]).
    report: serde_json::Value,
}

pub fn fetch(ctx: &Ctx, a: FetchArgs) -> Result<u8> {
    let done = match ctx.daemon(ctx.home.store_exists()) {
        Some(client) => through_daemon(client, &a)?,
        None => direct(ctx, &a)?,
    };
    for m in &done.problems {
        eprintln!("belay: {}", belay_ssh::terminal_safe(m));
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&done.report)?);
    } else if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!("belay: outputs of {} in {}", done.job, done.to.display());
    }
    Ok(if done.problems.is_empty() { 0 } else { 1 })
}

/// The daemon copies (as this user: the socket checks the peer's uid), so
/// `--to` goes to it as an absolute path.
fn through_daemon(client: &belay_server::Client, a: &FetchArgs) -> Result<Done> {
    let to = match &a.to {
        Some(to) => Some(
            std::path::absolute(to)
                .map_err(|e| super::UsageError(format!("bad --to '{}': {e}", to.display())))?,
        ),
        None => None,
    };
    let mut fetched = daemon::fetch_outputs(client, &a.job, true, to.as_deref(), &mut bar)?;
    super::warn_problems(&fetched.warnings());
    let report = fetched.report.ok_or_else(|| {
        anyhow::anyhow!("the belay daemon did not copy the outputs it was asked to")
    })?;
    let job = report["job"].as_str().unwrap_or(&a.job).to_string();
    Ok(Done {
        job,
        to: fetched.dir,
        problems: fetched.problems,
        report,
    })
}

fn direct(ctx: &Ctx, a: &FetchArgs) -> Result<Done> {
    let mut engine = ctx.existing_engine(&a.job)?;
    let (job, problems) = engine.job(&a.job)?;
    super::warn_problems(&problems);
    if job.outputs.is_empty() {
        return Err(super::UsageError(format!(
            "job {} declared no outputs (use `belay run --output PATH`; `belay pull` copies any path)",
            job.id
        ))
        .into());
    }
    if job.remote_dir.is_none() {
        anyhow::bail!("job {} has not been staged on {} yet", job.id, job.host);
    }
    let (to, report) = fetch_outputs(ctx, &mut engine, &job, a.to.as_deref(), true)?;
    let report: FetchReport = report.expect("fetched again when asked");
    Ok(Done {
        problems: report.problems(&job.host),
        report: report.json(&job.id, &to),
        job: job.id,
        to,
    })
}
