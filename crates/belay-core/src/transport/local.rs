//! The embedded `local` host: this machine, no SSH. Scripts run under
//! `/bin/sh` as child processes, in their own process group so that a Ctrl-C
//! at the terminal (aimed at belay) never interrupts a protocol step half-way.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{DataStream, ScriptOutput, Transport, TransportError, Workroot};
use crate::shell::quote;

pub struct LocalTransport {
    workroot: PathBuf,
}

impl LocalTransport {
    pub const NAME: &'static str = "local";

    pub fn new(workroot: PathBuf) -> Self {
        Self { workroot }
    }
}

impl Transport for LocalTransport {
    fn host(&self) -> &str {
        Self::NAME
    }

    fn workroot(&self) -> Workroot {
        Workroot(quote(&self.workroot.display().to_string()))
    }

    fn run_script(&self, script: &str) -> Result<ScriptOutput, TransportError> {
        let fail = |what: &str, e: std::io::Error| TransportError::Local {
            host: Self::NAME.into(),
            message: format!("{what}: {e}"),
        };
        // The script goes on stdin, not argv: argv is visible to every user
        // of the machine and limited in size.
        let mut child = Command::new("/bin/sh")
            .arg("-s")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| fail("starting /bin/sh", e))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // The shell parses the whole subshell before running it, and the
        // script's own commands read /dev/null, never the rest of the script.
        let body = format!("(\n{script}\n) </dev/null\n").into_bytes();
        // Write from a thread: a script that prints a lot before reading all
        // of its input would otherwise deadlock against us.
        let writer = std::thread::spawn(move || stdin.write_all(&body));
        let out = child
            .wait_with_output()
            .map_err(|e| fail("waiting for /bin/sh", e))?;
        // A script may exit before reading all of its input; that is its
        // business, not a transport failure.
        let _ = writer.join();
        Ok(ScriptOutput {
            status: out.status.code().unwrap_or(128),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    fn open_stream(&self, script: &str) -> Result<Box<dyn DataStream>, TransportError> {
        // The script goes on stdin ahead of the data, not in argv (one
        // argument is limited to 128 KiB, and argv is visible to every user
        // of the machine): `head -c` reads exactly its bytes and no more,
        // so what follows on stdin is the script's own input.
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"s=$(head -c "$1") && eval "$s""#)
            .arg("sh")
            .arg(script.len().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| local_error("starting /bin/sh", e))?;
        // stderr is drained by a thread so a chatty script never blocks.
        let mut err = child.stderr.take().expect("stderr is piped");
        let stderr = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = (&mut err).take(64 * 1024).read_to_end(&mut buf);
            let _ = std::io::copy(&mut err, &mut std::io::sink());
            buf
        });
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| local_error("writing the script", e))?;
        Ok(Box::new(LocalStream {
            stdin: Some(stdin),
            stdout: child.stdout.take().expect("stdout is piped"),
            child,
            stderr: Some(stderr),
        }))
    }
}

fn local_error(what: &str, e: std::io::Error) -> TransportError {
    TransportError::Local {
        host: LocalTransport::NAME.into(),
        message: format!("{what}: {e}"),
    }
}

/// A local `/bin/sh` running a script, with piped standard streams.
struct LocalStream {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: std::process::ChildStdout,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl DataStream for LocalStream {
    fn write_all(&mut self, data: &[u8]) -> Result<(), TransportError> {
        match self.stdin.as_mut() {
            Some(w) => w
                .write_all(data)
                .map_err(|e| local_error("writing to the script", e)),
            None => Err(local_error(
                "writing to the script",
                std::io::Error::other("input already closed"),
            )),
        }
    }

    fn close_input(&mut self) -> Result<(), TransportError> {
        self.stdin = None;
        Ok(())
    }

    fn read_chunk(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match self.stdout.read(&mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(Some(buf));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(local_error("reading from the script", e)),
            }
        }
    }

    fn abort(mut self: Box<Self>) {
        self.stdin = None;
        // The script runs in its own process group (process_group(0)).
        // SAFETY: kill(2) on the group of a child we started and still own.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }

    fn finish(mut self: Box<Self>) -> Result<ScriptOutput, TransportError> {
        self.stdin = None;
        let _ = std::io::copy(&mut self.stdout, &mut std::io::sink());
        let status = self
            .child
            .wait()
            .map_err(|e| local_error("waiting for /bin/sh", e))?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Ok(ScriptOutput {
            status: status.code().unwrap_or(128),
            stdout: Vec::new(),
            stderr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_scripts_and_reports_status_and_streams() {
        let t = LocalTransport::new(PathBuf::from("/tmp"));
        let out = t.run_script("echo out; echo err >&2; exit 7").unwrap();
        assert_eq!(out.status, 7);
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr_text(), "err");
    }

    #[test]
    fn commands_in_a_script_cannot_swallow_the_rest_of_it() {
        let t = LocalTransport::new(PathBuf::from("/tmp"));
        let out = t.run_script("cat\necho after").unwrap();
        assert_eq!(out.stdout, b"after\n");
    }

    #[test]
    fn a_stream_script_may_be_bigger_than_one_argument_and_keeps_its_input() {
        let t = LocalTransport::new(PathBuf::from("/tmp"));
        // ~1 MiB of script, far over the kernel's 128 KiB per argument.
        let script = format!("{}\nprintf 'got:'; cat", "# padding\n".repeat(100_000));
        let mut s = t.open_stream(&script).unwrap();
        s.write_all(b"data after the script").unwrap();
        s.close_input().unwrap();
        let mut out = Vec::new();
        while let Some(chunk) = s.read_chunk().unwrap() {
            out.extend(chunk);
        }
        assert_eq!(out, b"got:data after the script");
        assert_eq!(s.finish().unwrap().status, 0);
    }
}
