//! The embedded `local` host: this machine, no SSH. Scripts run under
//! `/bin/sh` as child processes, in their own process group so that a Ctrl-C
//! at the terminal (aimed at belay) never interrupts a protocol step half-way.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{ScriptOutput, Transport, TransportError, Workroot};
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
}
