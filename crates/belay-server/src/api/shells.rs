//! `POST /v1/shells`: `belay shell` through the daemon's warm connection;
//! `DELETE /v1/shells/{target}`: `belay shell --end`.
//!
//! The request is JSON ([`ShellRequest`]) with `Connection: upgrade`,
//! `Upgrade: belay-shell`. The daemon resolves the target (a job or a
//! host, as [`belay_core::engine::shell_target`] does for the CLI) before
//! answering, so a bad target is an ordinary error document. Then it
//! answers `101 Switching Protocols` and the connection carries
//! [`crate::shell_frames`] both ways: the ended-job note, then the SSH
//! session is opened on the pooled connection — a question its login asks
//! (passphrase, second factor) goes to this client when it said it has a
//! terminal (`x-belay-terminal: 1`), as a submit's does — then `opened`,
//! the session's bytes, and its exit status as the last frame; or a
//! failure (the message and the CLI's exit status, as without the daemon).
//! A client that goes away closes the SSH channel (the remote side is hung
//! up, as when a terminal closes; a tmux shell lives on).

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use belay_core::CoreError;
use belay_core::engine::shell_target::{ShellMode, ShellTarget};
use belay_core::transport::ssh::{map_error, runtime};
use belay_ssh::{Client, Interactive, PtySpec, SessionEvent, SessionRequest, SshError};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{ApiError, blocking};
use crate::prompts::PromptRoutes;
use crate::shell_frames::{FromDaemon, ToDaemon};
use crate::state::Shared;

/// The upgrade token a client must ask for.
pub const UPGRADE: &str = "belay-shell";

#[derive(Deserialize)]
pub struct ShellRequest {
    /// A job (id, prefix, name) or a host.
    pub target: String,
    /// `attach` (default) or `new`.
    #[serde(default)]
    pub mode: Option<String>,
    /// A command instead of an interactive shell.
    #[serde(default)]
    pub command: Option<String>,
    /// The client's terminal; absent: plain pipes.
    #[serde(default)]
    pub pty: Option<PtyRequest>,
}

#[derive(Deserialize)]
pub struct PtyRequest {
    pub term: String,
    pub cols: u32,
    pub rows: u32,
    #[serde(default)]
    pub modes: Vec<(u8, u32)>,
}

pub async fn open(State(state): State<Shared>, mut request: Request) -> Result<Response, ApiError> {
    let terminal = request
        .headers()
        .get(crate::prompts::TERMINAL_HEADER)
        .is_some_and(|v| v == "1");
    let on_upgrade = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
        .filter(|_| {
            request
                .headers()
                .get(header::UPGRADE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case(UPGRADE))
        })
        .ok_or_else(|| {
            ApiError::bad_input(format!(
                "POST /v1/shells needs an HTTP/1.1 upgrade (Connection: upgrade, Upgrade: {UPGRADE})"
            ))
        })?;
    let body = axum::body::to_bytes(request.into_body(), 64 * 1024)
        .await
        .map_err(|e| ApiError::bad_input(format!("reading the request: {e}")))?;
    let asked: ShellRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_input(format!("a shell request: {e}")))?;
    let mode = match asked.mode.as_deref() {
        None | Some("attach") => ShellMode::Attach,
        Some("new") => ShellMode::New,
        Some(other) => {
            return Err(ApiError::bad_input(format!(
                "shell mode '{other}' (attach or new)"
            )));
        }
    };
    let (target, client, node_note) = resolve(&state, asked.target.clone()).await?;
    let session_request = SessionRequest {
        pty: asked.pty.map(|p| PtySpec {
            term: p.term,
            cols: p.cols,
            rows: p.rows,
            modes: p.modes,
        }),
        command: Some(target.remote_command(mode, asked.command.as_deref())),
    };
    let ended_note = asked
        .command
        .is_none()
        .then(|| target.ended_note())
        .flatten();
    let notes: Vec<String> = node_note.into_iter().chain(ended_note).collect();
    let host = target.host.clone();
    let prompts = terminal.then(|| state.prompts.clone());
    // The session keeps the daemon from its idle exit while it lasts.
    let busy = state.busy();
    tokio::spawn(async move {
        let _busy = busy;
        match on_upgrade.await {
            Ok(upgraded) => {
                let (from_client, mut to_client) = tokio::io::split(TokioIo::new(upgraded));
                for note in notes {
                    if FromDaemon::Note(note).write(&mut to_client).await.is_err() {
                        return;
                    }
                }
                let Some(session) =
                    open_session(client, session_request, &host, prompts, &mut to_client).await
                else {
                    return;
                };
                pump(from_client, to_client, session, &host).await
            }
            Err(e) => tracing::info!(%host, error = %e, "a shell client left before the upgrade"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, UPGRADE)
        .body(axum::body::Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `DELETE /v1/shells/{target}`: end the target's persistent (tmux)
/// sessions; answers `{"host", "session", "ended": [names]}`.
pub async fn end(
    State(state): State<Shared>,
    Path(reference): Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let (target, client, _) = resolve(&state, reference).await?;
    let script = target.remote_command(ShellMode::End, None);
    let out = on_ssh_runtime(move || async move { client.exec(&script, b"").await })
        .await
        .and_then(|r| r.map_err(|e| transport(&target.host, e)))?;
    let ended: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    Ok(axum::Json(serde_json::json!({
        "host": target.host,
        "session": target.session_name(),
        "ended": ended,
    })))
}

/// The target and the pooled client of its host (a live Slurm job's
/// compute node where it takes SSH), with a line saying why not when the
/// node was tried and refused.
async fn resolve(
    state: &Shared,
    reference: String,
) -> Result<(ShellTarget, Arc<Client>, Option<String>), ApiError> {
    blocking(state, move |engine| {
        let target = engine.shell_target(&reference)?;
        Ok(target.connect(engine.hosts()))
    })
    .await
}

fn transport(host: &str, e: SshError) -> ApiError {
    ApiError::from(CoreError::Transport(map_error(host, e)))
}

/// Runs SSH work as the engine does: on a blocking thread of its own that
/// enters the SSH runtime, where the pooled connection lives (a reconnect
/// spawns its tasks there). Not as a task *on* that runtime: a login that
/// waits for a typed passphrase would stall every host's I/O.
async fn on_ssh_runtime<T, F, Fut>(work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    tokio::task::spawn_blocking(move || runtime().block_on(work()))
        .await
        .map_err(|e| ApiError::internal(format!("the SSH worker failed: {e}")))
}

/// Opens the SSH session, relaying its login's questions to the client
/// (when it has a terminal), then says `opened`; or says why not. `None`:
/// nothing more to do (failed, or the client left).
async fn open_session<W>(
    client: Arc<Client>,
    request: SessionRequest,
    host: &str,
    prompts: Option<Arc<PromptRoutes>>,
    to_client: &mut W,
) -> Option<Interactive>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    let (questions_tx, mut questions) = mpsc::channel::<Bytes>(8);
    // This host's questions come here while the session opens.
    let route = prompts.map(|p| p.open(host, questions_tx));
    let opening = on_ssh_runtime(move || async move { client.open_interactive(&request).await });
    tokio::pin!(opening);
    let opened = loop {
        tokio::select! {
            opened = &mut opening => break opened,
            Some(line) = questions.recv() => {
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                if FromDaemon::Prompt(text).write(to_client).await.is_err() {
                    // Gone: the question goes unanswered (declined when
                    // its wait ends); the session, if it opens, is dropped.
                    return None;
                }
            }
        }
    };
    drop(route);
    let failure = match opened.and_then(|r| r.map_err(|e| transport(host, e))) {
        Ok(session) => {
            return FromDaemon::Opened
                .write(to_client)
                .await
                .is_ok()
                .then_some(session);
        }
        Err(e) => e,
    };
    let _ = FromDaemon::Failed {
        message: failure.body.message,
        exit: failure.body.exit,
    }
    .write(to_client)
    .await;
    None
}

/// Carries frames between the client and the SSH session until either
/// side ends.
async fn pump<R, W>(mut from_client: R, mut to_client: W, session: Interactive, host: &str)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin,
{
    let (mut output, input) = session.split();
    let input = Arc::new(input);
    // The client's frames, read by their own task (a frame read is not
    // cancel-safe); the channel closes when the client goes away.
    let (tx, mut rx) = mpsc::channel::<ToDaemon>(16);
    let reader = tokio::spawn(async move {
        while let Ok(Some(frame)) = ToDaemon::read(&mut from_client).await {
            if tx.send(frame).await.is_err() {
                break;
            }
        }
    });
    loop {
        tokio::select! {
            event = output.next() => {
                let (frame, last) = match event {
                    Ok(SessionEvent::Stdout(b)) => (FromDaemon::Stdout(b), false),
                    Ok(SessionEvent::Stderr(b)) => (FromDaemon::Stderr(b), false),
                    Ok(SessionEvent::Ended(s)) => (FromDaemon::Ended(s), true),
                    Err(e) => {
                        let e = transport(host, e);
                        (FromDaemon::Failed { message: e.body.message, exit: e.body.exit }, true)
                    }
                };
                if frame.write(&mut to_client).await.is_err() || last {
                    break;
                }
            }
            frame = rx.recv() => match frame {
                Some(ToDaemon::Stdin(b)) => {
                    if input.send(&b).await.is_err() {
                        // The channel is closing: its end comes as an event.
                    }
                }
                Some(ToDaemon::Resize { cols, rows }) => {
                    let _ = input.resize(cols, rows).await;
                }
                Some(ToDaemon::Eof) => {
                    let _ = input.close_stdin().await;
                }
                None => break,
            },
        }
    }
    reader.abort();
    input.close().await;
}
