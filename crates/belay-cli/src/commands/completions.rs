//! `belay completions SHELL`: the shell completion script, generated from
//! the clap grammar itself (clap_complete), so it never drifts from the
//! commands. README.md says where each shell wants it.

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionShell};

pub fn completions(shell: CompletionShell) -> Result<u8> {
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    clap_complete::generate(shell, &mut Cli::command(), "belay", &mut std::io::stdout());
    Ok(0)
}
