//! `belay token`: the API's per-user tokens (`belay serve --listen`),
//! managed in the store directly (the daemon reads them there on every
//! request, so a revoke holds from the next one). `create` prints the
//! token once, alone on stdout (and the dashboard's login URL with it on
//! stderr); only its hash is kept ([`belay_core::tokens`]).

use anyhow::Result;
use belay_core::CoreError;
use belay_core::store::Store;
use belay_core::time::now_ms;
use belay_core::tokens;
use serde_json::json;

use super::Ctx;
use crate::cli::TokenCommand;
use crate::render::ago;

pub fn token(ctx: &Ctx, cmd: TokenCommand) -> Result<u8> {
    match cmd {
        TokenCommand::Create { name, admin } => create(ctx, &name, admin),
        TokenCommand::List { json } => list(ctx, json),
        TokenCommand::Revoke { name } => revoke(ctx, &name),
    }
}

fn create(ctx: &Ctx, name: &str, admin: bool) -> Result<u8> {
    tokens::validate_name(name)?;
    let mut store = Store::open(&ctx.home.store_path())?;
    let (token, hash) = tokens::generate()?;
    store.insert_token(name, &hash, admin)?;
    println!("{token}");
    eprintln!(
        "token for '{name}'{}: shown only now (belay keeps its hash)",
        if admin { " (admin)" } else { "" }
    );
    eprintln!("dashboard: {}", dashboard_url(ctx, &token));
    Ok(0)
}

/// The dashboard's login URL for `token`: on the running daemon's TCP
/// listener when one serves this home (asked on its socket; none is
/// started for this), else only the path to open there.
fn dashboard_url(ctx: &Ctx, token: &str) -> String {
    let socket = belay_server::DaemonLocation::new(&ctx.home).socket();
    let listen = if socket.exists() {
        belay_server::Client::new(&socket)
            .get::<serde_json::Value>("/v1/daemon")
            .ok()
            .and_then(|v| {
                let scheme = if v["tls"] == true { "https" } else { "http" };
                v["listen"]
                    .as_str()
                    .map(|addr| format!("{scheme}://{addr}"))
            })
    } else {
        None
    };
    match listen {
        Some(base) => format!("{base}/?token={token}"),
        None => format!("/?token={token} (on the address `belay serve --listen` serves)"),
    }
}

fn list(ctx: &Ctx, json: bool) -> Result<u8> {
    let found = if ctx.home.store_exists() {
        Store::open(&ctx.home.store_path())?.tokens()?
    } else {
        Vec::new()
    };
    let rfc = belay_core::job::view::rfc3339;
    if json {
        let rows: Vec<_> = found
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "admin": t.admin,
                    "created_at": rfc(t.created_at),
                    "last_used": t.last_used.map(rfc),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    if found.is_empty() {
        println!("no tokens (belay token create NAME)");
        return Ok(0);
    }
    let now = now_ms();
    println!("{:<20} {:<6} {:<14} LAST USED", "NAME", "ADMIN", "CREATED");
    for t in &found {
        println!(
            "{:<20} {:<6} {:<14} {}",
            t.name,
            if t.admin { "yes" } else { "no" },
            ago(t.created_at, now),
            t.last_used.map_or("never".to_string(), |at| ago(at, now)),
        );
    }
    Ok(0)
}

fn revoke(ctx: &Ctx, name: &str) -> Result<u8> {
    tokens::validate_name(name)?;
    let revoked =
        ctx.home.store_exists() && Store::open(&ctx.home.store_path())?.revoke_token(name)?;
    if !revoked {
        return Err(CoreError::BadInput(format!(
            "no token named '{name}' (see `belay token list`)"
        ))
        .into());
    }
    println!("revoked the token '{name}'");
    Ok(0)
}
