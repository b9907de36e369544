//! `belay advance` (hidden): one pass of the work no command waits on
//! ([`belay_core::engine::Engine::advance`]) — what the daemon's loop runs —
//! for tests, and for a cron job on a machine without the daemon. Per host
//! it prints what it saw, and when the daemon would look again.

use anyhow::Result;
use belay_core::engine::{HostPass, next_interval};
use serde::Serialize;

use super::Ctx;

#[derive(Serialize)]
struct PassView<'a> {
    host: &'a str,
    answered: bool,
    error: Option<&'a str>,
    live_jobs: usize,
    busy: bool,
    outputs_fetched: &'a [String],
    next_interval_ms: u128,
}

pub fn advance(ctx: &Ctx, json: bool) -> Result<u8> {
    if !ctx.home.store_exists() {
        if json {
            println!("[]");
        }
        return Ok(0);
    }
    let mut engine = ctx.engine()?;
    let passes = engine.advance(&ctx.home)?;
    for p in &passes {
        super::warn_problems(&p.problems);
    }
    fn view(p: &HostPass) -> PassView<'_> {
        PassView {
            host: &p.host,
            answered: p.answered,
            error: p.error.as_deref(),
            live_jobs: p.live_jobs,
            busy: p.busy,
            outputs_fetched: &p.outputs_fetched,
            next_interval_ms: next_interval(p, false).as_millis(),
        }
    }
    if json {
        let views: Vec<PassView<'_>> = passes.iter().map(view).collect();
        println!("{}", serde_json::to_string_pretty(&views)?);
    } else {
        for p in &passes {
            let state = match &p.error {
                None => "answered".to_string(),
                Some(e) => belay_ssh::terminal_safe(e),
            };
            println!(
                "{}: {state}; {} live job(s); outputs fetched: {}",
                p.host,
                p.live_jobs,
                p.outputs_fetched.len()
            );
        }
    }
    Ok(0)
}
