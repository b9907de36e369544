//! `belay`: run and track jobs on remote machines over SSH.
//!
//! This crate is the edge: argument parsing, human and JSON output, exit
//! statuses. All job logic lives in belay-core. Exit status 2 means bad
//! input (one line naming the bad value); 1 means a failure, with its real
//! cause; `run` and `wait` otherwise exit with the job's own code.

mod cli;
mod closed_output;
mod commands;
mod daemon;
mod follow;
mod interrupt;
mod logging;
mod progress;
mod prompt;
mod render;
mod secrets;
mod terminal;

use std::process::ExitCode;

use belay_core::CoreError;
use clap::Parser;
use clap::error::ErrorKind;

fn main() -> ExitCode {
    closed_output::install_panic_hook();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // The daemon logs what it does (to serve.log when in the background):
    // it has no terminal to report to otherwise.
    let verbose = match cli.command {
        cli::Command::Serve(_) => cli.verbose.max(1),
        _ => cli.verbose,
    };
    if let Err(line) = logging::init(verbose) {
        eprintln!("belay: {line}");
        return ExitCode::from(2);
    }
    match commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) if closed_output::is_closed_stdout(&err) => ExitCode::from(closed_output::STATUS),
        Err(err) => {
            // Core errors carry their cause in their message already. Parts
            // of it may come from the host (its stderr, its messages): no
            // terminal control sequence of theirs reaches the terminal.
            // A connection failure ends with "run `belay doctor HOST`"; a
            // secret's value this process knows is never printed.
            let message = match err.downcast_ref::<CoreError>() {
                Some(core) => core.message(),
                None => err.to_string(),
            };
            eprintln!(
                "belay: {}",
                secrets::mask_text(&belay_ssh::terminal_safe(&message))
            );
            // Ctrl-C that stopped a submit before its launch: the shell's
            // convention for "ended by SIGINT".
            if matches!(
                err.downcast_ref::<CoreError>(),
                Some(CoreError::SubmitInterrupted { .. })
            ) {
                return ExitCode::from(130);
            }
            // Through the daemon: the status the engine's error would have
            // given, as the daemon says.
            if let Some(belay_server::ClientError::Api { exit, .. }) =
                err.downcast_ref::<belay_server::ClientError>()
            {
                return ExitCode::from(*exit);
            }
            let bad_input = err
                .downcast_ref::<CoreError>()
                .is_some_and(CoreError::is_bad_input)
                || err.downcast_ref::<commands::UsageError>().is_some();
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}

/// Help and version go out as clap prints them; a bad command line is one
/// line naming what is wrong (clap's words without its hint lines), exit 2.
fn usage_error(e: clap::Error) -> ExitCode {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.render().to_string();
    let words: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect();
    let line = words.join(" ");
    eprintln!(
        "belay: {} (see --help)",
        line.strip_prefix("error: ").unwrap_or(&line)
    );
    ExitCode::from(2)
}
