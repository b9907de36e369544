//! The CLI's side of the API: HTTP/1 over the Unix socket (hyper), one
//! short connection per request (a connect on a local socket costs less
//! than keeping one alive across a CLI's few requests).
//!
//! The CLI is synchronous; the client owns a small current-thread runtime
//! and blocks on it. Streams ([`Client::stream`]) hand each piece to the
//! caller as it arrives and check the caller's `stop` (Ctrl-C) between
//! pieces and at least every 50 ms.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon answers, or it went away mid-request.
    #[error("the belay daemon ({socket}) {message}")]
    Unavailable { socket: String, message: String },
    /// The daemon answered with an error: print `message`, exit `exit`.
    #[error("{message}")]
    Api {
        kind: String,
        message: String,
        exit: u8,
    },
    /// The daemon's answer was not what this client expects.
    #[error("the belay daemon's answer to {what} is unreadable: {message}")]
    Protocol { what: String, message: String },
}

/// The error document every route uses.
#[derive(Deserialize)]
struct ErrorDoc {
    error: ErrorFields,
}

#[derive(Deserialize)]
pub struct ErrorFields {
    pub kind: String,
    pub message: String,
    pub exit: u8,
}

impl From<ErrorFields> for ClientError {
    fn from(e: ErrorFields) -> Self {
        ClientError::Api {
            kind: e.kind,
            message: e.message,
            exit: e.exit,
        }
    }
}

pub struct Client {
    socket: PathBuf,
    runtime: tokio::runtime::Runtime,
    /// Test builds: this command's `BELAY_FAILPOINT`, carried to the
    /// daemon, where the work it is about happens.
    failpoint: Option<String>,
}

type Response = hyper::Response<hyper::body::Incoming>;

/// A connection switched to another protocol: raw bytes both ways.
pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

impl Client {
    /// A client for the daemon at `socket` (nothing is connected yet).
    pub fn new(socket: &Path) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime can be built");
        Self {
            socket: socket.to_path_buf(),
            runtime,
            failpoint: belay_core::failpoint::armed(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn unavailable(&self, message: impl std::fmt::Display) -> ClientError {
        ClientError::Unavailable {
            socket: self.socket.display().to_string(),
            message: message.to_string(),
        }
    }

    /// A request as every route takes it (the failpoint carried along).
    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Request<Full<Bytes>> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "belay");
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        if let Some(point) = &self.failpoint {
            request = request.header(crate::api::FAILPOINT_HEADER, point.as_str());
        }
        // The agent `ssh` typed here would use (a daemon started from
        // another terminal has that terminal's). A path a header cannot
        // carry (not visible ASCII) is left out: the daemon keeps its own.
        if let Some(agent) = std::env::var_os("SSH_AUTH_SOCK")
            .and_then(|a| a.into_string().ok())
            .filter(|a| !a.is_empty())
            .and_then(|a| hyper::header::HeaderValue::from_str(&a).ok())
        {
            request = request.header(crate::api::AGENT_HEADER, agent);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("a well-formed request")
    }

    /// A new connection to the socket; `upgrades`: it may switch
    /// protocols after its answer.
    async fn connect(
        &self,
        upgrades: bool,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, ClientError> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| self.unavailable(format!("does not answer: {e}")))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.unavailable(format!("refused the connection: {e}")))?;
        tokio::spawn(async move {
            let _ = match upgrades {
                true => connection.with_upgrades().await,
                false => connection.await,
            };
        });
        Ok(sender)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<Response, ClientError> {
        let mut sender = self.connect(false).await?;
        let request = self.request(method, path, body, headers);
        sender
            .send_request(request)
            .await
            .map_err(|e| self.unavailable(format!("went away: {e}")))
    }

    /// `POST path` with `body`, asking to switch the connection to
    /// `protocol` (HTTP/1.1 upgrade): the connection once switched, or the
    /// daemon's error document. Use it inside [`Client::block_on`].
    pub async fn upgrade(
        &self,
        path: &str,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
        protocol: &str,
    ) -> Result<Upgraded, ClientError> {
        let mut sender = self.connect(true).await?;
        let body = serde_json::to_vec(body).expect("request bodies serialise");
        let mut all = vec![("connection", "upgrade"), ("upgrade", protocol)];
        all.extend_from_slice(headers);
        let request = self.request(Method::POST, path, Some(body), &all);
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.unavailable(format!("went away: {e}")))?;
        let status = response.status();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            let bytes = self.whole_body(response).await?;
            parse_answer::<serde_json::Value>(status, &bytes, path)?;
            return Err(ClientError::Protocol {
                what: path.to_string(),
                message: format!("HTTP {status} where 101 Switching Protocols was asked for"),
            });
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|e| self.unavailable(format!("went away while switching protocols: {e}")))?;
        Ok(TokioIo::new(upgraded))
    }

    /// Runs `future` on this client's runtime (a conversation on an
    /// upgraded connection, say).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    async fn whole_body(&self, response: Response) -> Result<Bytes, ClientError> {
        Ok(response
            .into_body()
            .collect()
            .await
            .map_err(|e| self.unavailable(format!("went away mid-answer: {e}")))?
            .to_bytes())
    }

    /// A whole JSON answer, or the daemon's error.
    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let response = self.send(method, path, body, &[]).await?;
        let status = response.status();
        let bytes = self.whole_body(response).await?;
        parse_answer(status, &bytes, path)
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.runtime.block_on(self.json(Method::GET, path, None))
    }

    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.runtime.block_on(self.json(Method::DELETE, path, None))
    }

    pub fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).expect("request bodies serialise");
        self.runtime
            .block_on(self.json(Method::POST, path, Some(body)))
    }

    /// A streamed answer: `piece` gets each chunk of the body as it
    /// arrives (return `Break` to stop reading). `stop` is asked between
    /// pieces and every 50 ms; true ends the request (the connection is
    /// dropped, which the daemon sees). Returns whether the body ended by
    /// itself (`true`) or was stopped.
    pub fn stream(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        piece: &mut dyn FnMut(&[u8]) -> ControlFlow<()>,
        stop: &dyn Fn() -> bool,
    ) -> Result<bool, ClientError> {
        self.stream_with(method, path, body, &[], piece, stop)
    }

    /// [`Client::stream`] with extra request headers.
    pub fn stream_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
        piece: &mut dyn FnMut(&[u8]) -> ControlFlow<()>,
        stop: &dyn Fn() -> bool,
    ) -> Result<bool, ClientError> {
        let body = body.map(|b| serde_json::to_vec(b).expect("request bodies serialise"));
        self.runtime.block_on(async {
            let response = self.send(method, path, body, headers).await?;
            let status = response.status();
            if !status.is_success() {
                let bytes = self.whole_body(response).await?;
                return parse_answer::<serde_json::Value>(status, &bytes, path).map(|_| true);
            }
            let mut body = response.into_body();
            loop {
                if stop() {
                    return Ok(false);
                }
                let frame = tokio::select! {
                    frame = body.frame() => frame,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                };
                match frame {
                    None => return Ok(true),
                    Some(Err(e)) => {
                        return Err(self.unavailable(format!("went away mid-answer: {e}")));
                    }
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data()
                            && piece(&data).is_break()
                        {
                            return Ok(false);
                        }
                    }
                }
            }
        })
    }
}

fn parse_answer<T: DeserializeOwned>(
    status: StatusCode,
    bytes: &[u8],
    what: &str,
) -> Result<T, ClientError> {
    let protocol = |message: String| ClientError::Protocol {
        what: what.to_string(),
        message,
    };
    if !status.is_success() {
        let doc: ErrorDoc = serde_json::from_slice(bytes).map_err(|_| {
            protocol(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))
        })?;
        return Err(doc.error.into());
    }
    serde_json::from_slice(bytes).map_err(|e| protocol(e.to_string()))
}

/// Split a stream of JSON lines as pieces arrive.
#[derive(Default)]
pub struct JsonLines {
    pending: Vec<u8>,
}

impl JsonLines {
    /// Feed a piece; returns the complete lines parsed so far.
    pub fn feed<T: DeserializeOwned>(&mut self, piece: &[u8]) -> Result<Vec<T>, String> {
        self.pending.extend_from_slice(piece);
        let mut out = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            out.push(serde_json::from_slice(&line).map_err(|e| e.to_string())?);
        }
        Ok(out)
    }
}

pub use hyper::Method as HttpMethod;

/// One piece of a framed output body (`GET /v1/jobs/{job}/output`).
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// The job's stdout bytes.
    Stdout(Vec<u8>),
    /// Its stderr bytes.
    Stderr(Vec<u8>),
    /// The host stopped answering; the stream resumes when it does.
    Retrying(String),
    /// The job once every byte is out (`with_job=true`): JSON as
    /// `GET /v1/jobs/{job}` answers.
    Job(Vec<u8>),
}

/// Splits a framed output body (`O|E <len>\n<bytes>`, `W <len>\n<text>`,
/// `J <len>\n<json>`)
/// as pieces arrive, whatever their boundaries.
#[derive(Default)]
pub struct FrameReader {
    pending: Vec<u8>,
}

impl FrameReader {
    pub fn feed(&mut self, piece: &[u8]) -> Result<Vec<Frame>, String> {
        self.pending.extend_from_slice(piece);
        let mut out = Vec::new();
        while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
            let head = std::str::from_utf8(&self.pending[..nl]).map_err(|e| e.to_string())?;
            let (tag, len) = head
                .split_once(' ')
                .ok_or_else(|| format!("bad frame header {head:?}"))?;
            let tag = tag.to_string();
            let len: usize = len
                .parse()
                .map_err(|_| format!("bad frame length {head:?}"))?;
            if self.pending.len() < nl + 1 + len {
                break;
            }
            let payload = self.pending[nl + 1..nl + 1 + len].to_vec();
            self.pending.drain(..nl + 1 + len);
            out.push(match tag.as_str() {
                "O" => Frame::Stdout(payload),
                "E" => Frame::Stderr(payload),
                "W" => Frame::Retrying(String::from_utf8_lossy(&payload).into_owned()),
                "J" => Frame::Job(payload),
                other => return Err(format!("unknown frame {other:?}")),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_whatever_the_piece_boundaries() {
        let stream = b"O 3\nabcW 5\nhost?E 0\nO 2\n\nxJ 2\n{}";
        for cut in 0..stream.len() {
            let mut r = FrameReader::default();
            let mut frames = r.feed(&stream[..cut]).unwrap();
            frames.extend(r.feed(&stream[cut..]).unwrap());
            assert_eq!(
                frames,
                [
                    Frame::Stdout(b"abc".to_vec()),
                    Frame::Retrying("host?".into()),
                    Frame::Stderr(Vec::new()),
                    Frame::Stdout(b"\nx".to_vec()),
                    Frame::Job(b"{}".to_vec()),
                ],
                "cut at {cut}"
            );
        }
    }
}
