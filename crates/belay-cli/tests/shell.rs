//! `belay shell` through a real pty against a real sshd: the client runs in
//! a tmux pane of a private tmux server (`-L`, its own socket) that the
//! test types into (`send-keys`) and reads (`capture-pane`). The remote
//! side is the loopback sshd; its sessions keep their tmux sockets in the
//! sshd's private /root (`SetEnv TMUX_TMPDIR`), so the two tmux servers,
//! and the remote servers of tests running at once, never meet.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::remote::Loopback;
use crate::support::*;

const WAIT: Duration = Duration::from_secs(20);

/// A loopback host whose sessions' tmux lives in their own /root; `extra`
/// more variables for `SetEnv`.
fn host(extra: &str) -> Loopback {
    Loopback::start_with(vec![format!("SetEnv TMUX_TMPDIR=/root {extra}")])
}

/// The remote side's tmux sessions (names), as the host sees them.
fn remote_sessions(host: &Loopback) -> Vec<String> {
    let out = host.in_namespace(&[
        "sh",
        "-c",
        "TMUX_TMPDIR=/root tmux list-sessions -F '#{session_name}' 2>/dev/null; true",
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Ends the remote tmux server (it would outlive the sshd otherwise).
struct RemoteTmux<'a>(&'a Loopback);

impl Drop for RemoteTmux<'_> {
    fn drop(&mut self) {
        let _ = self.0.in_namespace(&[
            "sh",
            "-c",
            "TMUX_TMPDIR=/root tmux kill-server 2>/dev/null; true",
        ]);
    }
}

/// The client side: `belay ARGS` in a pane of a private tmux server; when
/// belay exits, its status goes to `status` and `stty -a` of the pane's
/// terminal to `stty`, and the pane stays (with what belay said on its
/// screen) until the pane is dropped.
struct Pane {
    socket: String,
    dir: PathBuf,
}

impl Pane {
    fn start(b: &Belay, args: &[&str], dir: &Path, cols: u32, rows: u32) -> Pane {
        std::fs::create_dir_all(dir).expect("pane dir");
        let c = b.command(args);
        let mut script = String::from("#!/bin/sh\n");
        for (k, v) in c.get_envs() {
            let k = k.to_string_lossy();
            match v {
                Some(v) => script.push_str(&format!(
                    "export {k}={}\n",
                    belay_core::shell::quote(&v.to_string_lossy())
                )),
                None => script.push_str(&format!("unset {k}\n")),
            }
        }
        script.push_str("export TERM=xterm-256color\n");
        if let Some(cwd) = c.get_current_dir() {
            script.push_str(&format!(
                "cd {}\n",
                belay_core::shell::quote(&cwd.to_string_lossy())
            ));
        }
        let words: Vec<String> = std::iter::once(c.get_program())
            .chain(c.get_args())
            .map(|w| belay_core::shell::quote(&w.to_string_lossy()))
            .collect();
        script.push_str(&format!(
            "{} \necho $? > {d}/status.tmp; stty -a > {d}/stty; mv {d}/status.tmp {d}/status\nexec sleep 600\n",
            words.join(" "),
            d = belay_core::shell::quote(&dir.to_string_lossy())
        ));
        let launcher = dir.join("launch.sh");
        std::fs::write(&launcher, script).expect("launcher");
        // Unique per pane: tests running at once name their panes alike.
        static PANES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let socket = format!(
            "belay-test-{}-{}-{}",
            std::process::id(),
            PANES.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
            dir.file_name().unwrap().to_string_lossy()
        );
        let pane = Pane {
            socket,
            dir: dir.to_path_buf(),
        };
        pane.tmux(&[
            "new-session",
            "-d",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
            "/bin/sh",
            launcher.to_str().unwrap(),
        ]);
        pane
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `line` and Enter.
    fn type_line(&self, line: &str) {
        self.tmux(&["send-keys", "-t", "0", "-l", line]);
        self.tmux(&["send-keys", "-t", "0", "Enter"]);
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-t", "0", "-S", "-100"])
    }

    /// Waits for `text` on the screen; returns the screen.
    fn wait_for(&self, text: &str) -> String {
        let mut last = String::new();
        let seen = poll(WAIT, || {
            last = self.screen();
            last.contains(text)
        });
        assert!(seen, "no {text:?} on the screen within {WAIT:?}:\n{last}");
        last
    }

    /// belay's exit status once it has exited.
    fn status(&self) -> i32 {
        let f = self.dir.join("status");
        let ended = poll(WAIT, || f.exists());
        assert!(ended, "belay did not exit; screen:\n{}", self.screen());
        std::fs::read_to_string(&f)
            .expect("status")
            .trim()
            .parse()
            .expect("a number")
    }

    /// `stty -a` of the pane's terminal after belay exited.
    fn stty(&self) -> String {
        std::fs::read_to_string(self.dir.join("stty")).expect("stty -a")
    }

    /// The belay process (the pane's shell's child).
    fn belay_pid(&self) -> u32 {
        let shell: u32 = self
            .tmux(&["display-message", "-p", "-t", "0", "#{pane_pid}"])
            .trim()
            .parse()
            .expect("pane pid");
        let mut pid = None;
        poll(WAIT, || {
            pid = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
                .ok()
                .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()));
            pid.is_some()
        });
        pid.expect("belay runs in the pane")
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
        // tmux leaves the socket file behind.
        let uid = unsafe { libc::getuid() };
        let base = std::env::var("TMUX_TMPDIR").unwrap_or_else(|_| "/tmp".into());
        let _ = std::fs::remove_file(format!("{base}/tmux-{uid}/{}", self.socket));
    }
}

/// Raw mode was undone: line editing and echo are on again.
fn assert_cooked(stty: &str) {
    let flags: Vec<&str> = stty.split_whitespace().collect();
    assert!(
        flags.contains(&"icanon") && flags.contains(&"echo") && flags.contains(&"isig"),
        "the terminal is still raw after belay exited: {stty}"
    );
}

#[test]
fn a_job_shell_lands_in_its_directory_follows_resizes_and_survives_a_killed_client() {
    let host = host("");
    let _tmux = RemoteTmux(&host);
    let b = host.belay();
    let workdir = tempfile::tempdir().expect("workdir");
    let wd = workdir.path().to_str().unwrap();
    let id = b.submit(&[
        "--env",
        "GREETING=it's me",
        "--workdir",
        wd,
        "target",
        "--",
        "sleep 300",
    ]);
    b.wait_state(&id, "running", WAIT);

    let pane = Pane::start(&b, &["shell", &id], &b.scratch("pane1"), 100, 30);
    // Typed lines are echoed as typed: only the shell's expansion matches.
    pane.type_line("echo \"at=$(pwd) id=$BELAY_JOB_ID g=$GREETING\"");
    pane.wait_for(&format!("at={wd} id={id} g=it's me"));
    pane.type_line("echo \"jobdir=$BELAY_JOB_DIR term=$TERM\"");
    let dir = b.job_dir(&id);
    pane.wait_for(&format!("jobdir={}", dir.display()));
    // The remote tmux draws a status line: its panes are one row shorter.
    pane.type_line("echo \"size=$(stty size)\"");
    pane.wait_for("size=29 100");
    pane.tmux(&["resize-window", "-t", "0", "-x", "120", "-y", "40"]);
    pane.type_line("echo \"size=$(stty size)\"");
    pane.wait_for("size=39 120");
    pane.type_line("echo \"before-$((6 * 7))-kill\"");
    pane.wait_for("before-42-kill");
    assert_eq!(remote_sessions(&host), vec![format!("belay-{id}")]);
    // The tmux server (it serves every session) carries no BELAY_JOB_*: a
    // cancel of this job sweeps the processes that carry its BELAY_JOB_DIR.
    let server = host.in_namespace(&[
        "sh",
        "-c",
        "TMUX_TMPDIR=/root tmux display-message -p '#{pid}'",
    ]);
    let server = String::from_utf8_lossy(&server.stdout).trim().to_string();
    let env = std::fs::read(format!("/proc/{server}/environ")).expect("the server's environ");
    assert!(
        !env.split(|c| *c == 0).any(|v| v.starts_with(b"BELAY_JOB_")),
        "the remote tmux server carries the job's variables"
    );

    // The client dies without a word: the shell lives on in tmux.
    let pid = pane.belay_pid();
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert_eq!(pane.status(), 128 + 9);
    drop(pane);
    assert!(
        poll(WAIT, || remote_sessions(&host)
            == vec![format!("belay-{id}")]),
        "the remote tmux session ended with the client: {:?}",
        remote_sessions(&host)
    );

    // Re-attach: the earlier output is on the screen; exit ends it.
    let pane = Pane::start(&b, &["shell", &id], &b.scratch("pane2"), 100, 30);
    pane.wait_for("before-42-kill");
    pane.type_line("exit 5");
    assert_eq!(pane.status(), 5, "screen:\n{}", pane.screen());
    assert_cooked(&pane.stty());
    assert!(
        poll(WAIT, || remote_sessions(&host).is_empty()),
        "the session should be gone after exit: {:?}",
        remote_sessions(&host)
    );

    // --new beside the first, --end ends both.
    let first = Pane::start(&b, &["shell", &id], &b.scratch("pane3"), 100, 30);
    first.type_line("echo \"first-$((1 + 1))\"");
    first.wait_for("first-2");
    let second = Pane::start(&b, &["shell", "--new", &id], &b.scratch("pane4"), 100, 30);
    second.type_line("echo \"second-$((1 + 2))\"");
    second.wait_for("second-3");
    let mut sessions = remote_sessions(&host);
    sessions.sort();
    assert_eq!(
        sessions,
        vec![format!("belay-{id}"), format!("belay-{id}-2")]
    );
    // SIGTERM ends the client (128+15) with the terminal restored; the
    // shell it showed lives on.
    unsafe { libc::kill(second.belay_pid() as i32, libc::SIGTERM) };
    assert_eq!(second.status(), 128 + 15);
    assert_cooked(&second.stty());
    assert_eq!(remote_sessions(&host).len(), 2);
    let out = b.ok(&["shell", "--end", &id]);
    assert!(
        out.contains(&format!("ended belay-{id} on target"))
            && out.contains(&format!("ended belay-{id}-2 on target")),
        "{out}"
    );
    assert!(remote_sessions(&host).is_empty());
    // The attached client sees the end (a tmux client exits 0) and
    // restores the terminal.
    assert_eq!(first.status(), 0);
    assert_cooked(&first.stty());
    let out = b.ok(&["shell", "--end", &id]);
    assert!(out.contains("no shell session"), "{out}");
    b.ok(&["cancel", &id]);
}

#[test]
fn without_tmux_an_ended_job_gets_a_plain_shell_in_its_directory_and_two_notes() {
    // A PATH with everything of /usr/bin but tmux (belay's own scripts
    // need the rest; the user's login shell sets its own PATH).
    let bin = tempfile::tempdir().expect("bin");
    for entry in std::fs::read_dir("/usr/bin").expect("/usr/bin") {
        let entry = entry.expect("entry");
        if entry.file_name() != "tmux" {
            std::os::unix::fs::symlink(entry.path(), bin.path().join(entry.file_name()))
                .expect("link");
        }
    }
    let host = host(&format!("PATH={}", bin.path().display()));
    let _tmux = RemoteTmux(&host);
    let b = host.belay();
    let workdir = tempfile::tempdir().expect("workdir");
    let wd = workdir.path().to_str().unwrap();
    let out = b.run(&["run", "--workdir", wd, "target", "--", "true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let id = b.jobs()[0]["id"].as_str().unwrap().to_string();

    let pane = Pane::start(&b, &["shell", &id], &b.scratch("pane"), 100, 30);
    let screen = pane.wait_for("will not survive a dropped connection");
    assert!(
        screen.contains(&format!(
            "job {id} ended (succeeded, exit 0); opening a shell in its directory"
        )),
        "{screen}"
    );
    pane.type_line("echo \"at=$(pwd) id=$BELAY_JOB_ID\"");
    pane.wait_for(&format!("at={wd} id={id}"));
    pane.type_line("exit 3");
    assert_eq!(pane.status(), 3);
    assert_cooked(&pane.stty());
    assert!(remote_sessions(&host).is_empty(), "no tmux was used");
}

#[test]
fn a_command_without_a_terminal_runs_plainly_and_bad_targets_are_named() {
    let host = host("");
    let _tmux = RemoteTmux(&host);
    let b = host.belay();
    let id = b.submit(&["--env", "A=1", "target", "--", "sleep 300"]);
    let out = b
        .cmd([
            "shell",
            &id,
            "--",
            "echo \"$A $BELAY_JOB_ID\"; pwd; echo oops >&2; exit 4",
        ])
        .output();
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("1 {id}\n/root\n")
    );
    assert_eq!(stderr_of(&out), "oops\n");
    // Several words after `--` are an argv, kept apart.
    let out = b
        .cmd(["shell", "target", "--", "printf", "%s|", "a b", "c"])
        .output();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|c|");
    // No terminal and no command: refused, nothing opened.
    b.cmd(["shell", &id]).bad_input("not a terminal");
    b.cmd(["shell", "no-such-job-or-host.invalid"])
        .bad_input("no-such-job-or-host.invalid");
    b.cmd(["shell", "local"]).bad_input("local");
    b.ok(&["cancel", &id]);
}

#[test]
fn a_passphrase_is_asked_on_the_terminal_before_raw_mode_and_the_pty_gets_term_and_size() {
    let host = host("");
    let key = belay_testbed::KeyPair::generate_with_passphrase(
        host.dir.path(),
        "locked",
        belay_testbed::KeyKind::Ed25519,
        "s3cret phrase",
    )
    .unwrap();
    let _sshd = host.add_interactive_host("locked", &key, Default::default());
    let b = host.belay();
    // No terminal: nothing to ask on; the key's failure, named (exit 1).
    let out = b.run(&["shell", "locked", "--", "echo unlocked"]);
    eprintln!("belay said: {}", stderr_of(&out));
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("locked") && !err.contains("unlocked"), "{err}");
    // A command on a terminal: a pty, no tmux. Its exit status is a line
    // typed into it (stdin through the pty).
    let pane = Pane::start(
        &b,
        &[
            "shell",
            "locked",
            "--",
            "echo \"term=$TERM size=$(stty size) sum=$((2 + 3))\"; read c; exit $c",
        ],
        &b.scratch("pane"),
        90,
        25,
    );
    // Through the daemon, its connection's question is relayed here.
    pane.wait_for("Enter passphrase for key");
    pane.type_line("s3cret phrase");
    let screen = pane.wait_for("sum=5");
    assert!(
        screen.contains("term=xterm-256color size=25 90"),
        "{screen}"
    );
    assert!(
        !screen.contains("s3cret"),
        "the passphrase was echoed:\n{screen}"
    );
    pane.type_line("7");
    assert_eq!(pane.status(), 7, "screen:\n{}", pane.screen());
    assert_cooked(&pane.stty());
    if daemon_mode() {
        // One answer serves the daemon's connection while it lives: a
        // shell with no terminal gets through now (only the daemon's
        // connection, unlocked above, can carry it).
        assert_eq!(b.ok(&["shell", "locked", "--", "echo again"]), "again\n");
    }
}

#[test]
fn pipes_carry_every_byte_exactly_and_an_unreachable_host_is_named() {
    let host = host("");
    let b = host.belay();
    // Every byte value, more than one frame's worth, through `cat` and back;
    // stderr apart; the remote status as belay's.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let input = b.scratch("input");
    std::fs::write(&input, &data).expect("input");
    let mut c = b.command(&["shell", "target", "--", "cat; echo done >&2; exit 9"]);
    c.stdin(std::fs::File::open(&input).expect("input"));
    let out = run_with_deadline(c, WAIT);
    assert_eq!(out.status.code(), Some(9), "{}", stderr_of(&out));
    assert_eq!(stderr_of(&out), "done\n");
    assert!(
        out.stdout == data,
        "{} bytes back of {}",
        out.stdout.len(),
        data.len()
    );

    // A host nothing answers on: exit 1, the host and the real error.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    host.add_hosts(&format!("Host down\n  HostName 127.0.0.1\n  Port {port}\n"));
    let out = b.run(&["shell", "down", "--", "true"]);
    let err = stderr_of(&out);
    eprintln!("belay said: {err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("down") && err.contains("refused"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

#[test]
fn a_dropped_link_or_a_killed_daemon_ends_the_client_with_the_terminal_restored() {
    let host = host("");
    let _tmux = RemoteTmux(&host);
    let b = host.belay();
    let pane = Pane::start(&b, &["shell", "target"], &b.scratch("pane1"), 80, 24);
    pane.type_line("echo \"up-$((3 * 3))\"");
    pane.wait_for("up-9");
    // The link drops (the host's sshd processes die).
    host.sshd.kill_sessions();
    let status = pane.status();
    eprintln!("after the drop: {status}; screen:\n{}", pane.screen());
    assert_ne!(status, 0, "screen:\n{}", pane.screen());
    assert_cooked(&pane.stty());
    drop(pane);

    if daemon_mode() {
        // The daemon dies under a shell: one line saying so, exit 1, the
        // terminal restored.
        let pane = Pane::start(&b, &["shell", "target"], &b.scratch("pane2"), 80, 24);
        pane.type_line("echo \"again-$((2 * 2))\"");
        pane.wait_for("again-4");
        let v: serde_json::Value =
            serde_json::from_str(&b.ok(&["serve", "--status", "--json"])).unwrap();
        let pid = v["pid"].as_u64().expect("pid") as i32;
        // SAFETY: signalling the daemon this test's commands started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(pane.status(), 1, "screen:\n{}", pane.screen());
        assert!(pane.screen().contains("went away"), "{}", pane.screen());
        assert_cooked(&pane.stty());
    }
}
