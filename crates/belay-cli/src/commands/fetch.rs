//! `belay fetch`: copy a job's declared outputs (`run --output`) to this
//! machine, each at its path under DIR (an absolute output by its name) —
//! resumable and verified like `pull`. The copying is the engine's
//! (`Engine::fetch_outputs`); this renders it. An attached `belay run`
//! calls the same code when its job ends.

use std::path::{Path, PathBuf};

use anyhow::Result;
use belay_core::engine::Engine;
use belay_core::engine::fetch::{FetchReport, OutputOutcome};
use belay_core::job::Job;
use serde::Serialize;

use super::Ctx;
use crate::cli::FetchArgs;
use crate::progress::TransferBar;

/// Where outputs go unless `--to` says otherwise.
pub fn default_dir(ctx: &Ctx, job_id: &str) -> PathBuf {
    ctx.home.results_dir(job_id)
}

#[derive(Serialize)]
struct OutputView {
    path: String,
    local: Option<String>,
    found: bool,
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
    let mut bar = |output: &str| -> Box<dyn belay_core::transfer::Progress> {
        Box::new(TransferBar::new(&format!("fetch {output}")))
    };
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

pub fn fetch(ctx: &Ctx, a: FetchArgs) -> Result<u8> {
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
    let report = report.expect("fetched again when asked");
    let missing = report.problems(&job.host);
    for m in &missing {
        eprintln!("belay: {m}");
    }
    if a.json {
        #[derive(Serialize)]
        struct View<'a> {
            job: &'a str,
            to: String,
            outputs: &'a [OutputView],
            files: u64,
            files_transferred: u64,
            files_skipped: u64,
            bytes: u64,
            bytes_sent: u64,
            bytes_resumed: u64,
        }
        let t = &report.total();
        let outputs: Vec<OutputView> = report
            .outputs
            .iter()
            .map(|o| match &o.outcome {
                OutputOutcome::Copied(s) => OutputView {
                    path: o.output.clone(),
                    local: Some(s.destination.clone()),
                    found: true,
                },
                OutputOutcome::NotFound(_) => OutputView {
                    path: o.output.clone(),
                    local: None,
                    found: false,
                },
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&View {
                job: &job.id,
                to: to.display().to_string(),
                outputs: &outputs,
                files: t.files,
                files_transferred: t.files_transferred,
                files_skipped: t.files_skipped,
                bytes: t.bytes,
                bytes_sent: t.bytes_sent,
                bytes_resumed: t.bytes_resumed,
            })?
        );
    } else if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!("belay: outputs of {} in {}", job.id, to.display());
    }
    Ok(if missing.is_empty() { 0 } else { 1 })
}
