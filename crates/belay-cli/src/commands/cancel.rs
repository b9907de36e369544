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
    let jobs = a
        .jobs
        .iter()
        .map(|r| engine.store().resolve(r))
        .collect::<Result<Vec<_>, _>>()?;
    // One script per host for all the live ones.
    let live: Vec<_> = jobs.iter().filter(|j| j.state.is_live()).cloned().collect();
    let mut outcomes = engine.cancel_many(&live, a.grace).into_iter();
    Ok(jobs
        .into_iter()
        .map(|job| {
            let result = if !job.state.is_live() {
                CancelResult::Already
            } else {
                match outcomes.next().expect("one outcome per live job") {
                    Ok(after) => CancelResult::After(Box::new(after)),
                    Err(e) => CancelResult::Failed(e.to_string()),
                }
            };
            (job, result)
        })
        .collect())
}
