//! `belay cancel`: stop jobs and everything they started. All references are
//! resolved before anything is stopped, so a typo stops nothing.

use anyhow::Result;
use belay_core::job::JobState;

use super::Ctx;
use crate::cli::CancelArgs;

pub fn cancel(ctx: &Ctx, a: CancelArgs) -> Result<u8> {
    let mut engine = ctx.existing_engine(&a.jobs[0])?;
    let jobs = a
        .jobs
        .iter()
        .map(|r| engine.store().resolve(r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut status = 0;
    // One script per host for all the live ones.
    let live: Vec<_> = jobs.iter().filter(|j| j.state.is_live()).cloned().collect();
    let mut outcomes = engine.cancel_many(&live, a.grace).into_iter();
    for job in jobs {
        if !job.state.is_live() {
            println!("{}: already {}", job.id, job.state);
            continue;
        }
        match outcomes.next().expect("one outcome per live job") {
            Ok(after) if matches!(after.state, JobState::Pending | JobState::Submitting) => {
                // Its wrapper has not started yet; when it does, it finds
                // the cancel and exits without running the command.
                println!("{}: cancel recorded; it will not start", after.id);
            }
            Ok(after) if after.state.is_live() => {
                eprintln!(
                    "belay: {}: still {} after cancel{}",
                    after.id,
                    after.state,
                    after.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                );
                status = 1;
            }
            Ok(after) => println!("{}: {}", after.id, after.state),
            Err(e) => {
                let e = belay_ssh::terminal_safe(&e.to_string());
                eprintln!("belay: cancelling {}: {e}", job.id);
                status = 1;
            }
        }
    }
    Ok(status)
}
