//! `belay cancel`: stop jobs and everything they started. All references are
//! resolved before anything is stopped, so a typo stops nothing.

use anyhow::Result;
use belay_core::job::{Job, JobState};

use super::Ctx;
use crate::cli::CancelArgs;
use crate::daemon::{self, CancelResult};

pub fn cancel(ctx: &Ctx, a: CancelArgs) -> Result<u8> {
    let results = match ctx.daemon(ctx.home.store_exists()) {
        Some(client) => daemon::cancel(client, &a.jobs, a.grace)?,
        None => direct(ctx, &a)?,
    };
    let mut status = 0;
    for (job, result) in results {
        match result {
            CancelResult::Already => println!("{}: already {}", job.id, job.state),
            CancelResult::After(after)
                if matches!(after.state, JobState::Pending | JobState::Submitting) =>
            {
                // Its wrapper has not started yet; when it does, it finds
                // the cancel and exits without running the command.
                println!("{}: cancel recorded; it will not start", after.id);
            }
            CancelResult::After(after) if after.state.is_live() => {
                eprintln!(
                    "belay: {}: still {} after cancel{}",
                    after.id,
                    after.state,
                    after.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                );
                status = 1;
            }
            CancelResult::After(after) => println!("{}: {}", after.id, after.state),
            CancelResult::Failed(e) => {
                let e = belay_ssh::terminal_safe(&e);
                eprintln!("belay: cancelling {}: {e}", job.id);
                status = 1;
            }
        }
    }
    Ok(status)
}

fn direct(ctx: &Ctx, a: &CancelArgs) -> Result<Vec<(Job, CancelResult)>> {
    let mut engine = ctx.existing_engine(&a.jobs[0])?;
    Ok(engine
        .cancel_references(&a.jobs, a.grace)?
        .into_iter()
        .map(|(job, outcome)| {
            let result = match outcome {
                None => CancelResult::Already,
                Some(Ok(after)) => CancelResult::After(Box::new(after)),
                Some(Err(e)) => CancelResult::Failed(e.to_string()),
            };
            (job, result)
        })
        .collect())
}
