//! The byte framing of a shell through the daemon (`POST /v1/shells`,
//! after the HTTP/1.1 upgrade): each frame is a kind byte, a big-endian
//! u32 length, and that many bytes. Both directions use it; the kinds
//! differ ([`ToDaemon`], [`FromDaemon`]). Small and fixed, so any client
//! can speak it.
//!
//! The daemon's side of one shell, in order: at most one [`FromDaemon::Note`]
//! (the job has ended or is held), any number of [`FromDaemon::Prompt`]s
//! while the SSH connection logs in, then [`FromDaemon::Opened`] (the client
//! may now put its terminal in raw mode) followed by output and one
//! [`FromDaemon::Ended`] — or one [`FromDaemon::Failed`] at any point.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The most one frame may carry (a client's or daemon's bug must not make
/// the other side allocate without bound).
pub const MAX_FRAME: usize = 1 << 20;

/// What the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToDaemon {
    /// Bytes for the remote stdin (kind 0).
    Stdin(Vec<u8>),
    /// The terminal's new size (kind 1: cols, rows as u32 BE).
    Resize { cols: u32, rows: u32 },
    /// End of local input (kind 2, empty).
    Eof,
}

/// What the daemon sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromDaemon {
    /// Remote output (kind 0; with a pty, stdout and stderr together).
    Stdout(Vec<u8>),
    /// Remote stderr (kind 1; only without a pty).
    Stderr(Vec<u8>),
    /// The session ended with this status (kind 2: i32 BE; -1: none sent).
    Ended(Option<i32>),
    /// The session could not open, or broke: the message and the exit
    /// status the CLI ends with, as for the same error without the daemon
    /// (kind 3: the status byte, then the UTF-8 message).
    Failed { message: String, exit: u8 },
    /// A question of the host's connection (passphrase, second factor,
    /// host key) for the client's terminal: the JSON document of the
    /// submit stream's `prompt` event (kind 4); the answer goes to
    /// `POST /v1/prompts/{id}`.
    Prompt(String),
    /// The SSH session is open (kind 5, empty).
    Opened,
    /// A line to show before the session (kind 6, UTF-8): the job has
    /// ended, or is held for debugging.
    Note(String),
}

async fn write_frame(
    w: &mut (impl AsyncWrite + Unpin),
    kind: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(5 + payload.len());
    frame.push(kind);
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    w.write_all(&frame).await?;
    w.flush().await
}

/// Reads one frame: `None` at a clean end of the stream.
async fn read_frame(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut head[1..]).await?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a shell frame of {len} bytes (at most {MAX_FRAME})"),
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some((head[0], payload)))
}

fn invalid(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

fn two_u32(p: &[u8]) -> Option<(u32, u32)> {
    let a = u32::from_be_bytes(p.get(0..4)?.try_into().ok()?);
    let b = u32::from_be_bytes(p.get(4..8)?.try_into().ok()?);
    Some((a, b))
}

impl ToDaemon {
    pub async fn write(&self, w: &mut (impl AsyncWrite + Unpin)) -> std::io::Result<()> {
        match self {
            ToDaemon::Stdin(b) => write_frame(w, 0, b).await,
            ToDaemon::Resize { cols, rows } => {
                let mut p = cols.to_be_bytes().to_vec();
                p.extend_from_slice(&rows.to_be_bytes());
                write_frame(w, 1, &p).await
            }
            ToDaemon::Eof => write_frame(w, 2, &[]).await,
        }
    }

    pub async fn read(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<ToDaemon>> {
        let Some((kind, p)) = read_frame(r).await? else {
            return Ok(None);
        };
        Ok(Some(match kind {
            0 => ToDaemon::Stdin(p),
            1 => {
                let (cols, rows) =
                    two_u32(&p).ok_or_else(|| invalid("a short resize frame".into()))?;
                ToDaemon::Resize { cols, rows }
            }
            2 => ToDaemon::Eof,
            k => return Err(invalid(format!("unknown shell frame kind {k}"))),
        }))
    }
}

impl FromDaemon {
    pub async fn write(&self, w: &mut (impl AsyncWrite + Unpin)) -> std::io::Result<()> {
        match self {
            FromDaemon::Stdout(b) => write_frame(w, 0, b).await,
            FromDaemon::Stderr(b) => write_frame(w, 1, b).await,
            FromDaemon::Ended(s) => write_frame(w, 2, &s.unwrap_or(-1).to_be_bytes()).await,
            FromDaemon::Failed { message, exit } => {
                let mut p = vec![*exit];
                p.extend_from_slice(message.as_bytes());
                write_frame(w, 3, &p).await
            }
            FromDaemon::Prompt(json) => write_frame(w, 4, json.as_bytes()).await,
            FromDaemon::Opened => write_frame(w, 5, &[]).await,
            FromDaemon::Note(line) => write_frame(w, 6, line.as_bytes()).await,
        }
    }

    pub async fn read(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<FromDaemon>> {
        let Some((kind, p)) = read_frame(r).await? else {
            return Ok(None);
        };
        Ok(Some(match kind {
            0 => FromDaemon::Stdout(p),
            1 => FromDaemon::Stderr(p),
            2 => {
                let s = i32::from_be_bytes(
                    p.get(0..4)
                        .and_then(|b| b.try_into().ok())
                        .ok_or_else(|| invalid("a short end frame".into()))?,
                );
                FromDaemon::Ended((s >= 0).then_some(s))
            }
            3 => {
                let (&exit, message) = p
                    .split_first()
                    .ok_or_else(|| invalid("a failure frame without a status".into()))?;
                FromDaemon::Failed {
                    message: String::from_utf8_lossy(message).into_owned(),
                    exit,
                }
            }
            4 => FromDaemon::Prompt(String::from_utf8_lossy(&p).into_owned()),
            5 => FromDaemon::Opened,
            6 => FromDaemon::Note(String::from_utf8_lossy(&p).into_owned()),
            k => return Err(invalid(format!("unknown shell frame kind {k}"))),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_both_ways() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let to = [
            ToDaemon::Stdin(b"ls\r".to_vec()),
            ToDaemon::Resize {
                cols: 120,
                rows: 40,
            },
            ToDaemon::Eof,
        ];
        for f in &to {
            f.write(&mut a).await.unwrap();
        }
        let from = [
            FromDaemon::Stdout(b"x".to_vec()),
            FromDaemon::Stderr(vec![]),
            FromDaemon::Ended(Some(5)),
            FromDaemon::Ended(None),
            FromDaemon::Failed {
                message: "link lost".into(),
                exit: 1,
            },
            FromDaemon::Prompt(r#"{"id":3}"#.into()),
            FromDaemon::Opened,
            FromDaemon::Note("job j1 ended".into()),
        ];
        for f in &from {
            f.write(&mut a).await.unwrap();
        }
        drop(a);
        for f in &to {
            assert_eq!(ToDaemon::read(&mut b).await.unwrap().as_ref(), Some(f));
        }
        for f in &from {
            assert_eq!(FromDaemon::read(&mut b).await.unwrap().as_ref(), Some(f));
        }
        assert_eq!(FromDaemon::read(&mut b).await.unwrap(), None);
    }
}
