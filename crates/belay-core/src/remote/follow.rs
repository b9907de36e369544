//! The remote follower: a POSIX sh script that streams one job's output as
//! its files grow, waiting *on the host* for the next write, and the frames
//! it sends back.
//!
//! Started with [`crate::transport::Transport::open_output_stream`] from byte
//! offsets (either stream may be skipped), it writes on its stdout:
//!
//! ```text
//! M <mode>\n          how it waits: `inotify` or `poll` (may change once;
//!                     not sent when the job had ended when it started)
//! O <len>\n<bytes>    the next `len` bytes of the job's stdout
//! E <len>\n<bytes>    the next `len` bytes of its stderr
//! T\n                 a tick: nothing new (at most ~1 s apart while idle)
//! R <len>\n<report>   the job's report (`belay_report`, as a probe prints
//!                     it), sent once the exit file exists, just before `X`
//! X\n                 the job's `exit` file (or `held`: its command ended
//!                     and the job is held for debugging) is there (an
//!                     empty `exit` is being written: not yet) and both
//!                     streams are drained to their final size; the script
//!                     then ends
//! ```
//!
//! The report spares the caller a probe of its own to record the end.
//!
//! The exit file is looked at *before* the sizes (as in
//! [`super::scripts::read_output`]), so the sizes read after seeing it are
//! final. Data goes through `tail -c | head -c`, never `read`: binary-safe.
//!
//! Waiting: with `inotifywait` on the host, one `inotifywait -m` on the job
//! directory feeds a pipe, with a tick line a second beside it; the script
//! checks the sizes, then blocks on that pipe (`dd`: every line waiting is
//! taken at once) until the next events or the next tick. An event that
//! lands between the check and the wait is already in the pipe, so no write
//! is missed. The follower reads the watcher's "Watches established." line
//! (with `read`: no `dd` for it) before its first look, so a write before
//! the watch existed is seen by that look, and every later one is an event
//! in the pipe.
//! Only the streams, `exit` and `held` wake it (the wrapper's other records
//! are excluded): each wake-up costs processes on the host.
//! Without them, or when the job directory is on a network file system
//! (NFS, Lustre, GPFS, …: a job on another node writes there, and inotify
//! sees only this machine's writes): 50 ms sleeps on the host. Before the
//! job directory exists (a queued job), 200 ms sleeps.
//!
//! Nothing is left on the host: the script ends after `X`, and a tick that
//! cannot be written (the channel was closed, the link died) ends it within
//! about a second; on any exit it kills its `inotifywait` by pid.

use super::functions::prelude;
use crate::scheduler::Scheduler;
use crate::shell::quote;

/// Largest data frame: bigger growth is sent as several frames.
pub const MAX_FRAME: u64 = 1 << 20;

/// Longest header line a well-behaved follower sends (`O 1048576`).
const MAX_HEADER: usize = 32;

/// How the follower waits between checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitMode {
    /// `inotifywait` when the host has it, else short sleeps.
    Best,
    /// `inotifywait` when the host has it, without asking the file system
    /// first: an earlier follower under the same workroot found it local
    /// (see [`crate::engine::wait_modes`]).
    Local,
    /// Short sleeps even where `inotifywait` exists (tests of the fallback).
    Poll,
}

/// The follower script for job `job_id` in the directory `dir_word` (a
/// shell word), from byte offsets (`None`: that stream is not sent at all).
pub fn script(
    scheduler: &dyn Scheduler,
    job_id: &str,
    dir_word: &str,
    stdout_from: Option<u64>,
    stderr_from: Option<u64>,
    mode: WaitMode,
) -> String {
    let off = |o: Option<u64>| o.map_or("-1".to_string(), |o| o.to_string());
    format!(
        r#"LC_ALL=C; export LC_ALL
{prelude}d={dir}
oo={oo}; eo={eo}; belay_max={max}; belay_mode={mode}; belay_w=
# belay_send KIND FILE OFFSET: send FILE from OFFSET to the size seen now.
belay_send() {{
  # An empty or missing file is size 0 without a process (`wc`).
  s=0; [ -s "$2" ] && s=$(( $(wc -c < "$2") ))
  at=$3
  while [ "$at" -lt "$s" ]; do
    n=$((s - at)); [ "$n" -gt "$belay_max" ] && n=$belay_max
    printf '%s %s\n' "$1" "$n" || exit 1
    tail -c +$((at + 1)) "$2" 2>/dev/null | head -c "$n" || exit 1
    at=$((at + n)); sent=1
  done
}}
belay_pump() {{
  x=; [ -s exit ] && x=1
  [ -f held ] && x=1
  sent=
  if [ "$oo" -ge 0 ]; then belay_send O stdout "$oo"; oo=$at; fi
  if [ "$eo" -ge 0 ]; then belay_send E stderr "$eo"; eo=$at; fi
  if [ -n "$x" ]; then
    belay_r=$(belay_report {id} "$d")
    printf 'R %s\n%s\nX\n' "$((${{#belay_r}} + 1))" "$belay_r"
    exit 0
  fi
}}
belay_follow() {{
  # The watcher and the ticker go with the follower, so the session ends
  # at once (a host's MaxSessions counts it until then).
  trap 'for p in $belay_w $belay_k; do kill "$p" 2>/dev/null; done' EXIT
  trap 'exit 1' HUP INT TERM PIPE
  if [ "$1" = inotify ]; then
    # The watcher's and the ticker's pids, and the watcher's word that its
    # watch is set (or any other word of it: an error), read by builtins:
    # the first wait below is then for events, not for that word. (An
    # event line read here is no loss: the first pass below looks.)
    belay_set=
    while read -r a b; do
      case $a in
        pid) belay_w=$b ;;
        tick) if [ -n "$b" ]; then belay_k=$b; else belay_set=1; fi ;;
        Setting) ;;
        *) belay_set=1 ;;
      esac
      [ -n "$belay_w" ] && [ -n "$belay_k" ] && [ -n "$belay_set" ] && break
    done
  fi
  printf 'M %s\n' "$1" || exit 1
  i=0
  while :; do
    belay_pump
    if [ -n "$belay_w" ]; then
      # Returns at the next events or the next tick (a second at most).
      dd bs=65536 count=1 of=/dev/null 2>/dev/null
      r=$?
      if [ "$r" != 0 ] || [ -z "$sent" ]; then printf 'T\n' || exit 1; fi
      if [ "$r" = 0 ] && ! kill -0 "$belay_w" 2>/dev/null; then
        kill "$belay_k" 2>/dev/null
        belay_w=; belay_k=; printf 'M poll\n' || exit 1
      fi
    else
      sleep 0.05 2>/dev/null || sleep 1
      [ -n "$sent" ] && i=0
      i=$((i + 1)); [ "$i" -ge 20 ] && {{ i=0; printf 'T\n' || exit 1; }}
    fi
  done
}}
i=0
while ! cd "$d" 2>/dev/null; do
  sleep 0.2 2>/dev/null || sleep 1
  i=$((i + 1)); [ "$i" -ge 5 ] && {{ i=0; printf 'T\n' || exit 1; }}
done
# A job that has ended already (a short one; a stream resumed after a
# drop) is sent whole now, with no watcher to start and no file system to
# ask about: `belay_pump` ends the script after `X`.
if [ -s exit ] || [ -f held ]; then belay_pump; fi
# inotify sees no write made by another machine (a batch job on a compute
# node writing to a shared file system): there, sleeps.
if [ "$belay_mode" = best ]; then
  case $(stat -f -c %T . 2>/dev/null) in
    nfs*|cifs|smb*|lustre|gpfs|fuse*|beegfs|ceph|panfs|9p|v9fs|afs|glusterfs) belay_mode=poll ;;
  esac
fi
if [ "$belay_mode" != poll ] && command -v inotifywait >/dev/null 2>&1; then
  # Only the streams and the end wake the follower: the wrapper's own
  # records (and their temporary names) would each cost a pass.
  {{ inotifywait -m -e modify -e create -e moved_to -e delete_self \
      --exclude '/(started|launched|heartbeat|reserve|launch\.lock|spec\.json|run\.sh|secrets\.where|cancel-requested)$|\.tmp\.[0-9]+$' \
      "$PWD" 2>&1 </dev/null &
    echo "pid $!"
    # A tick a second into the same pipe bounds the follower's wait without
    # a `timeout` process at every wake-up. Its `sleep` holds none of the
    # channel's streams: one left sleeping after the follower has gone
    # keeps nothing open.
    while sleep 1 </dev/null 2>/dev/null; do echo tick || exit 0; done &
    echo "tick $!"
    wait
  }} | belay_follow inotify
else
  belay_follow poll </dev/null
fi
"#,
        prelude = prelude(scheduler),
        id = quote(job_id),
        dir = dir_word,
        oo = off(stdout_from),
        eo = off(stderr_from),
        max = MAX_FRAME,
        mode = match mode {
            WaitMode::Best => "best",
            WaitMode::Local => "local",
            WaitMode::Poll => "poll",
        },
    )
}

/// One frame from the follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Tick,
    /// How the follower waits (`inotify`, `poll`).
    Mode(String),
    /// The job's report (text a probe would print), just before `End`.
    Report(Vec<u8>),
    End,
    /// The request the follower ran as ended without `End` (a pooled
    /// stream's end marker line: see [`FrameReader::ending_at`]); its
    /// status. The line and what follows stay in the reader's
    /// [`FrameReader::rest`].
    ScriptEnd(i32),
}

/// The follower sent something that is not a frame.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unreadable output stream: {0}")]
pub struct FrameError(String);

/// Cuts the follower's stdout (arriving in arbitrary pieces) into frames.
/// A frame is returned only once all its bytes are here, so a caller that
/// counts delivered bytes knows exactly where to resume after a drop.
#[derive(Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// A pooled stream's end marker (see [`Self::ending_at`]).
    end: Option<String>,
}

/// Longest end-marker line: the marker, a status and a length.
const MAX_END_LINE: usize = 128;

impl FrameReader {
    /// A reader for a stream that runs as a pooled request: a line where a
    /// frame would start, beginning with `marker`, is the request's end
    /// ([`Frame::ScriptEnd`]). Frames carry the job's bytes by length, so
    /// no output of the job can be taken for it.
    pub fn ending_at(marker: Option<&str>) -> FrameReader {
        FrameReader {
            buf: Vec::new(),
            end: marker.map(str::to_string),
        }
    }

    pub fn feed(&mut self, piece: &[u8]) {
        self.buf.extend_from_slice(piece);
    }

    /// What was fed and not taken as frames (after `End`: the request's
    /// end, for the stream to read to; after `ScriptEnd`: its line too).
    pub fn rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// The next complete frame, if one is here.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(marker) = &self.end
            && !self.buf.is_empty()
            && self.buf.len() < marker.len()
            && marker.as_bytes().starts_with(&self.buf)
        {
            // Perhaps the end marker, not all here yet.
            return Ok(None);
        }
        if let Some(marker) = &self.end
            && self.buf.starts_with(marker.as_bytes())
        {
            let Some(nl) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() > MAX_END_LINE {
                    return Err(self.bad());
                }
                return Ok(None);
            };
            let line = String::from_utf8_lossy(&self.buf[marker.len()..nl]).into_owned();
            let status = line
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| self.bad())?;
            return Ok(Some(Frame::ScriptEnd(status)));
        }
        let Some(nl) = self.buf.iter().position(|&b| b == b'\n') else {
            if self.buf.len() > MAX_HEADER {
                return Err(self.bad());
            }
            return Ok(None);
        };
        if nl > MAX_HEADER {
            return Err(self.bad());
        }
        let header = std::str::from_utf8(&self.buf[..nl]).map_err(|_| self.bad())?;
        let (kind, arg) = header.split_once(' ').unwrap_or((header, ""));
        let frame = match kind {
            "T" => Frame::Tick,
            "X" => Frame::End,
            "M" => Frame::Mode(arg.to_string()),
            "O" | "E" | "R" => {
                let len: u64 = arg.parse().map_err(|_| self.bad())?;
                if len == 0 || len > MAX_FRAME {
                    return Err(self.bad());
                }
                let end = nl + 1 + len as usize;
                if self.buf.len() < end {
                    return Ok(None);
                }
                let kind = kind.to_string();
                let data = self.buf[nl + 1..end].to_vec();
                self.buf.drain(..end);
                return Ok(Some(match kind.as_str() {
                    "O" => Frame::Stdout(data),
                    "E" => Frame::Stderr(data),
                    _ => Frame::Report(data),
                }));
            }
            _ => return Err(self.bad()),
        };
        self.buf.drain(..=nl);
        Ok(Some(frame))
    }

    fn bad(&self) -> FrameError {
        let head = &self.buf[..self.buf.len().min(MAX_HEADER)];
        FrameError(format!(
            "expected a frame header, got {:?}",
            String::from_utf8_lossy(head)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    /// Frames of a follower run to its end (or until `deadline`).
    fn collect(child: &mut std::process::Child, deadline: Duration) -> Vec<Frame> {
        let mut out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut reader = FrameReader::default();
        let mut frames = Vec::new();
        let end = Instant::now() + deadline;
        while let Ok(piece) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            reader.feed(&piece);
            while let Some(f) = reader.next_frame().unwrap() {
                frames.push(f);
            }
        }
        frames
    }

    fn start(
        dir: &std::path::Path,
        out: Option<u64>,
        err: Option<u64>,
        path: &str,
        mode: WaitMode,
    ) -> std::process::Child {
        let s = script(
            &crate::scheduler::Direct,
            "j1",
            &quote(dir.to_str().unwrap()),
            out,
            err,
            mode,
        );
        Command::new("/bin/sh")
            .arg("-c")
            .arg(s)
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn data(frames: &[Frame], stdout: bool) -> Vec<u8> {
        frames
            .iter()
            .filter_map(|f| match f {
                Frame::Stdout(d) if stdout => Some(d.clone()),
                Frame::Stderr(d) if !stdout => Some(d.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Appends binary data, in steps, then ends the "job"; the follower
    /// sends every byte once from the offsets, then `X`.
    fn follows_growth_then_ends(path: &str, wait: WaitMode, mode: &str) -> Vec<Frame> {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("job dir");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("stdout"), b"skipped").unwrap();
        let mut child = start(&dir, Some(7), Some(0), path, wait);
        let mut want_out: Vec<u8> = Vec::new();
        let mut want_err: Vec<u8> = Vec::new();
        let append = |name: &str, bytes: &[u8]| {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(dir.join(name))
                .unwrap();
            f.write_all(bytes).unwrap();
        };
        for i in 0..5u32 {
            std::thread::sleep(Duration::from_millis(60));
            let chunk: Vec<u8> = (0..=255u8).cycle().skip(i as usize).take(3000).collect();
            append("stdout", &chunk);
            want_out.extend(&chunk);
            append("stderr", b"\n\0E 5\n");
            want_err.extend(b"\n\0E 5\n");
        }
        let big: Vec<u8> = (0..(MAX_FRAME as usize * 2 + 17))
            .map(|i| (i * 7) as u8)
            .collect();
        append("stdout", &big);
        want_out.extend(&big);
        std::fs::write(dir.join("exit.tmp"), "code=0\n").unwrap();
        std::fs::rename(dir.join("exit.tmp"), dir.join("exit")).unwrap();
        let frames = collect(&mut child, Duration::from_secs(20));
        assert!(child.wait().unwrap().success());
        assert_eq!(
            frames.first(),
            Some(&Frame::Mode(mode.into())),
            "how the follower waited"
        );
        assert_eq!(frames.last(), Some(&Frame::End));
        assert!(data(&frames, true) == want_out, "stdout differs");
        assert_eq!(data(&frames, false), want_err);
        frames
    }

    #[test]
    fn follows_with_inotifywait() {
        assert!(
            Command::new("sh")
                .args(["-c", "command -v inotifywait"])
                .status()
                .unwrap()
                .success(),
            "inotifywait is missing: install inotify-tools (scripts/test.sh does)"
        );
        follows_growth_then_ends("/usr/bin:/bin", WaitMode::Best, "inotify");
    }

    /// A PATH with these tools only (links to the real ones).
    fn tools(dir: &std::path::Path, names: &[&str]) -> std::path::PathBuf {
        let bin = dir.join("bin");
        std::fs::create_dir(&bin).unwrap();
        for tool in names {
            let src = ["/usr/bin", "/bin"]
                .iter()
                .map(|d| format!("{d}/{tool}"))
                .find(|p| std::path::Path::new(p).exists())
                .unwrap();
            std::os::unix::fs::symlink(src, bin.join(tool)).unwrap();
        }
        bin
    }

    const TOOLS: [&str; 7] = ["wc", "tail", "head", "sleep", "dd", "stat", "date"];

    #[test]
    fn follows_with_inotifywait_on_a_host_without_timeout() {
        // The wait is bounded by the tick line, not by `timeout`.
        let tmp = tempfile::tempdir().unwrap();
        let mut names = TOOLS.to_vec();
        names.push("inotifywait");
        let bin = tools(tmp.path(), &names);
        follows_growth_then_ends(bin.to_str().unwrap(), WaitMode::Best, "inotify");
    }

    /// A watcher that cannot watch (the host's inotify limit reached) says
    /// so and ends: the follower, waiting for its word, takes that one,
    /// goes on with short sleeps, and misses nothing.
    #[test]
    fn a_watcher_that_fails_leaves_the_follower_polling() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tools(tmp.path(), &TOOLS);
        let fake = bin.join("inotifywait");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho 'Failed to watch .; upper limit on inotify watches reached!' >&2\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let frames = follows_growth_then_ends(bin.to_str().unwrap(), WaitMode::Local, "inotify");
        assert!(
            frames.contains(&Frame::Mode("poll".into())),
            "no switch to polling: {:?}",
            frames
                .iter()
                .filter(|f| matches!(f, Frame::Mode(_)))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn follows_with_short_sleeps_without_inotifywait() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tools(tmp.path(), &TOOLS);
        follows_growth_then_ends(bin.to_str().unwrap(), WaitMode::Best, "poll");
    }

    /// Tools and `inotifywait`, with a `stat` that says every file system
    /// is NFS.
    fn tools_on_nfs(dir: &std::path::Path) -> std::path::PathBuf {
        let mut names = TOOLS.to_vec();
        names.retain(|t| *t != "stat");
        names.push("inotifywait");
        let bin = tools(dir, &names);
        // `stat -f -c %T` names the file system type: say NFS.
        let stat = bin.join("stat");
        std::fs::write(&stat, "#!/bin/sh\necho nfs\n").unwrap();
        std::fs::set_permissions(&stat, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        bin
    }

    #[test]
    fn follows_with_short_sleeps_on_a_network_file_system() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tools_on_nfs(tmp.path());
        follows_growth_then_ends(bin.to_str().unwrap(), WaitMode::Best, "poll");
    }

    /// Told the file system is local (an earlier follower found it so), the
    /// follower does not ask (`stat` here would say NFS) and watches.
    #[test]
    fn a_follower_told_its_file_system_is_local_does_not_ask() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tools_on_nfs(tmp.path());
        follows_growth_then_ends(bin.to_str().unwrap(), WaitMode::Local, "inotify");
    }

    #[test]
    fn an_ended_job_is_sent_at_once_and_a_skipped_stream_never() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("stdout"), b"out").unwrap();
        std::fs::write(tmp.path().join("stderr"), b"err").unwrap();
        std::fs::write(tmp.path().join("exit"), b"code=3\n").unwrap();
        let mut child = start(tmp.path(), None, Some(1), "/usr/bin:/bin", WaitMode::Best);
        let frames = collect(&mut child, Duration::from_secs(10));
        let report = frames
            .iter()
            .find_map(|f| match f {
                Frame::Report(r) => Some(String::from_utf8(r.clone()).unwrap()),
                _ => None,
            })
            .expect("a report before the end");
        assert!(report.starts_with("J j1 exit\ncode=3\n"), "{report}");
        assert_eq!(
            frames,
            // No `M`: it never waited (no watcher was started).
            vec![
                Frame::Stderr(b"rr".to_vec()),
                Frame::Report(report.into_bytes()),
                Frame::End
            ]
        );
    }

    #[test]
    fn an_idle_follower_ticks_and_ends_when_its_reader_goes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("idle-job");
        std::fs::create_dir(&dir).unwrap();
        let mut child = start(&dir, Some(0), Some(0), "/usr/bin:/bin", WaitMode::Best);
        let mut out = child.stdout.take().unwrap();
        let mut reader = FrameReader::default();
        let t = Instant::now();
        let mut ticks = 0;
        let mut buf = [0u8; 64];
        while ticks < 2 {
            let n = out.read(&mut buf).unwrap();
            assert!(n > 0);
            reader.feed(&buf[..n]);
            while let Some(f) = reader.next_frame().unwrap() {
                ticks += usize::from(f == Frame::Tick);
            }
        }
        assert!(t.elapsed() < Duration::from_secs(5), "ticks too rare");
        drop(out);
        let end = Instant::now() + Duration::from_secs(5);
        let gone = || {
            let p = Command::new("pgrep")
                .args(["-f", dir.to_str().unwrap()])
                .output()
                .unwrap();
            p.stdout.is_empty()
        };
        while !(gone() && child.try_wait().unwrap().is_some()) {
            assert!(Instant::now() < end, "the follower outlived its reader");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A direct job's `exit` is written in place: while it is empty the job
    /// has not ended (the follower ticks on, with no report and no `X`);
    /// once it has its lines, the report and `X` follow.
    #[test]
    fn an_empty_exit_file_is_not_the_end_yet() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ending-job");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("exit"), "").unwrap();
        let mut child = start(&dir, Some(0), Some(0), "/usr/bin:/bin", WaitMode::Local);
        let mut out = child.stdout.take().unwrap();
        let mut reader = FrameReader::default();
        let mut buf = [0u8; 4096];
        let mut ticks = 0;
        while ticks < 2 {
            let n = out.read(&mut buf).unwrap();
            assert!(n > 0, "the follower ended on an empty exit file");
            reader.feed(&buf[..n]);
            while let Some(f) = reader.next_frame().unwrap() {
                assert!(
                    matches!(f, Frame::Tick | Frame::Mode(_)),
                    "{f:?} before the exit file was written"
                );
                ticks += usize::from(f == Frame::Tick);
            }
        }
        std::fs::write(dir.join("exit"), "code=3\nended_at=1\ncancelled=0\n").unwrap();
        let mut rest = Vec::new();
        out.read_to_end(&mut rest).unwrap();
        reader.feed(&rest);
        let mut frames = Vec::new();
        while let Some(f) = reader.next_frame().unwrap() {
            frames.push(f);
        }
        assert!(child.wait().unwrap().success());
        assert_eq!(frames.last(), Some(&Frame::End), "{frames:?}");
        let report = frames.iter().find_map(|f| match f {
            Frame::Report(r) => Some(String::from_utf8_lossy(r).into_owned()),
            _ => None,
        });
        assert!(
            report.as_deref().is_some_and(|r| r.contains("code=3")),
            "{report:?}"
        );
    }

    #[test]
    fn frames_are_whole_or_not_at_all() {
        let mut r = FrameReader::default();
        r.feed(b"M inotify\nO 5\nab");
        assert_eq!(r.next_frame().unwrap(), Some(Frame::Mode("inotify".into())));
        assert_eq!(r.next_frame().unwrap(), None);
        r.feed(b"c\n");
        assert_eq!(r.next_frame().unwrap(), None);
        r.feed(b"dT\nX\n");
        assert_eq!(
            r.next_frame().unwrap(),
            Some(Frame::Stdout(b"abc\nd".to_vec()))
        );
        assert_eq!(r.next_frame().unwrap(), Some(Frame::Tick));
        assert_eq!(r.next_frame().unwrap(), Some(Frame::End));
        let mut bad = FrameReader::default();
        bad.feed(b"hello there\n");
        assert!(bad.next_frame().is_err());
        let mut long = FrameReader::default();
        long.feed(&[b'x'; 100]);
        assert!(long.next_frame().is_err());
    }
}
