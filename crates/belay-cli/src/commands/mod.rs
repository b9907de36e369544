//! One module per command; `dispatch` opens the engine and routes.

mod advance;
mod app;
mod cancel;
mod completions;
mod doctor;
mod exec;
mod fetch;
mod forward;
mod host;
mod logs;
mod ps;
mod release;
mod run;
mod serve;
mod shell;
mod show;
mod token;
mod transfer;
mod wait;

use anyhow::Result;
use belay_core::engine::{Engine, HostProblem};
use belay_core::home::BelayHome;
use belay_core::hosts::HostsOptions;
use belay_core::job::Job;

use crate::cli::{Cli, Command};
use crate::follow::Outcome;

/// Bad usage detected at the CLI edge (exit status 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// What every command needs: where state lives and how to reach hosts.
pub struct Ctx {
    pub home: BelayHome,
    pub hosts: HostsOptions,
    /// `--no-daemon` / `BELAY_NO_DAEMON=1`: never use or start a daemon.
    pub no_daemon: bool,
    daemon: std::cell::OnceCell<Option<belay_server::Client>>,
}

impl Ctx {
    pub fn engine(&self) -> Result<Engine> {
        Ok(Engine::open(&self.home, self.hosts.clone())?)
    }

    /// The daemon for this BELAY_HOME, started if none answers and `start`
    /// (commands that only read jobs do not start one to say there are
    /// none). `None`: work directly, as without a daemon.
    pub fn daemon(&self, start: bool) -> Option<&belay_server::Client> {
        if self.no_daemon {
            return None;
        }
        self.daemon
            .get_or_init(|| {
                belay_server::autostart::connect(
                    &self.home,
                    start,
                    belay_ssh::config_file_from_env(self.hosts.ssh_config.as_deref()),
                )
            })
            .as_ref()
    }

    /// Open the engine for a command that only reads jobs: with no store
    /// yet, every job reference is unknown, and no state is created to say so.
    pub fn existing_engine(&self, reference: &str) -> Result<Engine> {
        if !self.home.store_exists() {
            return Err(belay_core::CoreError::UnknownJob(reference.to_string()).into());
        }
        self.engine()
    }
}

pub fn dispatch(cli: Cli) -> Result<u8> {
    // Needs no state: works before BELAY_HOME exists or when it is unusable.
    if let Command::Completions { shell } = cli.command {
        return completions::completions(shell);
    }
    let no_daemon = cli.no_daemon
        || std::env::var_os("BELAY_NO_DAEMON").is_some_and(|v| !v.is_empty() && v != "0");
    let ctx = Ctx {
        home: BelayHome::from_env()?,
        hosts: HostsOptions {
            ssh_config: cli.ssh_config,
            prompter: Some(std::sync::Arc::new(crate::prompt::TtyPrompter)),
            prompter_for: None,
            reconnect: None,
            agent_socket: None,
        },
        no_daemon,
        daemon: std::cell::OnceCell::new(),
    };
    match cli.command {
        Command::Run(a) => run::run(&ctx, *a),
        Command::Exec(a) => exec::exec(&ctx, a),
        Command::Ps(a) => ps::ps(&ctx, a),
        Command::Show(a) => show::show(&ctx, a),
        Command::Logs(a) => logs::logs(&ctx, a),
        Command::Wait(a) => wait::wait(&ctx, a),
        Command::Cancel(a) => cancel::cancel(&ctx, a),
        Command::Release(a) => release::release(&ctx, a),
        Command::Push(a) => transfer::push(&ctx, a),
        Command::Pull(a) => transfer::pull(&ctx, a),
        Command::Doctor(a) => doctor::doctor(&ctx, a),
        Command::Fetch(a) => fetch::fetch(&ctx, a),
        Command::Forward(a) => forward::forward(&ctx, a),
        Command::Host(c) => host::host(&ctx, c),
        Command::App(c) => app::app(&ctx, c),
        Command::Serve(a) => serve::serve(&ctx, a),
        Command::Token(c) => token::token(&ctx, c),
        Command::Shell(a) => shell::shell(&ctx, a),
        Command::Advance { json } => advance::advance(&ctx, json),
        Command::Completions { shell } => completions::completions(shell),
    }
}

fn warn_problems(problems: &[HostProblem]) {
    for p in problems {
        // The error may quote the host: no control sequence of its own.
        let error = belay_ssh::terminal_safe(&p.error);
        if p.job.is_some() {
            eprintln!("belay: warning: {error}");
        } else {
            eprintln!("belay: warning: {error} (showing its jobs' last known state)");
        }
    }
}

/// Exit status for a job that ended (the job's own code), or after the user
/// detached (130, with how to come back).
fn finish(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Ended(job) => {
            if let (belay_core::job::JobState::Lost, Some(reason)) = (job.state, &job.reason) {
                eprintln!("belay: job {} was lost: {reason}", job.id);
            }
            if job.state == belay_core::job::JobState::Held {
                eprintln!("belay: {}", crate::render::held_line(&job));
            }
            exit_byte(&job)
        }
        Outcome::Detached(job) => {
            eprintln!(
                "\nbelay: detached; job {id} keeps running on {host}. Re-attach with `belay logs -f {id}`, or `belay wait {id}`.",
                id = job.id,
                host = job.host
            );
            130
        }
    }
}

fn exit_byte(job: &Job) -> u8 {
    let code = job.exit_status().unwrap_or(1);
    u8::try_from(code.clamp(0, 255)).unwrap_or(1)
}
