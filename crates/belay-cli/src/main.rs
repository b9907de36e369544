//! `belay`: run and track jobs on remote machines over SSH.
//!
//! This crate is the edge: argument parsing, human and JSON output, exit
//! statuses. All job logic lives in belay-core. Exit status 2 means bad
//! input (one line naming the bad value); 1 means a failure, with its real
//! cause; `run` and `wait` otherwise exit with the job's own code.

mod cli;
mod commands;
mod follow;
mod interrupt;
mod progress;
mod prompt;
mod render;

use std::process::ExitCode;

use belay_core::CoreError;
use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // Core errors carry their cause in their message already.
            eprintln!("belay: {err}");
            let bad_input = err
                .downcast_ref::<CoreError>()
                .is_some_and(CoreError::is_bad_input)
                || err.downcast_ref::<commands::UsageError>().is_some();
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}
