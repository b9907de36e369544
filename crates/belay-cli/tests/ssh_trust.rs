//! Keys and trust through the real `belay` binary and a real OpenSSH sshd:
//! if ssh refuses it, belay refuses it, and says why. Unprotected key
//! files, BatchMode and prompts (on a real pseudo-terminal from `script`),
//! hostile host text on the terminal, host names that would reach a shell
//! through ProxyCommand, and `-vv` diagnostics that never show a secret.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::remote::Loopback;
use crate::support::*;
use belay_testbed::{KeyKind, KeyPair, Sshd, SshdOptions};

/// `belay` under a real pseudo-terminal (`script`), its output collected
/// as it comes.
struct OnTerminal {
    child: Child,
    stdin: ChildStdin,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl OnTerminal {
    /// Runs `sh -c LINE` on a new terminal; `BELAY` in LINE is the binary.
    fn start(b: &Belay, host: &Loopback, line: &str) -> OnTerminal {
        let line = line.replace("BELAY", env!("CARGO_BIN_EXE_belay"));
        let mut child = Command::new("script")
            .args(["-q", "-e", "-c", &line, "/dev/null"])
            .env("BELAY_HOME", b.home.path())
            .env("BELAY_SSH_CONFIG", &host.config)
            .env("HOME", b.scratch("home"))
            .env("SHELL", "/bin/sh")
            .env("BELAY_NO_DAEMON", if daemon_mode() { "" } else { "1" })
            .env_remove("BELAY_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = child.stdout.take().expect("stdout");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        OnTerminal { child, stdin, seen }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Polls until the output contains `what`, or the process ended, or
    /// the deadline passed; true if it appeared.
    fn wait_for(&mut self, what: &str, within: Duration) -> bool {
        let end = Instant::now() + within;
        loop {
            if self.text().contains(what) {
                return true;
            }
            if Instant::now() > end || self.child.try_wait().ok().flatten().is_some() {
                return self.text().contains(what);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).expect("write to the terminal");
        self.stdin.flush().expect("flush");
    }

    /// Waits (deadline) for the end; returns the exit code and all output.
    fn finish(mut self, within: Duration) -> (Option<i32>, String) {
        let end = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                // The reader thread drains what is left.
                let done = Instant::now() + Duration::from_secs(2);
                while Instant::now() < done && Arc::strong_count(&self.seen) > 1 {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return (st.code(), self.text());
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!(
                    "still running after {within:?}; output so far:\n{}",
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A second sshd that authorizes an encrypted key, reachable as `locked`
/// (with `BatchMode yes` or, like a user's interactive config, without).
fn locked_host(host: &Loopback, batch_mode: bool) -> (Sshd, KeyPair) {
    let key = KeyPair::generate_with_passphrase(
        host.dir.path(),
        "locked",
        KeyKind::Ed25519,
        "s3cret phrase",
    )
    .unwrap();
    let sshd = host.add_interactive_host("locked", &key, SshdOptions::default());
    if batch_mode {
        // The alias's first block leaves BatchMode out; this one sets it.
        host.add_hosts("Host locked\n  BatchMode yes\n");
    }
    (sshd, key)
}

#[test]
fn a_private_key_readable_by_others_is_refused_as_ssh_refuses_it() {
    let host = Loopback::start();
    let b = host.belay();
    std::fs::set_permissions(&host.key.private, std::fs::Permissions::from_mode(0o644)).unwrap();
    // OpenSSH itself refuses it (the parity this test holds belay to).
    let ssh = Command::new("ssh")
        .arg("-F")
        .arg(&host.config)
        .args(["target", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ne!(ssh.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&ssh.stderr).contains("UNPROTECTED PRIVATE KEY FILE"),
        "{}",
        String::from_utf8_lossy(&ssh.stderr)
    );

    let out = b.run(&["run", "target", "--", "echo", "ran"]);
    let err = stderr_of(&out);
    eprintln!("belay said: {err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty(), "the job ran: {err}");
    assert!(err.contains("UNPROTECTED PRIVATE KEY FILE"), "{err}");
    assert!(err.contains("0644"), "{err}");
    let fix = format!("chmod 600 {}", host.key.private.display());
    assert!(err.contains(&fix), "names the fix '{fix}': {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(b.jobs().is_empty(), "nothing recorded");

    // The fix works.
    std::fs::set_permissions(&host.key.private, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(b.ok(&["run", "target", "--", "echo", "ran"]), "ran\n");
}

#[test]
fn batch_mode_never_asks_for_a_passphrase_even_on_a_terminal() {
    let host = Loopback::start();
    let (_sshd, _key) = locked_host(&host, true);
    let b = host.belay();
    let mut t = OnTerminal::start(&b, &host, "BELAY run locked -- echo unlocked");
    let asked = t.wait_for("passphrase for key", Duration::from_secs(30));
    let (code, text) = t.finish(Duration::from_secs(30));
    eprintln!("on the terminal: {text}");
    assert!(!asked, "asked despite BatchMode yes:\n{text}");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("BatchMode yes"), "says why: {text}");
    assert!(!text.contains("unlocked"), "{text}");
}

#[test]
fn ctrl_c_at_a_passphrase_prompt_restores_the_terminal() {
    let host = Loopback::start();
    let (_sshd, _key) = locked_host(&host, false);
    let b = host.belay();
    // The shell traps SIGINT (belay does not inherit the trap), then shows
    // the terminal's echo flag as belay left it: `echo` or `-echo`.
    let mut t = OnTerminal::start(
        &b,
        &host,
        "trap 'echo INTERRUPTED' INT; BELAY run locked -- echo unlocked; \
         stty -a | tr ' ;' '\\n\\n' | grep -x -e echo -e -echo | sed 's/^/ECHO-STATE:/'",
    );
    assert!(
        t.wait_for("Enter passphrase for key", Duration::from_secs(30)),
        "no prompt: {}",
        t.text()
    );
    t.send(b"\x03");
    let (_, text) = t.finish(Duration::from_secs(30));
    eprintln!("on the terminal: {text}");
    assert!(text.contains("ECHO-STATE:"), "{text}");
    assert!(
        text.contains("ECHO-STATE:echo") && !text.contains("ECHO-STATE:-echo"),
        "the terminal was left without echo: {text}"
    );
    assert!(!text.contains("unlocked"), "{text}");
}

#[test]
fn host_text_reaches_the_terminal_without_control_sequences() {
    // An account whose "shell" prints escape sequences (retitle the window,
    // clear the screen) and refuses to run anything.
    let host = Loopback::start_options(SshdOptions {
        extra_config: vec![
            r"ForceCommand printf '\033]0;pwned\007\033[2Jhostile\n' >&2; exit 1".into(),
        ],
        ..SshdOptions::default()
    });
    let b = host.belay();
    let out = b.run(&["run", "target", "--", "true"]);
    let err = stderr_of(&out);
    eprintln!("belay said: {err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("hostile"), "the host's words are kept: {err}");
    assert!(
        !err.contains('\x1b') && !err.contains('\x07'),
        "raw control bytes: {err:?}"
    );
    assert!(err.contains("\\033]0;pwned\\007"), "shown escaped: {err:?}");
    // `host check` prints per-host failures on stdout: the same.
    let out = b.run(&["host", "check", "target"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAILED") && text.contains("hostile"),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "raw control bytes: {text:?}");
}

#[test]
fn shell_metacharacters_in_a_command_line_host_name_are_refused() {
    let host = Loopback::start();
    let marker = host.dir.path().join("injected");
    host.add_hosts(&format!(
        "Host *\n  ProxyCommand touch {} ; nc %h %p\n",
        marker.display()
    ));
    let b = host.belay();
    for (name, shown) in [
        ("a;touch${IFS}x", "';'"),
        ("x$(id)", "'$'"),
        ("bad;user@target", "user name 'bad;user' contains ';'"),
    ] {
        let out = b.run(&["run", name, "--", "true"]);
        let err = stderr_of(&out);
        eprintln!("belay said: {err}");
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(shown), "{name}: names {shown}: {err}");
    }
    assert!(!marker.exists(), "a ProxyCommand ran");
    assert!(b.jobs().is_empty());
}

#[test]
fn verbose_output_names_each_step_and_never_a_secret() {
    let host = Loopback::start();
    let (_sshd, _key) = locked_host(&host, false);
    let b = host.belay();
    // The steps of this command's own connection: without a daemon,
    // whose connection's steps go to its serve.log instead.
    let mut t = OnTerminal::start(
        &b,
        &host,
        "BELAY --no-daemon -vv run --env TOKEN=env-secret-value locked -- echo unlocked",
    );
    assert!(
        t.wait_for("Enter passphrase for key", Duration::from_secs(30)),
        "no prompt: {}",
        t.text()
    );
    t.send(b"s3cret phrase\n");
    let (code, text) = t.finish(Duration::from_secs(60));
    eprintln!("belay -vv said:\n{text}");
    assert_eq!(code, Some(0), "{text}");
    for step in [
        "resolved with ssh -G",
        "connect: TCP connected",
        "key exchange done",
        "authentication attempt",
        "authenticated",
        "protocol script",
    ] {
        assert!(text.contains(step), "-vv shows '{step}':\n{text}");
    }
    assert!(text.contains("hop=locked"), "names the hop:\n{text}");
    assert!(!text.contains("s3cret"), "the passphrase leaked:\n{text}");
    assert!(
        !text.contains("env-secret-value"),
        "the --env value leaked:\n{text}"
    );
    assert!(text.contains("unlocked"), "{text}");

    // Without -v: none of it. A bad BELAY_LOG: exit 2, one line naming it.
    let out = b.run(&["ps", "--all"]);
    assert!(!stderr_of(&out).contains("protocol script"));
    let out = b.run_env(&["ps"], "BELAY_LOG", "belay_ssh=loud");
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("belay_ssh=loud"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(stderr_of(&out).trim().lines().count(), 1);
}

#[test]
fn host_trust_asks_on_the_terminal_and_records_only_a_yes() {
    let host = Loopback::start();
    let b = host.belay();
    std::fs::write(&host.known_hosts, "").unwrap();
    // (Through the daemon the question is still this terminal's.)
    let mut t = OnTerminal::start(&b, &host, "BELAY host trust target");
    assert!(
        t.wait_for("[y/N]", Duration::from_secs(30)),
        "no question: {}",
        t.text()
    );
    assert!(t.text().contains("fingerprint SHA256:"), "{}", t.text());
    t.send(b"n\n");
    let (code, text) = t.finish(Duration::from_secs(30));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("nothing recorded"), "{text}");
    assert_eq!(std::fs::read_to_string(&host.known_hosts).unwrap(), "");

    let mut t = OnTerminal::start(&b, &host, "BELAY host trust target");
    assert!(
        t.wait_for("[y/N]", Duration::from_secs(30)),
        "no question: {}",
        t.text()
    );
    t.send(b"y\n");
    let (code, text) = t.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("recorded in "), "{text}");
    assert!(
        std::fs::read_to_string(&host.known_hosts)
            .unwrap()
            .contains("ssh-"),
        "nothing recorded"
    );
    assert_eq!(b.ok(&["run", "target", "--", "echo trusted"]), "trusted\n");
}
