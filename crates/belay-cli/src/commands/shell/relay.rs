//! `belay shell` through the daemon: `POST /v1/shells` switches the
//! connection to belay-server's [`shell_frames`](belay_server::shell_frames)
//! and the daemon opens the session on its warm connection to the host;
//! `DELETE /v1/shells/{target}` is `--end`. This side is the terminal, as
//! in the direct path: the note and any login question (passphrase, second
//! factor) first, in the normal mode; raw mode once the daemon says the
//! session is open, restored on every way out; TERM and size sent at the
//! start, SIGWINCH a resize frame; stdin and output bytes as they come; the
//! remote exit status as belay's. Errors end belay as the same error does
//! without the daemon (the daemon sends the exit status with the message).

use std::io::Write;

use anyhow::Result;
use belay_core::engine::shell_target::ShellMode;
use belay_server::api::shells::UPGRADE;
use belay_server::client::Upgraded;
use belay_server::shell_frames::{FromDaemon, ToDaemon};
use belay_server::{Client, ClientError};
use belay_ssh::PtySpec;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{STDIN, stdin_chunks};
use crate::daemon;
use crate::terminal::{self, RawMode, Signal, Signals};

/// What `DELETE /v1/shells/{target}` answers.
#[derive(Deserialize)]
pub struct Ended {
    pub host: String,
    pub session: String,
    pub ended: Vec<String>,
}

/// `--end` through the daemon.
pub fn end(client: &Client, target: &str) -> Result<Ended> {
    Ok(client.delete(&format!("/v1/shells/{}", daemon::encode(target)))?)
}

/// Runs the shell to its end: the remote exit status (255 when the server
/// sent none, as ssh), 128+N after signal N here.
pub fn shell(
    client: &Client,
    target: &str,
    mode: ShellMode,
    command: Option<String>,
    pty: Option<PtySpec>,
) -> Result<u8> {
    let tty = pty.as_ref().map(|p| (p.cols, p.rows));
    let body = serde_json::json!({
        "target": target,
        "mode": if mode == ShellMode::New { "new" } else { "attach" },
        "command": command,
        "pty": pty.map(|p| serde_json::json!({
            "term": p.term,
            "cols": p.cols,
            "rows": p.rows,
            "modes": p.modes,
        })),
    });
    client.block_on(async {
        let io = client
            .upgrade("/v1/shells", &body, daemon::terminal_headers(), UPGRADE)
            .await?;
        session(client, io, tty).await
    })
}

/// The daemon's frames, read by their own task (a frame read is not
/// cancel-safe). `Err`: the connection broke or carried something else.
fn frames(mut from: tokio::io::ReadHalf<Upgraded>) -> mpsc::Receiver<Result<FromDaemon, String>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let frame = match FromDaemon::read(&mut from).await {
                Ok(Some(f)) => Ok(f),
                Ok(None) => Err("went away mid-shell".to_string()),
                Err(e) => Err(format!("broke the shell's stream: {e}")),
            };
            let last = frame.is_err();
            if tx.send(frame).await.is_err() || last {
                break;
            }
        }
    });
    rx
}

/// Our frames, written in order by one task.
fn writer(mut to: tokio::io::WriteHalf<Upgraded>) -> mpsc::Sender<ToDaemon> {
    let (tx, mut rx) = mpsc::channel::<ToDaemon>(16);
    tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if frame.write(&mut to).await.is_err() {
                break;
            }
        }
    });
    tx
}

fn failed(message: String, exit: u8) -> anyhow::Error {
    ClientError::Api {
        kind: "failed".into(),
        message,
        exit,
    }
    .into()
}

fn gone(client: &Client, why: String) -> anyhow::Error {
    ClientError::Unavailable {
        socket: client.socket().display().to_string(),
        message: why,
    }
    .into()
}

/// `tty`: the size sent with the request, when stdin is a terminal.
async fn session(client: &Client, io: Upgraded, tty: Option<(u32, u32)>) -> Result<u8> {
    let mut signals = Signals::install()
        .map_err(|e| anyhow::anyhow!("belay shell: cannot watch signals: {e}"))?;
    let (from, to) = tokio::io::split(io);
    let mut frames = frames(from);
    let to = writer(to);
    // Until the session is open: the note, the login's questions.
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(Ok(FromDaemon::Opened)) => break,
                Some(Ok(FromDaemon::Note(note))) => {
                    eprintln!("belay: {}", belay_ssh::terminal_safe(&note));
                }
                Some(Ok(FromDaemon::Prompt(question))) => daemon::answer_prompt(client, &question)?,
                Some(Ok(FromDaemon::Failed { message, exit })) => return Err(failed(message, exit)),
                Some(Ok(other)) => {
                    return Err(gone(client, format!("sent {other:?} before the shell opened")));
                }
                Some(Err(why)) => return Err(gone(client, why)),
                None => return Err(gone(client, "went away mid-shell".into())),
            },
            signal = signals.next() => match signal {
                Signal::Terminate(sig) => return Ok(128 + sig as u8),
                Signal::Resize => {}
            },
        }
    }
    // Raw only now: a question while connecting was answered in the
    // normal mode. The guard restores the terminal on every return below.
    let _raw = match tty {
        Some(_) => Some(
            RawMode::enable(STDIN)
                .map_err(|e| anyhow::anyhow!("cannot put the terminal in raw mode: {e}"))?,
        ),
        None => None,
    };
    // A resize while the session opened.
    if let Some(sent) = tty {
        let now = terminal::size(STDIN);
        if now != sent {
            let _ = to
                .send(ToDaemon::Resize {
                    cols: now.0,
                    rows: now.1,
                })
                .await;
        }
    }
    let stdin = to.clone();
    tokio::spawn(async move {
        let mut chunks = stdin_chunks();
        while let Some(bytes) = chunks.recv().await {
            if stdin.send(ToDaemon::Stdin(bytes)).await.is_err() {
                return;
            }
        }
        let _ = stdin.send(ToDaemon::Eof).await;
    });
    let mut stdout = std::io::stdout().lock();
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(Ok(FromDaemon::Stdout(b))) => {
                    let _ = stdout.write_all(&b).and_then(|_| stdout.flush());
                }
                Some(Ok(FromDaemon::Stderr(b))) => {
                    let _ = std::io::stderr().write_all(&b);
                }
                Some(Ok(FromDaemon::Ended(status))) => {
                    return Ok(status.map_or(255, |s| (s & 0xff) as u8));
                }
                Some(Ok(FromDaemon::Failed { message, exit })) => return Err(failed(message, exit)),
                Some(Ok(other)) => {
                    return Err(gone(client, format!("sent {other:?} during the shell")));
                }
                Some(Err(why)) => return Err(gone(client, why)),
                None => return Err(gone(client, "went away mid-shell".into())),
            },
            signal = signals.next() => match signal {
                Signal::Resize => {
                    if tty.is_some() {
                        let (cols, rows) = terminal::size(STDIN);
                        let _ = to.send(ToDaemon::Resize { cols, rows }).await;
                    }
                }
                Signal::Terminate(sig) => return Ok(128 + sig as u8),
            },
        }
    }
}
