//! `belay release`: end a job's debug hold (`run --hold-on-failure`). The
//! work is the engine's (`Engine::release`); this renders the outcome.

use anyhow::Result;
use belay_core::job::JobState;

use super::Ctx;
use crate::cli::ReleaseArgs;
use crate::{daemon, render};

pub fn release(ctx: &Ctx, a: ReleaseArgs) -> Result<u8> {
    let job = match ctx.daemon(ctx.home.store_exists()) {
        Some(client) => daemon::release(client, &a.job)?,
        None => ctx.existing_engine(&a.job)?.release(&a.job)?,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&render::job_view(&job))?);
    } else if job.state == JobState::Held {
        // The `release` file is there; the wrapper records the end soon.
        println!(
            "{}: released; {} has not recorded its end yet (`belay wait {}`)",
            job.id, job.host, job.id
        );
    } else {
        println!(
            "{}: {}{}",
            job.id,
            job.state,
            job.exit_code
                .map(|c| format!(" (exit code {c})"))
                .unwrap_or_default()
        );
    }
    Ok(0)
}
