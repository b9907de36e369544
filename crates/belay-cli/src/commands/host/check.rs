//! `belay host check`: connect, time a round trip per hop, and show it —
//! many hosts (`--all`) at once, bounded, each shown as it ends.
//! The measuring and the health record are the core's
//! (`Engine::check_host`), done by the daemon when one answers; this
//! validates names and renders `--json`'s document (belay-core's
//! `hosts::view::check_json`) either way.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Result, bail};
use belay_core::hosts::Hosts;
use belay_core::hosts::view::check_json;
use serde_json::Value;

use super::super::{Ctx, UsageError};
use crate::daemon;

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
    // Many hosts are checked at once (belay-core's fan-out machinery, or
    // concurrent requests to the daemon), each printed as it ends.
    let parallel = belay_core::fanout::DEFAULT_PARALLEL;
    let results: Vec<Value> = match client {
        Some(c) if names.len() > 1 => through_daemon(c, &names, parallel, as_json)?,
        Some(c) => {
            let result = daemon::check_host(c, &names[0])?;
            if !as_json {
                print!("{}", check_lines(&names[0], &result));
            }
            vec![result]
        }
        None => {
            let mut engine = ctx.engine()?;
            engine
                .check_hosts(names, parallel, |name, outcome| {
                    if !as_json {
                        print!("{}", check_lines(name, &check_json(name, outcome)));
                    }
                })
                .into_iter()
                .map(|(name, outcome)| check_json(&name, &outcome))
                .collect()
        }
    };
    let failed = results.iter().any(|r| r["ok"] != true);
    if as_json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(if failed { 1 } else { 0 })
}

/// Checks by the daemon, `parallel` requests at once (a client each),
/// printed as they end; results in `names`' order.
fn through_daemon(
    client: &belay_server::Client,
    names: &[String],
    parallel: usize,
    as_json: bool,
) -> Result<Vec<Value>> {
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<Result<Value>>>> = Mutex::new(names.iter().map(|_| None).collect());
    let socket = client.socket();
    std::thread::scope(|s| {
        for _ in 0..parallel.min(names.len()) {
            s.spawn(|| {
                let client = belay_server::Client::new(socket);
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(name) = names.get(i) else { break };
                    let result = daemon::check_host(&client, name);
                    let mut slots = slots.lock().unwrap_or_else(|p| p.into_inner());
                    if let Ok(v) = &result
                        && !as_json
                    {
                        print!("{}", check_lines(name, v));
                    }
                    slots[i] = Some(result);
                }
            });
        }
    });
    slots
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(anyhow::anyhow!("host check did not run"))))
        .collect()
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
    if let Some(e) = c["gpu_error"].as_str() {
        s.push_str(&format!(
            "  gpus: nvidia-smi failed: {}\n",
            belay_ssh::terminal_safe(e)
        ));
    } else if c["nvidia_smi"] == false {
        s.push_str("  gpus: none (no nvidia-smi)\n");
    } else if let Ok(gpus) =
        serde_json::from_value::<Vec<belay_core::hosts::gpus::Gpu>>(c["gpus"].clone())
    {
        s.push_str(&format!("  gpus: {}\n", gpus.len()));
        for g in &gpus {
            s.push_str(&format!(
                "    {}\n",
                belay_ssh::terminal_safe(&belay_core::hosts::gpus::describe(g))
            ));
        }
    }
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
