//! `belay fetch`: copy a job's declared outputs (`run --output`) to this
//! machine, each as `DIR/<its name>` — resumable and verified like `pull`.
//! An attached `belay run` calls the same code when its job ends.

use std::path::{Path, PathBuf};

use anyhow::Result;
use belay_core::engine::Engine;
use belay_core::job::Job;
use belay_core::transfer::{self, Summary};
use serde::Serialize;

use super::Ctx;
use crate::cli::FetchArgs;
use crate::progress::TransferBar;

/// Where outputs go unless `--to` says otherwise.
pub fn default_dir(ctx: &Ctx, job_id: &str) -> PathBuf {
    ctx.home.root().join("results").join(job_id)
}

#[derive(Serialize)]
struct OutputView {
    path: String,
    local: Option<String>,
    found: bool,
}

pub struct FetchReport {
    outputs: Vec<OutputView>,
    /// Problems that make `fetch` exit 1: outputs not found, remote
    /// entries refused.
    pub missing: Vec<String>,
    total: Summary,
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
    let to = a.to.clone().unwrap_or_else(|| default_dir(ctx, &job.id));
    let report = fetch_outputs(&mut engine, &job, &to)?;
    for m in &report.missing {
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
        let t = &report.total;
        println!(
            "{}",
            serde_json::to_string_pretty(&View {
                job: &job.id,
                to: to.display().to_string(),
                outputs: &report.outputs,
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
    Ok(if report.missing.is_empty() { 0 } else { 1 })
}

/// Pulls every declared output of `job` into `to` (created if needed).
/// Missing outputs are reported, not fatal; any other failure is.
pub fn fetch_outputs(engine: &mut Engine, job: &Job, to: &Path) -> Result<FetchReport> {
    std::fs::create_dir_all(to)
        .map_err(|e| anyhow::anyhow!("cannot create '{}': {e}", to.display()))?;
    let t = engine.hosts().get(&job.host)?;
    let mut report = FetchReport {
        outputs: Vec::new(),
        missing: Vec::new(),
        total: Summary::default(),
    };
    for output in &job.outputs {
        let remote = job.output_path(output);
        let mut bar = TransferBar::new(&format!("fetch {output}"));
        match transfer::pull(t.as_ref(), &remote, to, transfer::Via::Auto, &mut bar) {
            Ok(s) => {
                if let Some(line) = super::transfer::refused_line(&s) {
                    report.missing.push(format!("output '{output}': {line}"));
                }
                let total = &mut report.total;
                total.files += s.files;
                total.files_transferred += s.files_transferred;
                total.files_skipped += s.files_skipped;
                total.bytes += s.bytes;
                total.bytes_sent += s.bytes_sent;
                total.bytes_resumed += s.bytes_resumed;
                report.outputs.push(OutputView {
                    path: output.clone(),
                    local: Some(s.destination.clone()),
                    found: true,
                });
            }
            Err(e @ belay_core::CoreError::BadInput(_)) => {
                report
                    .missing
                    .push(format!("output '{output}' not found on {} ({e})", job.host));
                report.outputs.push(OutputView {
                    path: output.clone(),
                    local: None,
                    found: false,
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}
