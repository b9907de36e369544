//! `-v`/`-vv`/`BELAY_LOG`: what belay is doing, as structured `tracing`
//! events on stderr (one line each, with the time since start) — like
//! `ssh -v`, but readable. `-v` shows each hop's steps (resolution,
//! connect, key exchange, authentication) and reconnects; `-vv` adds each
//! authentication attempt and each protocol script with its duration;
//! `-vvv` everything. `BELAY_LOG` takes `tracing` target directives instead
//! (`debug`, `belay_ssh=debug,info`) and wins over `-v`. Events never carry
//! a secret: no passphrase, no script text, no environment value.

use std::str::FromStr;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The environment variable holding filter directives.
pub const LOG_ENV: &str = "BELAY_LOG";

/// Installs the stderr logger for `-v` × `verbose` or `BELAY_LOG`; nothing
/// when neither is given. `Err` is one line naming a bad `BELAY_LOG`.
pub fn init(verbose: u8) -> Result<(), String> {
    let filter = match std::env::var(LOG_ENV) {
        Ok(v) if !v.trim().is_empty() => Targets::from_str(v.trim())
            .map_err(|e| format!("{LOG_ENV}='{v}' is not a filter ({e}); try {LOG_ENV}=debug"))?,
        _ => {
            let level = match verbose {
                0 => return Ok(()),
                1 => LevelFilter::INFO,
                2 => LevelFilter::DEBUG,
                _ => LevelFilter::TRACE,
            };
            Targets::new().with_default(level)
        }
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_timer(tracing_subscriber::fmt::time::Uptime::default());
    // Fails only if a logger is already installed; then that one is kept.
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .try_init();
    Ok(())
}
