//! `POST /v1/shells`: `belay shell` through the daemon's warm connection.
//!
//! The request is JSON ([`ShellRequest`]) with `Connection: upgrade`,
//! `Upgrade: belay-shell`. The daemon resolves the target (a job or a
//! host, as [`belay_core::engine::shell_target`] does for the CLI) and
//! opens the SSH session on its pooled connection *before* answering, so a
//! bad target or an SSH failure is an ordinary error document. Then it
//! answers `101 Switching Protocols` (with `x-belay-note` when the job has
//! ended) and the connection carries [`crate::shell_frames`] both ways
//! until the remote side ends (its exit status is the last frame) or the
//! client goes away (the SSH channel is closed: the remote side is hung
//! up, as when a terminal closes; a tmux shell lives on).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use belay_core::CoreError;
use belay_core::engine::shell_target::ShellMode;
use belay_core::transport::ssh::{map_error, runtime};
use belay_ssh::{Interactive, PtySpec, SessionEvent, SessionRequest};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{ApiError, blocking};
use crate::shell_frames::{FromDaemon, ToDaemon};
use crate::state::Shared;

/// The upgrade token a client must ask for.
pub const UPGRADE: &str = "belay-shell";

/// The ended-job note, when there is one.
pub const NOTE_HEADER: &str = "x-belay-note";

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
    let reference = asked.target.clone();
    let (target, client) = blocking(&state, move |engine| {
        let target = engine.shell_target(&reference)?;
        let client = engine.hosts().ssh(&target.host).client().clone();
        Ok((target, client))
    })
    .await?;
    let session_request = SessionRequest {
        pty: asked.pty.map(|p| PtySpec {
            term: p.term,
            cols: p.cols,
            rows: p.rows,
            modes: p.modes,
        }),
        command: Some(target.remote_command(mode, asked.command.as_deref())),
    };
    // Opened on the SSH runtime, where the pooled connection lives (a
    // reconnect spawns its tasks there).
    let host = target.host.clone();
    let session = runtime()
        .spawn(async move { client.open_interactive(&session_request).await })
        .await
        .map_err(|e| ApiError::internal(format!("opening the shell: {e}")))?
        .map_err(|e| ApiError::from(CoreError::Transport(map_error(&host, e))))?;
    let note = asked
        .command
        .is_none()
        .then(|| target.ended_note())
        .flatten();
    // The session keeps the daemon from its idle exit while it lasts.
    let busy = state.busy();
    tokio::spawn(async move {
        let _busy = busy;
        match on_upgrade.await {
            Ok(upgraded) => pump(TokioIo::new(upgraded), session, &host).await,
            Err(e) => tracing::info!(%host, error = %e, "a shell client left before the upgrade"),
        }
    });
    let mut response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, UPGRADE);
    if let Some(note) = note.and_then(|n| header::HeaderValue::from_str(&n).ok()) {
        response = response.header(NOTE_HEADER, note);
    }
    response
        .body(axum::body::Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Carries frames between the client and the SSH session until either
/// side ends.
async fn pump<S>(io: S, session: Interactive, host: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut from_client, mut to_client) = tokio::io::split(io);
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
                    Err(e) => (FromDaemon::Failed(map_error(host, e).to_string()), true),
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
