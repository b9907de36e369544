//! `belay host check`: connect, time a round trip per hop, and show it.
//! The measuring and the health record are the core's
//! (`Engine::check_host`); this validates names and renders.

use anyhow::{Result, bail};
use belay_core::hosts::Hosts;
use belay_core::hosts::check::HostCheck;
use serde_json::{Value, json};

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
        match engine.check_host(name) {
            Ok(c) if Hosts::is_local(name) => {
                if !as_json {
                    println!("{name}: ok (embedded host)");
                }
                results.push(json!({"host": name, "ok": true, "total_ms": ms(c.total)}));
            }
            Ok(c) => {
                if !as_json {
                    print!("{}", check_lines(name, &c));
                }
                results.push(check_json(name, &c));
            }
            Err(err) => {
                failed = true;
                if !as_json {
                    println!(
                        "{name}: FAILED: {}",
                        belay_ssh::terminal_safe(&err.to_string())
                    );
                }
                results.push(json!({"host": name, "ok": false, "error": err.to_string()}));
            }
        }
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

fn check_json(name: &str, c: &HostCheck) -> Value {
    let hops: Vec<Value> = c
        .hops
        .iter()
        .map(|h| {
            json!({
                "hop": h.alias, "target": h.target, "via": h.via,
                "connect_ms": ms(h.connect), "kex_ms": ms(h.key_exchange), "auth_ms": ms(h.auth),
                "auth": h.auth_method,
            })
        })
        .collect();
    json!({
        "host": name, "ok": true, "route": c.route, "total_ms": ms(c.total),
        "first_command_ms": ms(c.first_command), "round_trip_ms": ms(c.round_trip), "hops": hops,
    })
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
