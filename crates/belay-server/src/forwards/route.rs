//! How one forward's connections reach their target: a forwarded channel
//! on the host's connection (`direct-tcpip` / `direct-streamlocal`, as
//! `ssh -L`), or, for a Slurm job (whose compute node the login node's
//! forwarding may not reach):
//!
//! 1. by SSH to the job's compute node, when the user's OpenSSH config
//!    says how to reach it (a `Host` for the node's name with a ProxyJump
//!    or ProxyCommand, typically through the login node) and the node
//!    takes the connection — a forwarded channel there, as cheap as any;
//! 2. else a relay command run as a step inside the job's allocation
//!    (`belay_core::scheduler::slurm_step`), whose stdio is the
//!    connection: it works wherever `srun` does, at the cost of one step
//!    per connection.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use belay_core::hosts::Hosts;
use belay_core::job::Job;
use belay_core::scheduler::slurm_step;
use belay_ssh::{Client, ForwardError, ForwardTarget};
use tokio::io::{AsyncRead, AsyncWrite};

/// A relayed connection's remote end, whichever way it was opened.
pub trait Duplex: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> Duplex for T {}

/// Where a forward's connections go, and how.
#[derive(Debug, Clone)]
pub enum Route {
    /// A forwarded channel to the target as seen from the host.
    Channel(ForwardTarget),
    /// A relay step inside Slurm job `slurm_id`, to the target as seen
    /// from the job's node.
    SlurmStep {
        slurm_id: String,
        target: ForwardTarget,
    },
}

impl Route {
    /// The route for `job` on `host` (or the host itself, with no job),
    /// and the connection it goes through: see the module docs. A node
    /// found in the OpenSSH config is tried first; [`Chosen::fallback`]
    /// says where to go when it refuses.
    pub fn choose(hosts: &Hosts, host: &str, job: Option<&Job>, target: ForwardTarget) -> Chosen {
        let login = hosts.ssh(host).client().clone();
        let Some((job, slurm_id)) = job.and_then(|j| Some((j, slurm_step::allocation_id(j)?)))
        else {
            return Chosen {
                client: login,
                route: Route::Channel(target),
                fallback: None,
            };
        };
        let step = Chosen {
            client: login,
            route: Route::SlurmStep {
                slurm_id: slurm_id.to_string(),
                target: target.clone(),
            },
            fallback: None,
        };
        match slurm_step::node_alias(hosts, host, job) {
            Some(node) => Chosen {
                client: hosts.ssh(&node).client().clone(),
                route: Route::Channel(target),
                fallback: Some(Box::new(step)),
            },
            None => step,
        }
    }

    /// Opens one connection to the target.
    pub async fn open(&self, client: &Client) -> Result<Pin<Box<dyn Duplex>>, ForwardError> {
        match self {
            Route::Channel(target) => Ok(Box::pin(client.open_forward(target).await?)),
            Route::SlurmStep { slurm_id, target } => Ok(Box::pin(
                client
                    .open_command_stream(&slurm_step::relay_command(slurm_id, &target.to_string()))
                    .await?,
            )),
        }
    }

    /// Checks that the target accepts a connection now, so a forward that
    /// cannot work is refused when asked for, with the reason.
    pub async fn check(&self, client: &Client) -> Result<(), ForwardError> {
        match self {
            Route::Channel(target) => client.open_forward(target).await.map(drop),
            Route::SlurmStep { slurm_id, target } => {
                let probe = slurm_step::probe_command(slurm_id, &target.to_string());
                let out = client.exec(&probe, b"").await?;
                if out.status == 0 {
                    return Ok(());
                }
                let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
                Err(ForwardError::NothingThere {
                    hop: format!("{} (Slurm job {slurm_id})", client.alias()),
                    target: target.to_string(),
                    detail: if said.is_empty() {
                        format!("the relay step exited with status {}", out.status)
                    } else {
                        said
                    },
                })
            }
        }
    }
}

/// A route and the connection it takes.
pub struct Chosen {
    pub client: Arc<Client>,
    pub route: Route,
    /// Where to go instead if this connection cannot be made (SSH to a
    /// compute node the cluster does not let the user into).
    pub fallback: Option<Box<Chosen>>,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Channel(target) => write!(f, "{target}"),
            Route::SlurmStep { slurm_id, target } => {
                write!(f, "{target} in Slurm job {slurm_id}")
            }
        }
    }
}
