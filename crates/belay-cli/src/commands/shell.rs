//! `belay shell JOB|HOST [--new|--end] [-- CMD]`: a terminal where a job
//! runs (its directory, its environment) or on a host. belay-core decides
//! where and what runs there ([`belay_core::engine::shell_target`]); this
//! module is the terminal side: a pty session when stdin is a terminal
//! (raw mode, resizes, TERM), plain pipes for a command otherwise, and the
//! remote exit status as belay's.
//!
//! When a daemon answers, the session is opened on its warm connection
//! ([`relay`]); with `--no-daemon` (or no daemon) it opens its own
//! connection through the same engine hosts (`ssh -G` resolution,
//! known_hosts, the pool) as every other command. Either way the terminal
//! side is the same: raw mode only once the session is open (a passphrase
//! is asked in the normal mode), restored on every way out; SIGWINCH a
//! resize; the remote exit status as belay's.

mod relay;

use std::io::{Read, Write};
use std::sync::Arc;

use anyhow::Result;
use belay_core::engine::shell_target::{ShellMode, ShellTarget};
use belay_core::transport::ssh::{map_error, runtime};
use belay_ssh::{Client, InteractiveInput, PtySpec, SessionEvent, SessionRequest, SshError};

use super::{Ctx, UsageError};
use crate::cli::ShellArgs;
use crate::terminal::{self, RawMode, Signal, Signals};

const STDIN: i32 = 0;

pub fn shell(ctx: &Ctx, a: ShellArgs) -> Result<u8> {
    let command = (!a.command.is_empty()).then(|| shell_line(&a.command));
    let tty = terminal::is_terminal(STDIN);
    if !tty && command.is_none() && !a.end {
        return Err(UsageError(format!(
            "belay shell {}: stdin is not a terminal; give a command to run (belay shell {} -- CMD)",
            a.target, a.target
        ))
        .into());
    }
    let mode = if a.new {
        ShellMode::New
    } else {
        ShellMode::Attach
    };
    let pty = tty.then(pty_spec);
    if let Some(client) = ctx.daemon(true) {
        if a.end {
            let ended = relay::end(client, &a.target)?;
            print_ended(&ended.host, &ended.session, &ended.ended);
            return Ok(0);
        }
        return relay::shell(client, &a.target, mode, command, pty);
    }
    let mut engine = ctx.engine()?;
    let (target, client, note) = engine.shell_target(&a.target)?.connect(engine.hosts());
    if let Some(note) = note {
        eprintln!("belay: {note}");
    }
    if a.end {
        return end(&target, &client);
    }
    if command.is_none()
        && let Some(note) = target.ended_note()
    {
        eprintln!("belay: {note}");
    }
    let request = SessionRequest {
        pty,
        command: Some(target.remote_command(mode, command.as_deref())),
    };
    let host = target.host.clone();
    let status = runtime()
        .block_on(session(&client, &request, tty))
        .map_err(|e| map_error(&host, e))?;
    Ok(status)
}

/// This terminal as the remote pty should be: TERM, size, control keys.
fn pty_spec() -> PtySpec {
    let (cols, rows) = terminal::size(STDIN);
    PtySpec {
        term: std::env::var("TERM")
            .ok()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "xterm".into()),
        cols,
        rows,
        modes: terminal::modes(STDIN),
    }
}

/// `-- CMD`: one word is a shell line as given; several are argv, quoted.
fn shell_line(argv: &[String]) -> String {
    if argv.len() == 1 {
        return argv[0].clone();
    }
    argv.iter()
        .map(|w| belay_core::shell::quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `--end`: kill the target's tmux sessions; say which.
fn end(target: &ShellTarget, client: &Client) -> Result<u8> {
    let script = target.remote_command(ShellMode::End, None);
    let out = runtime()
        .block_on(client.exec(&script, b""))
        .map_err(|e| map_error(&target.host, e))?;
    let ended: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    print_ended(&target.host, &target.session_name(), &ended);
    Ok(0)
}

/// What `--end` did: the sessions ended (their names come from the host).
fn print_ended(host: &str, session: &str, ended: &[String]) {
    if ended.is_empty() {
        println!("no shell session of {session} on {host}");
    }
    for name in ended {
        println!("ended {} on {host}", belay_ssh::terminal_safe(name));
    }
}

/// Runs the session to its end: the remote exit status (as a byte, as a
/// shell reports it), 128+N after signal N here.
async fn session(client: &Client, request: &SessionRequest, tty: bool) -> Result<u8, SshError> {
    let mut signals = Signals::install().map_err(|e| SshError::Channel {
        host: client.alias().to_string(),
        detail: format!("cannot watch signals: {e}"),
    })?;
    let (mut output, input) = client.open_interactive(request).await?.split();
    let input = Arc::new(input);
    // Raw only once the session is open: a passphrase or host-key question
    // while connecting is answered in the normal mode.
    let _raw = match tty {
        true => Some(RawMode::enable(STDIN).map_err(|e| SshError::Channel {
            host: client.alias().to_string(),
            detail: format!("cannot put the terminal in raw mode: {e}"),
        })?),
        false => None,
    };
    tokio::spawn(forward_stdin(input.clone()));
    let mut stdout = std::io::stdout().lock();
    loop {
        tokio::select! {
            event = output.next() => match event? {
                SessionEvent::Stdout(b) => {
                    let _ = stdout.write_all(&b).and_then(|_| stdout.flush());
                }
                SessionEvent::Stderr(b) => {
                    let _ = std::io::stderr().write_all(&b);
                }
                SessionEvent::Ended(status) => {
                    // Like ssh: 255 when the server sent no status.
                    return Ok(status.map_or(255, |s| (s & 0xff) as u8));
                }
            },
            signal = signals.next() => match signal {
                Signal::Resize if tty => {
                    let (cols, rows) = terminal::size(STDIN);
                    let _ = input.resize(cols, rows).await;
                }
                Signal::Resize => {}
                Signal::Terminate(sig) => return Ok(128 + sig as u8),
            },
        }
    }
}

/// Local stdin to the remote side. At end of input the remote side sees
/// EOF.
async fn forward_stdin(input: Arc<InteractiveInput>) {
    let mut rx = stdin_chunks();
    while let Some(bytes) = rx.recv().await {
        if input.send(&bytes).await.is_err() {
            return;
        }
    }
    let _ = input.close_stdin().await;
}

/// Local stdin as it is read, from a thread (a blocking read of a terminal
/// cannot be cancelled; the thread ends with the process). The channel
/// closes at end of input.
fn stdin_chunks() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        let mut stdin = std::io::stdin().lock();
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}
