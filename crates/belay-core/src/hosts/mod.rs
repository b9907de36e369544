//! Host names to transports. `local` is the embedded host and always exists;
//! every other name is an SSH destination (an ssh_config alias or
//! `[user@]host[:port]`) resolved by OpenSSH itself (`ssh -G`), with
//! belay's per-host extras from [`crate::config`].
//!
//! A name is checked before anything is recorded: `ssh -G` must accept it,
//! and a direct destination (no ProxyJump/ProxyCommand) must resolve, so a
//! typo is bad input (exit 2), not a job stuck in `submitting`.
//!
//! - [`check`]: connect and time a round trip (`belay host check`);
//! - [`current_config`]: config.toml as it is now (a daemon follows edits;
//!   a host whose settings changed gets a new connection);
//! - [`gpus`]: the GPUs `nvidia-smi` lists (inventory, processes);
//! - [`keys`]: scan, trust and forget host keys (`belay host trust|forget`);
//! - [`validated`]: names checked a moment ago (a daemon's submits do not
//!   each run `ssh -G`);
//! - [`view`]: their stable JSON shapes (CLI `--json` and the daemon's API).

pub mod check;
pub mod current_config;
pub mod gpus;
pub mod keys;
pub mod validated;
pub mod view;

use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use belay_ssh::{ClientOptions, Pool, Prompter, ResolvedChain};

use crate::config::BelayConfig;
use crate::error::{CoreError, Result};
use crate::home::BelayHome;
use crate::transport::local::LocalTransport;
use crate::transport::ssh::{SshTransport, map_error, runtime};
use crate::transport::{Transport, TransportError};

/// Makes the prompter of one host's connection (the daemon relays each
/// host's questions to whichever client is asking about that host).
pub type PrompterFor = Arc<dyn Fn(&str) -> Arc<dyn Prompter> + Send + Sync>;

/// Process-wide choices that affect every host.
#[derive(Default, Clone)]
pub struct HostsOptions {
    /// `--ssh-config FILE` (else `BELAY_SSH_CONFIG`, else OpenSSH's default).
    pub ssh_config: Option<PathBuf>,
    /// Who answers passphrase / keyboard-interactive / host-key questions
    /// (the CLI's terminal); `None`: nobody, never prompt.
    pub prompter: Option<Arc<dyn Prompter>>,
    /// A prompter per host, used instead of `prompter` when set.
    pub prompter_for: Option<PrompterFor>,
    /// Reconnect pacing instead of belay-ssh's default (a daemon paces
    /// its attempts itself, per host pass, and wants a host back soon
    /// after it heals).
    pub reconnect: Option<belay_ssh::Backoff>,
    /// The agent socket the latest command named (a daemon outlives the
    /// terminal it was started from: [`belay_ssh::AgentSocket`]).
    pub agent_socket: Option<Arc<belay_ssh::AgentSocket>>,
}

pub struct Hosts {
    local: Arc<LocalTransport>,
    config: current_config::CurrentConfig,
    options: HostsOptions,
    pool: Pool,
    ssh: Mutex<HashMap<String, Arc<SshTransport>>>,
    validated: validated::ValidatedHosts,
}

impl Hosts {
    pub fn new(home: &BelayHome, options: HostsOptions) -> Result<Self> {
        Ok(Self {
            local: Arc::new(LocalTransport::new(home.local_workroot())),
            config: current_config::CurrentConfig::load(home)?,
            pool: Pool::new(ClientOptions::default()),
            ssh: Mutex::new(HashMap::new()),
            validated: validated::ValidatedHosts::new(
                belay_ssh::config_file_from_env(options.ssh_config.as_deref()).as_deref(),
            ),
            options,
        })
    }

    /// Every host worth listing: `local`, hosts in config.toml, and
    /// `seen` (hosts the store has met), sorted, once each.
    pub fn known_names(&self, seen: Vec<String>) -> Vec<String> {
        let mut names = vec![LocalTransport::NAME.to_string()];
        names.extend(self.config.last_good().hosts.keys().cloned());
        names.extend(seen);
        names.sort();
        names.dedup();
        names
    }

    /// config.toml as it is now. A host whose settings (workroot, jump
    /// fallbacks…) changed since the last look loses its cached transport
    /// and pooled connection: the next use connects with the new ones, as
    /// a new CLI would.
    pub fn config(&self) -> Result<Arc<BelayConfig>> {
        let look = self.config.look()?;
        if let Some(before) = &look.before {
            let mut map = self.ssh.lock().unwrap_or_else(|p| p.into_inner());
            let names: Vec<&String> = before.hosts.keys().chain(look.now.hosts.keys()).collect();
            for name in names {
                if before.host(name) != look.now.host(name) {
                    map.remove(name.as_str());
                    self.pool.remove(name);
                }
            }
        }
        Ok(look.now)
    }

    pub fn is_local(host: &str) -> bool {
        host == LocalTransport::NAME
    }

    /// SSH client options for `host`: the shared config file choice and its
    /// jump fallbacks.
    pub fn client_options(&self, host: &str) -> ClientOptions {
        let mut opts = ClientOptions {
            config_file: self.options.ssh_config.clone(),
            jump_fallbacks: self.config.last_good().host(host).jump_fallbacks,
            agent_socket: self.options.agent_socket.clone(),
            ..ClientOptions::default()
        };
        if let Some(backoff) = self.options.reconnect {
            opts.backoff = backoff;
        }
        if let Some(make) = &self.options.prompter_for {
            opts.prompter = make(host);
        } else if let Some(p) = &self.options.prompter {
            opts.prompter = p.clone();
        }
        opts
    }

    /// Resolve `host` with `ssh -G` (and each ProxyJump hop), no connection.
    pub fn resolve(&self, host: &str) -> Result<ResolvedChain> {
        runtime()
            .block_on(belay_ssh::resolve(host, self.options.ssh_config.as_deref()))
            .map_err(|e| CoreError::Transport(map_error(host, e)))
    }

    /// Check a host name without connecting.
    pub fn validate(&self, host: &str) -> Result<()> {
        if Self::is_local(host) || self.validated.is_valid(host) {
            return Ok(());
        }
        let chain = self.resolve(host)?;
        let target = &chain.target;
        let direct = chain.jumps.is_empty() && target.proxy_command.is_none();
        if let Some(Err(e)) =
            direct.then(|| (target.hostname.as_str(), target.port).to_socket_addrs())
        {
            return Err(CoreError::Transport(TransportError::BadHost {
                host: host.to_string(),
                message: format!(
                    "not a Host in your ssh config, and '{}' does not resolve ({e})",
                    target.hostname
                ),
            }));
        }
        self.validated.remember(host);
        Ok(())
    }

    /// The transport for `host` (one SSH connection per host per process).
    pub fn get(&self, host: &str) -> Result<Arc<dyn Transport>> {
        Ok(if Self::is_local(host) {
            self.local.clone()
        } else {
            // The host's settings as config.toml has them now.
            self.config()?;
            self.ssh(host)
        })
    }

    /// An SSH transport for `host` with a connection of its own (not
    /// pooled: closed when dropped).
    pub fn fresh_ssh(&self, host: &str) -> Arc<SshTransport> {
        self.fresh_ssh_with(host, self.client_options(host))
    }

    /// [`Hosts::fresh_ssh`] with these client options (the doctor's: a
    /// trace, a prompter that records nothing).
    pub fn fresh_ssh_with(&self, host: &str, opts: ClientOptions) -> Arc<SshTransport> {
        let client = Arc::new(belay_ssh::Client::new(host, opts));
        Arc::new(SshTransport::new(
            host,
            client,
            self.config.last_good().host(host).workroot(),
        ))
    }

    /// The SSH transport for a non-local `host`.
    pub fn ssh(&self, host: &str) -> Arc<SshTransport> {
        let mut map = self.ssh.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(host.to_string())
            .or_insert_with(|| {
                let client = self.pool.client_with(host, || self.client_options(host));
                Arc::new(SshTransport::new(
                    host,
                    client,
                    self.config.last_good().host(host).workroot(),
                ))
            })
            .clone()
    }
}
