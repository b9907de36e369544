//! `belay serve`: run the daemon (foreground, or `--background` as
//! commands start it), or ask about it (`--status`) or stop it (`--stop`).
//! `--listen ADDR` also serves the API on TCP, with tokens; plain HTTP off
//! loopback only with TLS (`--tls-cert`/`--tls-key`) or when `--insecure`
//! says so.

use anyhow::Result;
use belay_core::config::BelayConfig;
use belay_server::autostart::{self, DaemonInfo};
use belay_server::serve::ServeOptions;
use belay_server::tls::TlsFiles;
use belay_server::{Client, ClientError, DaemonLocation};

use super::{Ctx, UsageError};
use crate::cli::ServeArgs;

pub fn serve(ctx: &Ctx, a: ServeArgs) -> Result<u8> {
    let location = DaemonLocation::new(&ctx.home);
    if a.status {
        return status(&location, a.json);
    }
    if a.stop {
        return Ok(match autostart::stop(&ctx.home)? {
            Some(pid) => {
                println!("stopped the belay daemon (pid {pid})");
                0
            }
            None => {
                println!("no belay daemon serves {}", ctx.home.root().display());
                0
            }
        });
    }
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(std::sync::Arc::new(
            TlsFiles::load(cert, key).map_err(|e| UsageError(format!("TLS: {e}")))?,
        )),
        _ => None,
    };
    let listen = a
        .listen
        .as_deref()
        .map(|addr| listen_address(addr, a.insecure, tls.is_some()))
        .transpose()?;
    let idle_exit = if a.background {
        Some(BelayConfig::load(&ctx.home)?.daemon.idle_exit()?)
    } else {
        None
    };
    let ssh_config = belay_ssh::config_file_from_env(ctx.hosts.ssh_config.as_deref());
    belay_server::serve::run(
        ctx.home.clone(),
        ServeOptions {
            ssh_config,
            idle_exit,
            listen,
            tls,
        },
    )?;
    Ok(0)
}

/// `--listen ADDR`, checked: an IP and a port; off loopback, only with
/// TLS or `--insecure` (tokens would cross the network in clear).
fn listen_address(addr: &str, insecure: bool, tls: bool) -> Result<std::net::SocketAddr> {
    let bad = |m: String| anyhow::Error::from(UsageError(m));
    let parsed: std::net::SocketAddr = addr.parse().map_err(|_| {
        bad(format!(
            "bad --listen '{addr}': want IP:PORT, e.g. 127.0.0.1:8765"
        ))
    })?;
    if !parsed.ip().is_loopback() && !tls && !insecure {
        return Err(bad(format!(
            "--listen '{addr}' is not a loopback address: it needs TLS (--tls-cert FILE --tls-key FILE) or an explicit --insecure"
        )));
    }
    Ok(parsed)
}

fn status(location: &DaemonLocation, json: bool) -> Result<u8> {
    let client = Client::new(&location.socket());
    match client.get::<serde_json::Value>("/v1/daemon") {
        Ok(info) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                let info: DaemonInfo = serde_json::from_value(info)?;
                println!(
                    "belay daemon pid {} serving {} since {} (build {}; socket {}{})",
                    info.pid,
                    info.home,
                    info.started_at,
                    info.build,
                    location.socket().display(),
                    info.listen
                        .map(|l| format!("; TCP {}://{l}", if info.tls { "https" } else { "http" }))
                        .unwrap_or_default()
                );
            }
            Ok(0)
        }
        Err(ClientError::Unavailable { .. }) => {
            if json {
                println!("null");
            } else {
                println!("no belay daemon serves {}", location.home.root().display());
            }
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}
