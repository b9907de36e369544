//! A persistent remote `/bin/sh` per channel, so that protocol commands do
//! not pay the user's login-shell start-up (a `.bashrc` loading modules can
//! take a second) on every call.
//!
//! The exec request is `exec /bin/sh -c 'LOOP'` (the login shell runs once,
//! when the channel opens). LOOP announces how it takes requests on its
//! ready line, and answers each the same way:
//!
//! ```text
//! shell  → client: <ready marker> words|head\n
//! client → shell:  __belay_q <sentinel> '<script>'\n           (words)
//!                  <sentinel> <length>\n<length bytes of script> (head)
//! shell  → client: <script stdout><sentinel> <status> <stderr length>\n<stderr bytes>
//! ```
//!
//! **Words** (where the host's `/bin/sh` reads its input in blocks: dash,
//! ash): the loop sources its own stdin (`. /dev/stdin`), so a request is
//! a command its parser reads, with the script as one single-quoted word
//! — nothing in it is expanded, and a script of any text (heredocs,
//! quotes, a syntax error) cannot reach the loop's parser, since the word
//! ends only at its closing quote. The script runs as `( eval "$SCRIPT" )
//! </dev/null 2>ERRFILE`: no process but the subshell's fork.
//! **Head** (bash, which reads a pipe a byte at a time, and zsh; a stdin
//! that cannot be opened again, as a socket): the script is written to a
//! private temp file with `head -c` (which, like the `read` builtin, never
//! reads past what it was asked for) and run as `( . FILE ) </dev/null
//! 2>ERRFILE`, so a request costs that fork plus `head`.
//! Either way the script runs in a subshell, so `exit`, `cd`, `set -e`
//! and traps cannot hurt the loop. An empty stderr costs no extra process
//! (`[ -s ]` is a builtin).
//!
//! A stream request (`__belay_x <token> '<script>'`, or a head request
//! whose sentinel is `stream-<random>`) turns the shell into a data stream
//! ([`crate::ExecStream`]): the shell echoes the token (so stray output
//! queued before it is told apart from the stream), runs the script (in a
//! subshell: a fork, no new `sh` to exec) with the channel's stdin and
//! stdout, and exits with the script's status — so a file transfer or an
//! output stream does not pay the login shell's start-up either. Nothing is
//! sent after a stream request until its token is back: a shell that reads
//! in blocks has then taken nothing of the stream's input.
//!
//! The sentinel is 128 random bits, fresh per request, so script output
//! cannot forge the end of a frame. Background processes a script starts
//! must redirect their standard streams, or their late output would be
//! read as part of the next request's stdout.
//!
//! The loop's private directory is `$__belay_d` in every request. At its
//! start the loop writes two facts of its host there, from a background
//! subshell that delays nothing: its pid namespace (`pidns`, by `stat`)
//! and the boot time (`btime`, from `/proc/stat`: builtins for a few CPUs'
//! lines, one `sed` past ten). A request that starts a job, or asks whether
//! one lives, reads them with a builtin instead of forking a `stat` or
//! reading `/proc/stat` byte by byte (every request runs in that same
//! namespace, on that same boot). A line without its newline is still
//! being written; no file: not there yet, or no GNU `stat` / no `/proc`.
//!
//! Everything read from the host is bounded ([`ReplyLimits`]): login-shell
//! chatter before the ready marker, a script's stdout and stderr, the
//! status line (and, in [`crate::ExecStream`], output held while a write
//! waits). A host that sends more is a protocol error naming the host
//! and the bound, never an allocation without end.

use std::time::Duration;

use russh::ChannelMsg;
use russh::client::{Handle, Msg};

use crate::error::SshError;
use crate::sanitize::terminal_safe_bytes;
use crate::session::{HopHandler, LinkMonitor};

/// Most login-shell chatter (motd, `.bashrc` output) accepted before the
/// persistent shell's ready marker, or stray output before a stream's
/// token.
pub(crate) const MAX_CHATTER: usize = 1024 * 1024;
/// Longest status line (`<status> <stderr length>`) after a sentinel.
const MAX_STATUS_LINE: usize = 64;

/// The most a host may send in reply to one script or command, so that a
/// hostile or broken host cannot exhaust local memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Bytes of stdout (default 256 MiB: a remote tree listing of about
    /// two million entries; output reads are chunked at 4 MiB).
    pub stdout: usize,
    /// Bytes of stderr (default 16 MiB).
    pub stderr: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits {
            stdout: 256 * 1024 * 1024,
            stderr: 16 * 1024 * 1024,
        }
    }
}

/// `1 MiB`, `256 MiB`, `64 bytes`: a bound, for messages.
fn bytes(n: usize) -> String {
    if n >= 1024 * 1024 && n.is_multiple_of(1024 * 1024) {
        format!("{} MiB", n / (1024 * 1024))
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

/// What a script or command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptOutput {
    /// Exit status; 128+N when killed by signal N (as a shell reports it).
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    if getrandom::fill(&mut b).is_err() {
        // Extremely unlikely; fall back to time + address entropy, still
        // unpredictable enough for a framing marker (not a secret).
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(31);
        }
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const LOOP: &str = concat!(
    "__belay_d=$(mktemp -d \"${TMPDIR:-/tmp}/belay-sh.XXXXXX\") || exit 97; ",
    "trap \"rm -rf \\\"$__belay_d\\\"\" 0; ",
    "(stat -L -c %i /proc/$$/ns/pid > \"$__belay_d/pidns\"; ",
    "n=0; while read -r k v; do case $k in ",
    "btime) echo \"$v\" > \"$__belay_d/btime\"; exit;; ",
    "cpu*) n=$((n + 1)); [ $n -gt 10 ] && exec sed -n \"s/^btime //p\" /proc/stat > \"$__belay_d/btime\";; ",
    "esac; done < /proc/stat) 2>/dev/null & ",
    // A request's end: the sentinel, the status, stderr's length, stderr.
    "__belay_end() { if [ -s \"$__belay_d/e\" ]; then ",
    "printf \"%s %s %s\\n\" \"$__belay_s\" \"$1\" \"$(wc -c < \"$__belay_d/e\")\"; ",
    "cat \"$__belay_d/e\"; ",
    "else printf \"%s %s 0\\n\" \"$__belay_s\" \"$1\"; fi; }; ",
    // Word framing: a request is one command, `__belay_q SENTINEL 'SCRIPT'`
    // (a stream's `__belay_x TOKEN 'SCRIPT'`), read by this shell's own
    // parser; the script is run by `eval` in a subshell.
    "__belay_q() { __belay_s=$1; __belay_t=$2; shift 2; ",
    "( eval \"$__belay_t\" ) < /dev/null 2> \"$__belay_d/e\"; __belay_end $?; }; ",
    "__belay_x() { printf \"%s\\n\" \"$1\"; __belay_t=$2; shift 2; ( eval \"$__belay_t\" ); exit $?; }; ",
    "if [ \"$2\" = auto ] && [ -z \"${BASH_VERSION-}${ZSH_VERSION-}\" ] && (: < /dev/stdin) 2>/dev/null; then ",
    "printf \"%s words\\n\" \"$1\"; . /dev/stdin; exit; fi; ",
    // Head framing: `SENTINEL LENGTH\n` and the script's bytes.
    "printf \"%s head\\n\" \"$1\"; ",
    "while IFS=\" \" read -r __belay_s __belay_n; do ",
    "head -c \"$__belay_n\" > \"$__belay_d/s\" || exit 98; ",
    "case $__belay_s in stream-*) printf \"%s\\n\" \"$__belay_s\"; ( . \"$__belay_d/s\" ); exit $?;; esac; ",
    "( . \"$__belay_d/s\" ) < /dev/null 2> \"$__belay_d/e\"; ",
    "__belay_end $?; ",
    "done"
);

/// One persistent shell on its own channel.
pub(crate) struct Shell {
    channel: russh::Channel<Msg>,
    buf: Vec<u8>,
    /// The loop's own stderr (diagnostics if it dies).
    shell_err: Vec<u8>,
    permit: tokio::sync::OwnedSemaphorePermit,
    limits: ReplyLimits,
    /// Requests go as commands the shell parses (`words`), else as a
    /// length and the script's bytes (`head`).
    words: bool,
}

/// How requests reach a persistent shell (see the module header).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ShellFraming {
    /// As commands the host's `/bin/sh` parses itself, where it reads its
    /// input in blocks (dash, ash: not bash, which reads a pipe a byte at
    /// a time); else as `head`.
    #[default]
    Auto,
    /// Always a length line and the script's bytes, written by `head -c`
    /// (what `Auto` falls back to; tests run both).
    Head,
}

enum Failure {
    /// The channel or link ended.
    Closed(String),
    /// The shell misbehaved.
    Protocol(String),
    /// The host ended or refused `/bin/sh` before it started.
    NoShell(String),
    /// The host sent more than a [`ReplyLimits`] bound allows.
    Overflow(String),
}

impl Shell {
    /// Opens the channel and starts the loop; returns when it is ready.
    pub(crate) async fn open(
        handle: &Handle<HopHandler>,
        permit: tokio::sync::OwnedSemaphorePermit,
        host: &str,
        monitor: &LinkMonitor,
        deadline: Duration,
        limits: ReplyLimits,
        framing: ShellFraming,
    ) -> Result<Shell, SshError> {
        let fut = async {
            let channel = handle
                .channel_open_session()
                .await
                .map_err(|e| Failure::Closed(format!("cannot open a session channel: {e}")))?;
            let ready = format!("BELAY-READY-{}", random_hex(8));
            let wanted = match framing {
                ShellFraming::Auto => "auto",
                ShellFraming::Head => "head",
            };
            channel
                .exec(
                    true,
                    format!("exec /bin/sh -c '{LOOP}' belay-sh {ready} {wanted}"),
                )
                .await
                .map_err(|e| Failure::Closed(e.to_string()))?;
            let mut sh = Shell {
                channel,
                buf: Vec::new(),
                shell_err: Vec::new(),
                permit,
                limits,
                words: false,
            };
            let marker = format!("{ready} ");
            let pos = match sh
                .read_until(marker.as_bytes(), MAX_CHATTER, "before the shell started")
                .await
            {
                Ok(p) => p,
                Err(Failure::Overflow(d)) => return Err(Failure::Overflow(d)),
                // The shell never started: say what the host printed
                // instead ("This service allows sftp connections only.").
                Err(Failure::Closed(d) | Failure::Protocol(d) | Failure::NoShell(d)) => {
                    return Err(Failure::NoShell(format!("{d}{}", sh.printed())));
                }
            };
            // Anything before the marker is login-shell chatter: drop it.
            sh.buf.drain(..pos + marker.len());
            let nl = sh
                .read_until(b"\n", MAX_STATUS_LINE, "in the shell's ready line")
                .await?;
            sh.words = match &sh.buf[..nl] {
                b"words" => true,
                b"head" => false,
                other => {
                    return Err(Failure::Protocol(format!(
                        "the shell announced an unknown framing '{}'",
                        terminal_safe_bytes(other)
                    )));
                }
            };
            sh.buf.drain(..nl + 1);
            Ok(sh)
        };
        match tokio::time::timeout(deadline, fut).await {
            Ok(Ok(sh)) => Ok(sh),
            Ok(Err(Failure::Closed(d))) => {
                if monitor.is_down() {
                    Err(monitor.error(host, d).await)
                } else {
                    Err(SshError::Channel {
                        host: host.to_string(),
                        detail: format!("starting /bin/sh: {d}"),
                    })
                }
            }
            Ok(Err(Failure::Protocol(d) | Failure::Overflow(d))) => Err(SshError::Protocol {
                host: host.to_string(),
                detail: d,
            }),
            Ok(Err(Failure::NoShell(d))) => {
                if monitor.is_down() {
                    Err(monitor.error(host, d).await)
                } else {
                    Err(SshError::NoShell {
                        host: host.to_string(),
                        detail: d,
                    })
                }
            }
            Err(_) => Err(SshError::Timeout {
                host: host.to_string(),
                what: "starting the remote /bin/sh".into(),
                after: deadline,
            }),
        }
    }

    /// Reads channel data until `needle` is in `buf`; returns its offset.
    /// More than `max` bytes before it is a protocol error (`what` says
    /// where, e.g. `of script stdout`).
    async fn read_until(
        &mut self,
        needle: &[u8],
        max: usize,
        what: &str,
    ) -> Result<usize, Failure> {
        let mut from = 0;
        loop {
            if self.buf.len() >= needle.len()
                && let Some(p) = self.buf[from..]
                    .windows(needle.len())
                    .position(|w| w == needle)
            {
                if from + p > max {
                    break;
                }
                return Ok(from + p);
            }
            if self.buf.len() > max + needle.len() {
                break;
            }
            from = self.buf.len().saturating_sub(needle.len() - 1);
            self.fill().await?;
        }
        Err(Failure::Overflow(format!(
            "the host sent more than {} {what} (a broken or hostile host?)",
            bytes(max)
        )))
    }

    /// Reads until `buf` holds at least `n` bytes.
    async fn read_exact(&mut self, n: usize) -> Result<(), Failure> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(())
    }

    /// Keeps the shell's last 8 KiB of stderr, for the error that names it.
    fn keep_err(&mut self, data: &[u8]) {
        self.shell_err.extend_from_slice(data);
        if self.shell_err.len() > 8192 {
            self.shell_err.drain(..self.shell_err.len() - 8192);
        }
    }

    /// After the shell's exit status: sshd sends it when it reaps the
    /// shell, which may be before the last of what the shell printed (a
    /// loaded host shows it: sshd's own "This service allows sftp
    /// connections only." is on stdout), so read on to the channel's end,
    /// briefly, and the host's own words are in the error.
    async fn drain_after_exit(&mut self) {
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        while let Ok(Some(msg)) = tokio::time::timeout_at(until, self.channel.wait()).await {
            match msg {
                ChannelMsg::Data { data } if self.buf.len() < MAX_CHATTER => {
                    self.buf.extend_from_slice(&data)
                }
                ChannelMsg::ExtendedData { data, .. } => self.keep_err(&data),
                ChannelMsg::Eof | ChannelMsg::Close => break,
                _ => {}
            }
        }
    }

    async fn fill(&mut self) -> Result<(), Failure> {
        loop {
            match self.channel.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    self.buf.extend_from_slice(&data);
                    return Ok(());
                }
                Some(ChannelMsg::ExtendedData { data, .. }) => self.keep_err(&data),
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    self.drain_after_exit().await;
                    return Err(Failure::Protocol(format!(
                        "remote /bin/sh exited with status {exit_status}{}",
                        self.err_suffix()
                    )));
                }
                Some(ChannelMsg::Failure) => {
                    return Err(Failure::Protocol(format!(
                        "the server refused to run /bin/sh{}",
                        self.err_suffix()
                    )));
                }
                Some(ChannelMsg::Eof | ChannelMsg::Close) | None => {
                    return Err(Failure::Closed(format!(
                        "channel closed{}",
                        self.err_suffix()
                    )));
                }
                Some(_) => {}
            }
        }
    }

    /// What the host printed on stdout (its last lines), for an error.
    fn printed(&self) -> String {
        let out = terminal_safe_bytes(&self.buf);
        let out = out.trim();
        if out.is_empty() {
            return String::new();
        }
        let tail: Vec<&str> = out.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let said = tail.join(" / ");
        // At most the last 1000 characters of it.
        let skip = said.chars().count().saturating_sub(1000);
        format!(
            "; the host said: {}",
            said.chars().skip(skip).collect::<String>()
        )
    }

    fn err_suffix(&self) -> String {
        let e = terminal_safe_bytes(&self.shell_err);
        let e = e.trim();
        if e.is_empty() {
            String::new()
        } else {
            format!(": {e}")
        }
    }

    /// Hands the shell over to `script` as a data stream (see the module
    /// header): returns the channel, now the script's, and its permit.
    pub(crate) async fn into_stream(
        self,
        script: &str,
        token: &str,
    ) -> Result<(russh::Channel<Msg>, tokio::sync::OwnedSemaphorePermit), String> {
        let req = self
            .request(token, "__belay_x", script)
            .map_err(|f| match f {
                Failure::Closed(d)
                | Failure::Protocol(d)
                | Failure::NoShell(d)
                | Failure::Overflow(d) => d,
            })?;
        self.channel
            .data(&req[..])
            .await
            .map_err(|e| e.to_string())?;
        Ok((self.channel, self.permit))
    }

    /// Runs one script. On error the shell must be discarded.
    pub(crate) async fn run(
        &mut self,
        script: &str,
        host: &str,
        monitor: &LinkMonitor,
        deadline: Duration,
    ) -> Result<ScriptOutput, SshError> {
        match tokio::time::timeout(deadline, self.run_inner(script)).await {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(f)) => Err(request_error(f, host, monitor).await),
            Err(_) => Err(SshError::Timeout {
                host: host.to_string(),
                what: "script".into(),
                after: deadline,
            }),
        }
    }

    /// Starts `script` as a request whose stdout the caller reads as it
    /// comes ([`crate::ShellStream`]). The script prints `token` on a line
    /// of its own first: anything before it is stray output of an earlier
    /// request's background process, dropped. Returns the request's
    /// sentinel. On error the shell must be discarded.
    pub(crate) async fn start_streaming(
        &mut self,
        script: &str,
        token: &str,
        host: &str,
        monitor: &LinkMonitor,
        deadline: Duration,
    ) -> Result<String, SshError> {
        let start = async {
            let sentinel = self.send(script).await?;
            let marker = format!("{token}\n");
            let pos = self
                .read_until(marker.as_bytes(), MAX_CHATTER, "before the stream started")
                .await?;
            self.buf.drain(..pos + marker.len());
            Ok(sentinel)
        };
        match tokio::time::timeout(deadline, start).await {
            Ok(Ok(sentinel)) => Ok(sentinel),
            Ok(Err(f)) => Err(request_error(f, host, monitor).await),
            Err(_) => Err(SshError::Timeout {
                host: host.to_string(),
                what: "starting a stream".into(),
                after: deadline,
            }),
        }
    }

    /// The next piece of a streaming request's stdout, as it comes (what is
    /// buffered first).
    pub(crate) async fn next_data(
        &mut self,
        host: &str,
        monitor: &LinkMonitor,
    ) -> Result<Vec<u8>, SshError> {
        if self.buf.is_empty()
            && let Err(f) = self.fill().await
        {
            return Err(request_error(f, host, monitor).await);
        }
        Ok(std::mem::take(&mut self.buf))
    }

    /// A streaming request whose caller has read its stdout to the end it
    /// knows (`rest`: what it read beyond that): the rest of the reply —
    /// the sentinel, the status, stderr — is read as any reply's, and the
    /// shell is ready for the next request.
    pub(crate) async fn end_streaming(
        &mut self,
        rest: Vec<u8>,
        sentinel: &str,
    ) -> Result<ScriptOutput, String> {
        let mut buf = rest;
        buf.append(&mut self.buf);
        self.buf = buf;
        self.read_reply(sentinel).await.map_err(|f| match f {
            Failure::Closed(d)
            | Failure::Protocol(d)
            | Failure::NoShell(d)
            | Failure::Overflow(d) => d,
        })
    }

    /// Closes the shell's channel (the loop and its request end with it).
    pub(crate) async fn close(self) {
        let _ = self.channel.close().await;
    }

    async fn run_inner(&mut self, script: &str) -> Result<ScriptOutput, Failure> {
        let sentinel = self.send(script).await?;
        self.read_reply(&sentinel).await
    }

    /// Sends `script` as a request; returns its sentinel.
    async fn send(&mut self, script: &str) -> Result<String, Failure> {
        let sentinel = format!("BELAY-{}", random_hex(16));
        // Late output of earlier background processes is not ours to keep.
        self.buf.clear();
        let req = self.request(&sentinel, "__belay_q", script)?;
        self.channel
            .data(&req[..])
            .await
            .map_err(|e| Failure::Closed(e.to_string()))?;
        Ok(sentinel)
    }

    /// The bytes of one request: with word framing, the command `FUNCTION
    /// MARKER 'SCRIPT'` (one quoted word: nothing in it is expanded, and
    /// the shell parses it whole before running any of it); with head
    /// framing, `MARKER LENGTH` and the script's bytes.
    fn request(&self, marker: &str, function: &str, script: &str) -> Result<Vec<u8>, Failure> {
        if !self.words {
            let mut req = format!("{marker} {}\n", script.len()).into_bytes();
            req.extend_from_slice(script.as_bytes());
            return Ok(req);
        }
        // No shell word can hold a NUL byte.
        if script.contains('\0') {
            return Err(Failure::Protocol(
                "a script with a NUL byte cannot be sent to a shell".into(),
            ));
        }
        let mut req = String::with_capacity(script.len() + marker.len() + 32);
        req.push_str(function);
        req.push(' ');
        req.push_str(marker);
        req.push_str(" '");
        for (i, part) in script.split('\'').enumerate() {
            if i > 0 {
                req.push_str("'\\''");
            }
            req.push_str(part);
        }
        req.push_str("'\n");
        Ok(req.into_bytes())
    }

    /// Reads a request's reply: its stdout up to `sentinel`, the status
    /// line, its stderr.
    async fn read_reply(&mut self, sentinel: &str) -> Result<ScriptOutput, Failure> {
        let needle = format!("{sentinel} ");
        let pos = self
            .read_until(needle.as_bytes(), self.limits.stdout, "of script stdout")
            .await?;
        let stdout = self.buf[..pos].to_vec();
        self.buf.drain(..pos + needle.len());
        let nl = self
            .read_until(b"\n", MAX_STATUS_LINE, "in a status line")
            .await?;
        let header = terminal_safe_bytes(&self.buf[..nl]);
        self.buf.drain(..nl + 1);
        let mut parts = header.split_whitespace();
        let status: i32 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Failure::Protocol(format!("bad status line '{header}'")))?;
        let errlen: usize = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Failure::Protocol(format!("bad status line '{header}'")))?;
        if errlen > self.limits.stderr {
            return Err(Failure::Overflow(format!(
                "the host announced {errlen} bytes of script stderr, more than {} \
                 (a broken or hostile host?)",
                bytes(self.limits.stderr)
            )));
        }
        self.read_exact(errlen).await?;
        let stderr = self.buf.drain(..errlen).collect();
        Ok(ScriptOutput {
            status,
            stdout,
            stderr,
        })
    }
}

/// The error a failed request reports: a closed channel is the link's
/// (when it is down), a misbehaving shell a protocol error.
async fn request_error(f: Failure, host: &str, monitor: &LinkMonitor) -> SshError {
    match f {
        Failure::Closed(d) => monitor.error(host, d).await,
        Failure::Overflow(d) => SshError::Protocol {
            host: host.to_string(),
            detail: d,
        },
        Failure::Protocol(d) | Failure::NoShell(d) => {
            if monitor.is_down() {
                monitor.error(host, d).await
            } else {
                SshError::Protocol {
                    host: host.to_string(),
                    detail: d,
                }
            }
        }
    }
}

/// Runs `command` on a fresh exec channel (through the user's login shell),
/// feeding `stdin`, and collects its output.
pub(crate) async fn exec_once(
    handle: &Handle<HopHandler>,
    command: &str,
    stdin: &[u8],
    host: &str,
    monitor: &LinkMonitor,
    deadline: Duration,
    limits: ReplyLimits,
) -> Result<ScriptOutput, SshError> {
    let fut = async {
        let mut channel = handle
            .channel_open_session()
            .await
            .map_err(|e| Failure::Closed(format!("cannot open a session channel: {e}")))?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| Failure::Closed(e.to_string()))?;
        if !stdin.is_empty() {
            channel
                .data(stdin)
                .await
                .map_err(|e| Failure::Closed(e.to_string()))?;
        }
        channel
            .eof()
            .await
            .map_err(|e| Failure::Closed(e.to_string()))?;
        let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), None);
        loop {
            match channel.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    if out.len() + data.len() > limits.stdout {
                        return Err(Failure::Overflow(format!(
                            "the host sent more than {} of command stdout \
                             (a broken or hostile host?)",
                            bytes(limits.stdout)
                        )));
                    }
                    out.extend_from_slice(&data)
                }
                Some(ChannelMsg::ExtendedData { data, .. }) => {
                    if err.len() + data.len() > limits.stderr {
                        return Err(Failure::Overflow(format!(
                            "the host sent more than {} of command stderr \
                             (a broken or hostile host?)",
                            bytes(limits.stderr)
                        )));
                    }
                    err.extend_from_slice(&data)
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => status = Some(exit_status as i32),
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    status = Some(128 + signal_number(&signal_name))
                }
                Some(ChannelMsg::Failure) => {
                    return Err(Failure::Protocol(
                        "the server refused the exec request".into(),
                    ));
                }
                Some(ChannelMsg::Close) | None => break,
                Some(_) => {}
            }
        }
        match status {
            Some(s) => Ok(ScriptOutput {
                status: s,
                stdout: out,
                stderr: err,
            }),
            None => Err(Failure::Closed(
                "channel closed without an exit status".into(),
            )),
        }
    };
    match tokio::time::timeout(deadline, fut).await {
        Ok(Ok(o)) => Ok(o),
        Ok(Err(Failure::Closed(d))) => {
            if monitor.is_down() || handle.is_closed() {
                Err(monitor.error(host, d).await)
            } else {
                Err(SshError::Channel {
                    host: host.to_string(),
                    detail: d,
                })
            }
        }
        Ok(Err(Failure::Protocol(d) | Failure::NoShell(d) | Failure::Overflow(d))) => {
            Err(SshError::Protocol {
                host: host.to_string(),
                detail: d,
            })
        }
        Err(_) => Err(SshError::Timeout {
            host: host.to_string(),
            what: format!("command `{}`", command.chars().take(60).collect::<String>()),
            after: deadline,
        }),
    }
}

pub(crate) fn signal_number(s: &russh::Sig) -> i32 {
    use russh::Sig::*;
    match s {
        HUP => 1,
        INT => 2,
        QUIT => 3,
        ILL => 4,
        ABRT => 6,
        FPE => 8,
        KILL => 9,
        SEGV => 11,
        PIPE => 13,
        ALRM => 14,
        TERM => 15,
        USR1 => 10,
        _ => 127,
    }
}
