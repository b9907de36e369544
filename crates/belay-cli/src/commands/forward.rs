//! `belay forward`: forwards to a job's node or a host, held by the daemon
//! (`/v1/forwards`) so they outlive this command; `--foreground` and
//! `--no-daemon` run the same manager here until Ctrl-C. Every spec is
//! checked before anything is opened, so a typo opens nothing; if one of
//! several cannot be opened, those already opened are stopped again.

use std::time::Duration;

use anyhow::Result;
use belay_core::engine::Engine;
use belay_server::forwards::spec::ForwardSpec;
use belay_server::forwards::{ForwardView, Forwards, ForwardsError};
use belay_server::{Client, ClientError};

use super::{Ctx, UsageError};
use crate::cli::ForwardArgs;
use crate::daemon::encode;
use crate::interrupt;

pub fn forward(ctx: &Ctx, a: ForwardArgs) -> Result<u8> {
    if a.list {
        return list(ctx, a.json);
    }
    if let Some(which) = &a.stop {
        return stop(ctx, which, a.json);
    }
    let to = a.to.clone().unwrap_or_default();
    if a.specs.is_empty() {
        return Err(UsageError(format!(
            "say what to forward to {to}: [LOCAL:]REMOTE (see belay forward --help)"
        ))
        .into());
    }
    for spec in &a.specs {
        ForwardSpec::parse(spec).map_err(UsageError)?;
    }
    match (a.foreground, ctx.daemon(true)) {
        (false, Some(client)) => open_in_daemon(client, &to, &a.specs, a.json),
        _ => foreground(ctx, &to, &a.specs, a.json),
    }
}

fn open_in_daemon(client: &Client, to: &str, specs: &[String], json: bool) -> Result<u8> {
    let mut opened: Vec<ForwardView> = Vec::new();
    for spec in specs {
        let view: Result<ForwardView, ClientError> = client.post(
            "/v1/forwards",
            &serde_json::json!({ "to": to, "spec": spec }),
        );
        match view {
            Ok(v) => opened.push(v),
            Err(e) => {
                for v in &opened {
                    let _: Result<serde_json::Value, _> =
                        client.delete(&format!("/v1/forwards/{}", encode(&v.record.id)));
                }
                return Err(e.into());
            }
        }
    }
    show_opened(&opened, json);
    Ok(0)
}

fn show_opened(opened: &[ForwardView], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(opened).unwrap_or_default()
        );
        return;
    }
    for v in opened {
        println!(
            "{}: listening on {}, forwarding to {} on {}",
            v.record.id, v.record.local, v.record.remote, v.record.host
        );
    }
}

/// The same manager in this process, until Ctrl-C (or its job ends).
fn foreground(ctx: &Ctx, to: &str, specs: &[String], json: bool) -> Result<u8> {
    belay_core::transport::ssh::drive_in_background();
    let mut engine = ctx.engine()?;
    let forwards = Forwards::new(false);
    let mut opened = Vec::new();
    for spec in specs {
        opened.push(forwards.open(&mut engine, to, spec).map_err(into_cli)?);
    }
    show_opened(&opened, json);
    eprintln!("belay: forwarding until Ctrl-C");
    serve_here(&mut engine, &forwards, to)?;
    Ok(0)
}

/// Serves `forwards` in this process until Ctrl-C, or until the job `to`
/// names ends and none is left open (the job is reconciled here every 2 s:
/// no daemon records its end for us).
pub(crate) fn serve_here(engine: &mut Engine, forwards: &Forwards, to: &str) -> Result<()> {
    interrupt::install();
    let mut last_check = std::time::Instant::now();
    while !interrupt::requested() {
        std::thread::sleep(Duration::from_millis(100));
        if forwards.has_job_forwards() && last_check.elapsed() >= Duration::from_secs(2) {
            last_check = std::time::Instant::now();
            let _ = engine.job(to);
            if forwards.close_ended_jobs(engine).map_err(into_cli)? > 0 {
                eprintln!("belay: job {to} ended: its forwards are closed");
                if forwards.open_count() == 0 {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

fn into_cli(e: ForwardsError) -> anyhow::Error {
    match e {
        ForwardsError::Core(core) => core.into(),
        ForwardsError::NotFound(message) => UsageError(message).into(),
        other => anyhow::anyhow!(other.to_string()),
    }
}

#[derive(serde::Deserialize)]
struct ListDoc {
    forwards: Vec<ForwardView>,
}

fn list(ctx: &Ctx, json: bool) -> Result<u8> {
    let views = match ctx.daemon(ctx.home.store_exists()) {
        Some(client) => client.get::<ListDoc>("/v1/forwards")?.forwards,
        None => Vec::new(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(0);
    }
    if views.is_empty() {
        if ctx.no_daemon {
            println!(
                "no forwards (without the daemon a forward lives only as long as its `belay forward`)"
            );
        } else {
            println!("no forwards");
        }
        return Ok(0);
    }
    println!(
        "{:<10} {:<12} {:<22} {:<30} STATE",
        "ID", "HOST", "LOCAL", "REMOTE"
    );
    for v in &views {
        let r = &v.record;
        let host = match &r.job_id {
            Some(job) => format!("{} (job {job})", r.host),
            None => r.host.clone(),
        };
        let mut state = v.state.clone();
        if v.connections > 0 {
            state.push_str(&format!(", {} connection(s)", v.connections));
        }
        println!(
            "{:<10} {:<12} {:<22} {:<30} {state}",
            r.id, host, r.local, r.remote
        );
        if let Some(note) = &r.note {
            println!("{:<10} note: {note}", "");
        }
    }
    Ok(0)
}

#[derive(serde::Deserialize)]
struct StopDoc {
    stopped: Vec<belay_core::store::ForwardRecord>,
}

fn stop(ctx: &Ctx, which: &str, json: bool) -> Result<u8> {
    let Some(client) = ctx.daemon(ctx.home.store_exists()) else {
        return Err(UsageError(format!(
            "no forward '{which}': without the daemon a forward lives only as long as its `belay forward` (stop that with Ctrl-C)"
        ))
        .into());
    };
    let doc: StopDoc = if which == "all" {
        client.delete("/v1/forwards?all=true")?
    } else {
        match client.delete(&format!("/v1/forwards/{}", encode(which))) {
            Ok(doc) => doc,
            Err(ClientError::Api { kind, .. }) if kind == "not_found" => {
                match client.delete(&format!("/v1/forwards?job={}", encode(which))) {
                    Ok(doc) => doc,
                    Err(ClientError::Api { kind, message, .. }) if kind == "unknown_job" => {
                        return Err(UsageError(format!(
                            "no forward or job '{which}' (see `belay forward --list`): {message}"
                        ))
                        .into());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&doc.stopped)?);
    } else {
        for r in &doc.stopped {
            println!(
                "{}: stopped ({} -> {} on {})",
                r.id, r.local, r.remote, r.host
            );
        }
    }
    Ok(0)
}
