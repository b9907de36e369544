//! `belay host check`: connect to a host and time one round trip, per hop.
//! This only measures; recording the outcome as the host's health is the
//! engine's job ([`crate::engine::Engine::check_host`]), so one writer owns
//! host health.

use std::time::{Duration, Instant};

use super::Hosts;
use super::gpus::{self, Inventory};
use crate::transport::ssh::{map_error, runtime};
use crate::transport::{Transport, TransportError};

/// One hop of a checked connection, in connection order.
#[derive(Debug, Clone)]
pub struct HopTiming {
    pub alias: String,
    /// `user@hostname:port`.
    pub target: String,
    /// How it was reached: `tcp ADDR`, `proxycommand`, `via HOP`.
    pub via: String,
    pub connect: Duration,
    pub key_exchange: Duration,
    pub auth: Duration,
    /// The method that authenticated, e.g. `key ~/.ssh/id_ed25519`.
    pub auth_method: String,
}

/// What a check of a reachable host measured.
#[derive(Debug, Clone)]
pub struct HostCheck {
    /// `direct`, `via HOP`, `via HOP (fallback)`; `None` for `local`.
    pub route: Option<String>,
    pub total: Duration,
    /// The first script starts belay's remote shell (which pays the
    /// user's shell start-up once); later ones are the warm cost.
    pub first_command: Duration,
    pub round_trip: Duration,
    pub hops: Vec<HopTiming>,
    /// The GPUs, asked in the first round trip ([`super::gpus`]).
    pub gpus: Inventory,
}

impl Hosts {
    /// Connects to `host` afresh and runs two round trips. `local` is
    /// always fine and costs nothing. Never this process's pooled
    /// connection: a check says whether the host takes a new connection now
    /// (a daemon's warm one says nothing of a hung listener) and what that
    /// connection costs.
    pub fn check(&self, host: &str) -> Result<HostCheck, TransportError> {
        runtime().block_on(self.check_async(host))
    }

    /// [`Hosts::check`] on the caller's runtime (many hosts at once:
    /// [`crate::engine::Engine::check_hosts`]).
    pub async fn check_async(&self, host: &str) -> Result<HostCheck, TransportError> {
        let started = Instant::now();
        if Self::is_local(host) {
            return Ok(HostCheck {
                route: None,
                total: Duration::ZERO,
                first_command: Duration::ZERO,
                round_trip: Duration::ZERO,
                hops: Vec::new(),
                gpus: Inventory::Unknown,
            });
        }
        let transport = self.fresh_ssh(host);
        let client = transport.client().clone();
        let (info, first_command, round_trip, inventory) = async {
            let measured = async {
                let info = client.connect_info().await?;
                let first = Instant::now();
                // The first round trip also asks for the GPUs (no extra
                // round trip; nvidia-smi's own time counts in it).
                let out = client.run_script(&gpus::inventory_script()).await?;
                let first = first.elapsed();
                let rt = Instant::now();
                client.run_script("true").await?;
                let inventory = gpus::parse_report(&String::from_utf8_lossy(&out.stdout));
                Ok::<_, belay_ssh::SshError>((info, first, rt.elapsed(), inventory))
            }
            .await;
            // The check's own connection ends with it (a daemon keeps
            // running).
            client.disconnect().await;
            measured
        }
        .await
        .map_err(|e| map_error(host, e))?;
        let hops = info
            .hops
            .iter()
            .map(|h| HopTiming {
                alias: h.alias.clone(),
                target: h.target.clone(),
                via: h.via.clone(),
                connect: h.stream,
                key_exchange: h.kex,
                auth: h.auth,
                auth_method: h.auth_method.clone(),
            })
            .collect();
        Ok(HostCheck {
            route: transport.route(),
            total: started.elapsed(),
            first_command,
            round_trip,
            hops,
            gpus: inventory,
        })
    }
}
