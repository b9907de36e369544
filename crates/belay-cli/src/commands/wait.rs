//! `belay wait`: block until the job ends; exit with its code.

use anyhow::Result;

use super::{Ctx, finish, warn_problems};
use crate::cli::JobArg;
use crate::follow;

pub fn wait(ctx: &Ctx, a: JobArg) -> Result<u8> {
    if let Some(client) = ctx.daemon(ctx.home.store_exists()) {
        let (job, _, problems) = crate::daemon::job(client, &a.job)?;
        warn_problems(&problems);
        return Ok(finish(crate::daemon::wait(client, job)?));
    }
    let mut engine = ctx.existing_engine(&a.job)?;
    let (job, problems) = engine.job(&a.job)?;
    warn_problems(&problems);
    Ok(finish(follow::wait(&mut engine, job)?))
}
