//! `belay wait`: block until the job ends; exit with its code.

use anyhow::Result;
use belay_core::home::BelayHome;

use super::{finish, open_existing, warn_problems};
use crate::cli::JobArg;
use crate::follow;

pub fn wait(home: &BelayHome, a: JobArg) -> Result<u8> {
    let mut engine = open_existing(home, &a.job)?;
    let (job, problems) = engine.job(&a.job)?;
    warn_problems(&problems);
    Ok(finish(follow::wait(&mut engine, job)?))
}
