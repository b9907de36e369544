//! `belay host check`: connect, time a round trip per hop, and show it.
//! The measuring and the health record are the core's
//! (`Engine::check_host`); this validates names and renders.

use anyhow::{Result, bail};
use belay_core::hosts::Hosts;
use belay_core::hosts::check::HostCheck;
use belay_core::hosts::view::{check_json, ms};

use super::super::{Ctx, UsageError};

pub fn check(ctx: &Ctx, mut names: Vec<String>, all: bool, as_json: bool) -> Result<u8> {
    let hosts = Hosts::new(&ctx.home, ctx.hosts.clone())?;
    if all {
        names = super::known_hosts(ctx, &hosts)?;
    }
    if names.is_empty() {
        bail!(UsageError("name hosts to check, or --all".into()));
    }
    // Bad names are bad input: refused before anything is opened or recorded.
    for name in &names {
        hosts.validate(name)?;
    }
    let mut engine = ctx.engine()?;
    let mut failed = false;
    let mut results = Vec::new();
    for name in &names {
        let result = engine.check_host(name);
        if !as_json {
            match &result {
                Ok(_) if Hosts::is_local(name) => println!("{name}: ok (embedded host)"),
                Ok(c) => print!("{}", check_lines(name, c)),
                Err(err) => println!(
                    "{name}: FAILED: {}",
                    belay_ssh::terminal_safe(&err.to_string())
                ),
            }
        }
        failed |= result.is_err();
        results.push(check_json(name, &result));
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(if failed { 1 } else { 0 })
}

fn check_lines(name: &str, c: &HostCheck) -> String {
    let mut s = format!(
        "{name}: ok in {:.0} ms ({}); first command {:.1} ms (starts the remote shell), round trip {:.1} ms\n",
        ms(c.total),
        c.route.as_deref().unwrap_or("direct"),
        ms(c.first_command),
        ms(c.round_trip)
    );
    for h in &c.hops {
        s.push_str(&format!(
            "  {} ({}): connect {:.0} ms, key exchange {:.0} ms, auth {:.0} ms by {}\n",
            h.alias,
            h.target,
            ms(h.connect),
            ms(h.key_exchange),
            ms(h.auth),
            h.auth_method
        ));
    }
    s
}
