//! Host health: the one writer of the `hosts` table. Every command that
//! talks to a host (submit, reconcile, `host check`) reports how it went
//! here, so "when did it last answer, through which route, what was the
//! last error and of what kind" is decided in one place.

use super::Engine;
use crate::error::Result;
use crate::hosts::Hosts;
use crate::hosts::check::HostCheck;
use crate::store::HostHealth;
use crate::transport::{Transport, TransportError};

impl Engine {
    /// Record how talking to `host` went (host health, the route used).
    /// `local` has no health to keep.
    pub(crate) fn note_host(
        &mut self,
        host: &str,
        outcome: std::result::Result<(), &TransportError>,
    ) {
        if Hosts::is_local(host) {
            return;
        }
        let route = self.hosts.ssh(host).route();
        // Health is advisory: failing to record it must not fail the command.
        let _ = match outcome {
            Ok(()) => self.store.record_host_ok(host, route.as_deref()),
            Err(e) => self.store.record_host_error(host, e.kind(), &e.to_string()),
        };
    }

    /// A check's outcome: the host's health and, when it answered, its GPUs.
    fn note_check(&mut self, host: &str, outcome: &std::result::Result<HostCheck, TransportError>) {
        self.note_host(host, outcome.as_ref().map(|_| ()));
        if let Ok(c) = outcome {
            // Advisory, like health.
            let _ = self.store.record_host_gpus(host, &c.gpus);
        }
    }

    /// What belay last saw of `host` (all empty if never contacted).
    pub fn host_health(&self, host: &str) -> Result<HostHealth> {
        Ok(self.store.host_health(host)?.unwrap_or_default())
    }

    /// Connect to `host` and time a round trip ([`Hosts::check`]); the
    /// outcome is recorded as the host's health (a check is an action).
    pub fn check_host(&mut self, host: &str) -> std::result::Result<HostCheck, TransportError> {
        let outcome = self.hosts.check(host);
        self.note_check(host, &outcome);
        outcome
    }

    /// [`Engine::check_host`] for many hosts at once (`host check --all`):
    /// at most `parallel` at a time, through the fan-out machinery
    /// ([`crate::fanout::bounded`]); `done` sees each outcome as it comes.
    /// Outcomes in `names`' order, each recorded as that host's health.
    pub fn check_hosts(
        &mut self,
        names: Vec<String>,
        parallel: usize,
        mut done: impl FnMut(&str, &std::result::Result<HostCheck, TransportError>),
    ) -> Vec<(String, std::result::Result<HostCheck, TransportError>)> {
        let hosts = &self.hosts;
        // Every check makes its own connection, the whole chain: paced per
        // first hop, like exec's handshakes (sshd's MaxStartups).
        let gateways = crate::fanout::Gateways::default();
        let gateways = &gateways;
        let outcomes = crate::transport::ssh::runtime().block_on(crate::fanout::bounded(
            names,
            parallel,
            |name| async move {
                let slots = crate::fanout::first_hop(hosts, &name)
                    .await
                    .map(|g| gateways.slots(&g));
                let _slot = match &slots {
                    Some(s) => s.acquire().await.ok(),
                    None => None,
                };
                let outcome = hosts.check_async(&name).await;
                (name, outcome)
            },
            |(name, outcome)| done(name, outcome),
        ));
        for (name, outcome) in &outcomes {
            self.note_check(name, outcome);
        }
        outcomes
    }
}
