//! `belay serve`: run the daemon (foreground, or `--background` as
//! commands start it), or ask about it (`--status`) or stop it (`--stop`).

use anyhow::Result;
use belay_core::config::BelayConfig;
use belay_server::autostart::{self, DaemonInfo};
use belay_server::serve::ServeOptions;
use belay_server::{Client, ClientError, DaemonLocation};

use super::Ctx;
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
        },
    )?;
    Ok(0)
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
                    "belay daemon pid {} serving {} since {} (build {}; socket {})",
                    info.pid,
                    info.home,
                    info.started_at,
                    info.build,
                    location.socket().display()
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
