//! Test support: a private BELAY_HOME per test and the real `belay` binary,
//! run as a user would run it. Every wait polls with a deadline.
//!
//! Command lines read as what they check:
//! `b.cmd(["push", "target"]).arg(&src).arg("/tmp/x").json()` (exit 0,
//! stdout parsed), `.ok()` (exit 0, stdout), `.bad_input("NAME")` (exit 2,
//! one line naming the bad value), `.output()` (anything).

#![allow(dead_code)]

pub mod files;
pub mod jupyter;
pub mod remote;
pub mod slurm;
pub mod webdriver;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

pub struct Belay {
    pub home: tempfile::TempDir,
    pub scratch: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// The test matrix: with `BELAY_TEST_DAEMON=1` commands go through the
/// daemon (started by the first command, as for a user); otherwise each
/// works directly (`BELAY_NO_DAEMON=1`). scripts/test.sh runs the suites
/// that must behave the same both ways once in each mode.
pub fn daemon_mode() -> bool {
    std::env::var_os("BELAY_TEST_DAEMON").is_some_and(|v| v == "1")
}

/// A command whose `BELAY_FAILPOINT` fired: without the daemon the
/// command itself died by SIGKILL; through it the daemon did (the work was
/// its), and the command says that the daemon went away (exit 1).
pub fn assert_killed_by_failpoint(out: &Output, what: &str) {
    use std::os::unix::process::ExitStatusExt;
    if daemon_mode() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(
            err.contains("belay daemon") && err.contains("went away"),
            "{what}: {err}"
        );
    } else {
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{what}: belay should have died by SIGKILL"
        );
    }
}

impl Drop for Belay {
    /// Stop the daemon this test's commands started, if any: a test never
    /// leaves one behind (CI must not wait on it).
    fn drop(&mut self) {
        if self.home.path().join("serve.lock").exists() {
            let _ = Command::new(env!("CARGO_BIN_EXE_belay"))
                .args(["serve", "--stop"])
                .env("BELAY_HOME", self.home.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Belay {
    pub fn new() -> Self {
        let scratch = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(scratch.path().join("home")).expect("home dir");
        Self {
            home: tempfile::tempdir().expect("tempdir"),
            scratch,
            env: Vec::new(),
        }
    }

    pub fn with_env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn scratch(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.command_of(Path::new(env!("CARGO_BIN_EXE_belay")), args)
    }

    /// [`Belay::command`] with another `belay` executable (a copy: another
    /// build, as far as a daemon can tell).
    pub fn command_of(&self, exe: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(exe);
        c.args(args)
            .env("BELAY_HOME", self.home.path())
            .env_remove("BELAY_FAILPOINT")
            // Jobs run in a login shell: give them a clean, known one rather
            // than whatever this machine's ~/.bashrc does at start-up.
            .env("HOME", self.scratch.path().join("home"))
            .current_dir(self.scratch.path())
            .stdin(Stdio::null());
        if daemon_mode() {
            c.env_remove("BELAY_NO_DAEMON");
        } else {
            c.env("BELAY_NO_DAEMON", "1");
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// A command line to build on; see the module docs.
    pub fn cmd<S: AsRef<OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Cmd<'_> {
        Cmd {
            belay: self,
            args: args.into_iter().map(|a| a.as_ref().to_owned()).collect(),
            env: Vec::new(),
            deadline: Duration::from_secs(60),
        }
    }

    /// Run to completion (60 s deadline).
    pub fn run(&self, args: &[&str]) -> Output {
        run_with_deadline(self.command(args), Duration::from_secs(60))
    }

    pub fn run_env(&self, args: &[&str], k: &str, v: &str) -> Output {
        let mut c = self.command(args);
        c.env(k, v);
        run_with_deadline(c, Duration::from_secs(60))
    }

    /// Run and insist on exit status 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "belay {args:?} failed: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn belay")
    }

    /// `ps --all --json`.
    pub fn jobs(&self) -> Vec<Value> {
        let v: Value = serde_json::from_str(&self.ok(&["ps", "--all", "--json"])).expect("json");
        v.as_array().expect("array").clone()
    }

    pub fn job(&self, reference: &str) -> Value {
        serde_json::from_str(&self.ok(&["show", "--json", reference])).expect("json")
    }

    /// Submit detached; returns the job id.
    pub fn submit(&self, args: &[&str]) -> String {
        let mut full = vec!["run", "-d"];
        full.extend_from_slice(args);
        self.ok(&full).trim().to_string()
    }

    pub fn job_dir(&self, reference: &str) -> PathBuf {
        PathBuf::from(
            self.job(reference)["job_dir"]
                .as_str()
                .expect("job has a job_dir"),
        )
    }

    /// Poll `show` until the job is in `state` (or panic at the deadline).
    pub fn wait_state(&self, reference: &str, state: &str, within: Duration) -> Value {
        let mut last = Value::Null;
        let ok = poll(within, || {
            last = self.job(reference);
            last["state"] == state
        });
        assert!(ok, "job {reference} never became {state}; last: {last:#}");
        last
    }
}

/// A `belay` command line being built: see the module docs.
pub struct Cmd<'a> {
    belay: &'a Belay,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    deadline: Duration,
}

impl Cmd<'_> {
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.env
            .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }

    /// Allow this long before the command is killed and the test fails.
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }

    fn describe(&self, out: &Output) -> String {
        format!(
            "belay {:?}: {:?}\nstdout: {}\nstderr: {}",
            self.args,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            stderr_of(out)
        )
    }

    /// Run to completion, whatever the exit status.
    pub fn output(&self) -> Output {
        let mut c = self.belay.command(&[]);
        c.args(&self.args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        run_with_deadline(c, self.deadline)
    }

    /// Insist on exit status 0; stdout.
    pub fn ok(&self) -> String {
        let out = self.output();
        assert!(out.status.success(), "{}", self.describe(&out));
        String::from_utf8(out.stdout).expect("utf8")
    }

    /// Insist on exit status 0; stdout parsed as one JSON value.
    pub fn json(&self) -> Value {
        let out = self.output();
        assert!(out.status.success(), "{}", self.describe(&out));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}); {}", self.describe(&out)))
    }

    /// Insist on bad input: exit status 2 and one line on stderr that
    /// contains `names` (the offending value). Returns that line.
    pub fn bad_input(&self, names: &str) -> String {
        let out = self.output();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{}", self.describe(&out));
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains(names), "should name '{names}': {err}");
        err.trim_end().to_string()
    }
}

pub fn run_with_deadline(mut c: Command, deadline: Duration) -> Output {
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            // SAFETY: signalling our own child by pid.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("command {c:?} did not finish within {deadline:?}");
        }
    }
}

/// Poll `f` until it returns true or `within` passes.
pub use belay_testbed::wait_until as poll;

pub fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `key=value` lines of a file in a job directory.
pub fn kv_file(path: &Path) -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A process is running if /proc has it and it is not a zombie.
pub fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let after = &s[s.rfind(')').map_or(0, |i| i + 2)..];
            !after.starts_with('Z')
        }
        Err(_) => false,
    }
}

/// Live (non-zombie) processes whose session id is `sid`.
pub fn session_members(sid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(i) = stat.rfind(')') else { continue };
        let f: Vec<&str> = stat[i + 2..].split(' ').collect();
        if f.len() > 3 && f[0] != "Z" && f[3] == sid.to_string() {
            out.push(pid);
        }
    }
    out
}

/// Kill every process of a session (test clean-up of deliberately orphaned jobs).
pub fn kill_session(sid: u32) {
    for pid in session_members(sid) {
        // SAFETY: signalling processes of a session this test created.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
}
