//! Questions a connection asks (a key's passphrase, keyboard-interactive
//! answers such as a second factor, a host key to confirm) relayed to the
//! client that is asking about that host, on its terminal.
//!
//! A request whose client has a terminal (header `x-belay-terminal: 1`)
//! opens a [`Route`] for its host for as long as it runs; each host's
//! connection has a [`RelayPrompter`] that sends its questions down the
//! newest route as `{"event": "prompt", ...}` lines and waits for the answer
//! (`POST /v1/prompts/{id}`). One answer serves the daemon's connection to
//! that host for as long as it lives, as one OpenSSH ControlMaster login
//! does. With no route the prompter says there is no terminal: the
//! connection fails with the usual clear error, and since only that host's
//! connect waits on a question, other hosts never wait.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::Duration;

use belay_ssh::Prompter;
use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc;

/// How long a question waits for its answer before it counts as declined.
const ANSWER_WAIT: Duration = Duration::from_secs(300);

/// The header a client with a terminal sends.
pub const TERMINAL_HEADER: &str = "x-belay-terminal";

/// An answer: the texts typed (one per question asked), or none (declined).
pub type Answer = Option<Vec<String>>;

/// A route's id and the JSON-lines channel of its request.
type OpenRoute = (u64, mpsc::Sender<Bytes>);

#[derive(Default)]
pub struct PromptRoutes {
    next: AtomicU64,
    /// Per host, the open routes (the newest asked first).
    routes: Mutex<HashMap<String, Vec<OpenRoute>>>,
    /// Questions waiting for their answer.
    waiting: Mutex<HashMap<u64, std_mpsc::Sender<Answer>>>,
}

/// A route open for as long as its request runs.
pub struct Route {
    routes: Arc<PromptRoutes>,
    host: String,
    id: u64,
}

impl Drop for Route {
    fn drop(&mut self) {
        let mut routes = self.routes.routes.lock().expect("routes lock");
        if let Some(list) = routes.get_mut(&self.host) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                routes.remove(&self.host);
            }
        }
    }
}

impl PromptRoutes {
    /// Route `host`'s questions to `lines` (a request's JSON-lines body).
    pub fn open(self: &Arc<Self>, host: &str, lines: mpsc::Sender<Bytes>) -> Route {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        self.routes
            .lock()
            .expect("routes lock")
            .entry(host.to_string())
            .or_default()
            .push((id, lines));
        Route {
            routes: self.clone(),
            host: host.to_string(),
            id,
        }
    }

    fn route(&self, host: &str) -> Option<mpsc::Sender<Bytes>> {
        let routes = self.routes.lock().expect("routes lock");
        routes
            .get(host)?
            .iter()
            .rev()
            .map(|(_, tx)| tx)
            .find(|tx| !tx.is_closed())
            .cloned()
    }

    /// Hand an answer to the question waiting for it; false if none is.
    pub fn answer(&self, question: u64, answer: Answer) -> bool {
        let waiting = self.waiting.lock().expect("waiting lock").remove(&question);
        waiting.is_some_and(|tx| tx.send(answer).is_ok())
    }

    /// Ask `host`'s client; blocks this (connecting) thread until answered.
    fn ask(&self, host: &str, question: serde_json::Value) -> Answer {
        let route = self.route(host)?;
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = std_mpsc::channel();
        self.waiting.lock().expect("waiting lock").insert(id, tx);
        let mut event = json!({ "event": "prompt", "id": id, "host": host });
        if let (Some(e), Some(q)) = (event.as_object_mut(), question.as_object()) {
            e.extend(q.clone());
        }
        let mut line = event.to_string();
        line.push('\n');
        // (Not `blocking_send`: this runs inside the SSH runtime's
        // `block_on`. The channel has room: a submit sends little.)
        let answer = if route.try_send(Bytes::from(line)).is_ok() {
            rx.recv_timeout(ANSWER_WAIT).ok().flatten()
        } else {
            None
        };
        self.waiting.lock().expect("waiting lock").remove(&id);
        answer
    }
}

/// One host's prompter in the daemon.
pub struct RelayPrompter {
    pub host: String,
    pub routes: Arc<PromptRoutes>,
}

impl Prompter for RelayPrompter {
    fn has_terminal(&self) -> bool {
        self.routes.route(&self.host).is_some()
    }

    fn confirm_host_key(&self, host: &str, key_type: &str, fingerprint: &str) -> bool {
        let answer = self.routes.ask(
            &self.host,
            json!({"kind": "host_key", "name": host, "key_type": key_type, "fingerprint": fingerprint}),
        );
        matches!(answer.as_deref(), Some([yes]) if yes == "yes")
    }

    fn passphrase(&self, key_file: &Path) -> Option<String> {
        let answer = self.routes.ask(
            &self.host,
            json!({"kind": "passphrase", "key_file": key_file.display().to_string()}),
        )?;
        answer.into_iter().next()
    }

    fn keyboard_interactive(
        &self,
        name: &str,
        instructions: &str,
        prompts: &[(String, bool)],
    ) -> Option<Vec<String>> {
        let prompts: Vec<_> = prompts
            .iter()
            .map(|(text, echo)| json!({"text": text, "echo": echo}))
            .collect();
        let answers = self.routes.ask(
            &self.host,
            json!({"kind": "keyboard_interactive", "name": name, "instructions": instructions, "prompts": prompts}),
        )?;
        (answers.len() == prompts.len()).then_some(answers)
    }
}
