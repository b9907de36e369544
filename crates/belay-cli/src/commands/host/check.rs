//! `belay host check`: connect, time a round trip per hop, and show it.
//! The measuring and the health record are the core's
//! (`Engine::check_host`), done by the daemon when one answers; this
//! validates names and renders `--json`'s document (belay-core's
//! `hosts::view::check_json`) either way.

use anyhow::{Result, bail};
use belay_core::hosts::Hosts;
use belay_core::hosts::view::check_json;
use serde_json::Value;

use super::super::{Ctx, UsageError};
use crate::daemon;

/// One host's check, by the daemon or this process.
type CheckOne<'a> = Box<dyn FnMut(&str) -> Result<Value> + 'a>;

pub fn check(ctx: &Ctx, mut names: Vec<String>, all: bool, as_json: bool) -> Result<u8> {
    let hosts = Hosts::new(&ctx.home, ctx.hosts.clone())?;
    let client = ctx.daemon(true);
    if all {
        names = match client {
            Some(c) => daemon::hosts(c)?
                .iter()
                .filter_map(|row| row["host"].as_str().map(str::to_string))
                .collect(),
            None => super::known_hosts(ctx, &hosts)?,
        };
    }
    if names.is_empty() {
        bail!(UsageError("name hosts to check, or --all".into()));
    }
    // Bad names are bad input: refused before anything is opened or recorded.
    for name in &names {
        hosts.validate(name)?;
    }
    let mut check_one: CheckOne = match client {
        Some(c) => Box::new(move |name| daemon::check_host(c, name)),
        None => {
            let mut engine = ctx.engine()?;
            Box::new(move |name| Ok(check_json(name, &engine.check_host(name))))
        }
    };
    let mut failed = false;
    let mut results = Vec::new();
    for name in &names {
        let result = check_one(name)?;
        if !as_json {
            print!("{}", check_lines(name, &result));
        }
        failed |= result["ok"] != true;
        results.push(result);
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(if failed { 1 } else { 0 })
}

/// The text of one check, from its JSON document.
fn check_lines(name: &str, c: &Value) -> String {
    let ms = |v: &Value| v.as_f64().unwrap_or(0.0);
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    if c["ok"] != true {
        return format!(
            "{name}: FAILED: {}\n",
            belay_ssh::terminal_safe(&text(&c["error"]))
        );
    }
    if Hosts::is_local(name) {
        return format!("{name}: ok (embedded host)\n");
    }
    let mut s = format!(
        "{name}: ok in {:.0} ms ({}); first command {:.1} ms (starts the remote shell), round trip {:.1} ms\n",
        ms(&c["total_ms"]),
        c["route"].as_str().unwrap_or("direct"),
        ms(&c["first_command_ms"]),
        ms(&c["round_trip_ms"])
    );
    for h in c["hops"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "  {} ({}): connect {:.0} ms, key exchange {:.0} ms, auth {:.0} ms by {}\n",
            text(&h["hop"]),
            text(&h["target"]),
            ms(&h["connect_ms"]),
            ms(&h["kex_ms"]),
            ms(&h["auth_ms"]),
            text(&h["auth"])
        ));
    }
    s
}
