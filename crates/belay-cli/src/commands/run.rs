//! `belay run`: submit a job, then stream it (or, with -d, print its id).

use anyhow::Result;
use belay_core::job::JobSpec;

use super::{Ctx, finish};
use crate::cli::RunArgs;
use crate::follow::{self, Streams};
use crate::render;

pub fn run(ctx: &Ctx, a: RunArgs) -> Result<u8> {
    let mut workdir = a.workdir.clone();
    if a.host == "local" {
        // On the embedded host a job runs where you are, like any command.
        let cwd = std::env::current_dir()?;
        workdir = Some(match workdir {
            None => cwd.display().to_string(),
            Some(w) if !w.starts_with('/') && !w.starts_with('~') => {
                cwd.join(w).display().to_string()
            }
            Some(w) => w,
        });
    }
    // Validate everything before the store is even opened.
    let mut spec = JobSpec::new(&a.host, a.name.clone(), a.command.clone(), workdir, &a.env)?;
    spec.login_shell = !a.no_login_shell;
    belay_core::hosts::Hosts::new(&ctx.home, ctx.hosts.clone())?.validate(&spec.host)?;
    let mut engine = ctx.engine()?;
    let job = engine.submit(&spec)?;
    if a.detach {
        if a.json {
            println!("{}", serde_json::to_string_pretty(&render::job_view(&job))?);
        } else {
            println!("{}", job.id);
        }
        return Ok(0);
    }
    let outcome = follow::follow(
        &mut engine,
        job,
        Streams {
            stdout: true,
            stderr: true,
        },
    )?;
    Ok(finish(outcome))
}
