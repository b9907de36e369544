//! `belay show`: one job, reconciled, with its event log.

use anyhow::Result;
use belay_core::time::now_ms;

use super::{Ctx, warn_problems};
use crate::cli::ShowArgs;
use crate::render;

pub fn show(ctx: &Ctx, a: ShowArgs) -> Result<u8> {
    let (job, events, problems) = match ctx.daemon(ctx.home.store_exists()) {
        Some(client) => crate::daemon::job(client, &a.job)?,
        None => {
            let mut engine = ctx.existing_engine(&a.job)?;
            let (job, problems) = engine.job(&a.job)?;
            let events = engine.store().events(&job.id)?;
            (job, events, problems)
        }
    };
    warn_problems(&problems);
    if a.json {
        let view = render::job_view_with_events(&job, &events);
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", render::detail(&job, &events, now_ms()));
    }
    Ok(0)
}
