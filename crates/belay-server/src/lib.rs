//! belay's daemon and the client that reaches it.
//!
//! The daemon (`belay serve`) is an accelerator and a mover, not a second
//! truth: everything it knows is in the store or re-derivable from the
//! hosts, so SIGKILL loses nothing and the next CLI command (which starts a
//! new daemon) finishes what was under way. What it adds:
//!
//! - one pooled SSH connection per host for its whole life (the engine's
//!   [`belay_core::hosts::Hosts`], shared by every request);
//! - work moved forward with no terminal open ([`background`]);
//! - the `/v1` HTTP/JSON API on `$BELAY_HOME/belay.sock` ([`api`]), which
//!   the CLI uses without being asked ([`client`], [`autostart`]).
//!
//! Modules:
//! - [`location`]: where the socket, lock and log live;
//! - [`lock`]: one daemon per `BELAY_HOME`;
//! - [`card`]: who serves, said once in a file, so a command need not ask;
//! - [`listener`]: the socket (0600, stale files removed only when provably
//!   stale) and the peer-uid check on every connection;
//! - [`serve`]: the daemon's life — start, idle exit, stop;
//! - [`memory`]: free memory handed back, so bursts leave none resident;
//! - [`state`]: what requests share (hosts, activity counters);
//! - [`api`]: routes, one file per resource, and the OpenAPI document;
//! - [`prompts`]: a connection's questions relayed to the client asking;
//! - [`shell_frames`]: the framing of a shell after its upgrade;
//! - [`tls`]: the certificate pair (reloaded when renewed) and the TLS
//!   listener for `serve --listen`;
//! - [`watch`]: the one store watcher behind every live view;
//! - [`dashboard`]: the web dashboard served at `/` on TCP;
//! - [`build`]: the identity a client compares with the daemon's;
//! - [`client`] and [`autostart`]: the CLI's side.

pub mod api;
pub mod apps;
pub mod autostart;
pub mod background;
pub mod build;
pub mod card;
pub mod client;
pub mod dashboard;
pub mod forwards;
pub mod listener;
pub mod location;
pub mod lock;
pub mod memory;
pub mod output;
pub mod prompts;
pub mod serve;
pub mod shell_frames;
pub mod state;
pub mod store_pool;
pub mod tls;
pub mod watch;

pub use client::{Client, ClientError};
pub use location::DaemonLocation;
