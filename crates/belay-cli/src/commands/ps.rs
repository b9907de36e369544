//! `belay ps`: reconcile live jobs (one probe per host), then list.

use std::io::Write;

use anyhow::Result;
use belay_core::store::JobFilter;
use belay_core::time::now_ms;

use super::{Ctx, warn_problems};
use crate::cli::PsArgs;
use crate::render;

pub fn ps(ctx: &Ctx, a: PsArgs) -> Result<u8> {
    let jobs = if let Some(client) = ctx.daemon(ctx.home.store_exists()) {
        let (jobs, problems) = crate::daemon::list(client, a.all, a.host.as_deref())?;
        warn_problems(&problems);
        jobs
    } else if ctx.home.store_exists() {
        let mut engine = ctx.engine()?;
        let (jobs, problems) = engine.list(&JobFilter {
            all: a.all,
            host: a.host.clone(),
            owner: None,
            page: None,
        })?;
        warn_problems(&problems);
        jobs
    } else {
        Vec::new()
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if a.json {
        let views: Vec<_> = jobs.iter().map(render::job_view).collect();
        serde_json::to_writer_pretty(&mut out, &views)?;
        writeln!(out)?;
    } else {
        out.write_all(render::table(&jobs, now_ms()).as_bytes())?;
    }
    out.flush()?;
    if !a.json {
        // On stderr: the table stays what scripts parse.
        for line in render::stuck_submits(&jobs) {
            eprintln!("belay: {}", belay_ssh::terminal_safe(&line));
        }
    }
    Ok(0)
}
