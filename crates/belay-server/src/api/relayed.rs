//! Answers for requests that connect to a host on the client's behalf
//! (fetch, check, a host key scan or trust): a stream of JSON lines, so
//! the connection's questions (a passphrase, a second factor) can reach
//! the client's terminal while the work runs, and copy progress can be
//! drawn there. The lines are `prompt` (answer with `POST
//! /v1/prompts/{id}`), `progress` (with the `output` it is for), then one
//! `done` with the `result`, or one `error` (the usual error document).
//!
//! The client says it has a terminal with the `x-belay-terminal` header;
//! without it no question is relayed and the connection fails with the
//! clear error a direct connection gives without a terminal.

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use belay_core::engine::Engine;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{ApiError, channel_body, failpoint_of};
use crate::prompts::Route;
use crate::state::Shared;

/// What the work may use while it runs: the response's line channel.
pub struct Relay {
    state: Shared,
    terminal: bool,
    lines: mpsc::Sender<Bytes>,
}

impl Relay {
    /// Route `host`'s connection questions to this client (when it has a
    /// terminal) for as long as the route is held.
    pub fn route(&self, host: &str) -> Option<Route> {
        self.terminal
            .then(|| self.state.prompts.open(host, self.lines.clone()))
    }

    /// A copy-progress sink for one output, relayed as `progress` lines.
    pub fn progress(&self, output: &str) -> Box<dyn belay_core::transfer::Progress> {
        Box::new(RelayProgress {
            lines: self.lines.clone(),
            output: output.to_string(),
            unsent: 0,
        })
    }
}

/// Run `work` on a blocking thread with a fresh engine; answer its lines.
pub fn relayed<F>(state: &Shared, headers: &HeaderMap, work: F) -> axum::response::Response
where
    F: FnOnce(&mut Engine, &Relay) -> Result<Value, ApiError> + Send + 'static,
{
    let failpoint = failpoint_of(headers);
    let terminal = headers
        .get(crate::prompts::TERMINAL_HEADER)
        .is_some_and(|v| v == "1");
    let (lines, body) = channel_body(64);
    let relay = Relay {
        state: state.clone(),
        terminal,
        lines,
    };
    tokio::task::spawn_blocking(move || {
        belay_core::failpoint::arm_for_thread(failpoint);
        let outcome = relay
            .state
            .engine()
            .map_err(ApiError::from)
            .and_then(|mut engine| work(&mut engine, &relay));
        belay_core::failpoint::arm_for_thread(None);
        let last = match outcome {
            Ok(result) => json!({"event": "done", "result": result}),
            Err(e) => json!({"event": "error", "error": e.body}),
        };
        let _ = relay.lines.blocking_send(line(last));
    });
    axum::response::Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::new(body))
        .expect("a static response head")
}

fn line(value: Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}

/// Copy progress as lines; dropped rather than waited for when the client
/// reads slowly (bytes not sent are added to the next line), and safe to
/// send from inside the SSH runtime.
struct RelayProgress {
    lines: mpsc::Sender<Bytes>,
    output: String,
    unsent: u64,
}

impl RelayProgress {
    fn send(&self, fields: Value) -> bool {
        let mut event = json!({"event": "progress", "output": self.output});
        if let (Some(e), Some(f)) = (event.as_object_mut(), fields.as_object()) {
            e.extend(f.clone());
        }
        self.lines.try_send(line(event)).is_ok()
    }
}

impl belay_core::transfer::Progress for RelayProgress {
    fn begin(&mut self, files: u64, bytes: u64) {
        self.send(json!({"begin": {"files": files, "bytes": bytes}}));
    }
    fn advance(&mut self, bytes: u64) {
        self.unsent += bytes;
        if self.send(json!({"advance": self.unsent})) {
            self.unsent = 0;
        }
    }
    fn file_done(&mut self) {
        self.send(json!({"file_done": true}));
    }
    fn warn(&mut self, message: &str) {
        self.send(json!({"warn": message}));
    }
}
