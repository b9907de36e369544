//! The job lifecycle on a real sshd over loopback, host keys, and bad
//! input: the same behaviour as on `local`, through belay-ssh.

use std::time::Duration;

use crate::support::remote::Loopback;
use crate::support::*;

#[test]
fn a_remote_job_streams_exits_and_is_tracked() {
    let host = Loopback::start();
    let b = host.belay();
    let out = b.run(&[
        "run",
        "target",
        "--",
        "sh",
        "-c",
        "echo hi; echo oops >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert!(stderr_of(&out).contains("oops"));
    let jobs = b.jobs();
    assert_eq!(jobs[0]["state"], "failed");
    assert_eq!(jobs[0]["exit_code"], 3);
    assert_eq!(jobs[0]["host"], "target");
    let dir = jobs[0]["job_dir"].as_str().unwrap();
    assert!(
        dir.starts_with("/root/.belay/jobs/"),
        "default workroot: {dir}"
    );

    // Environment, default workdir (the remote home) and a shell line.
    let out = b.ok(&[
        "run",
        "--env",
        "X=a b",
        "target",
        "--",
        "echo \"$X\" in $(pwd)",
    ]);
    assert_eq!(out, "a b in /root\n");
    // logs -f and wait on a remote job.
    let id = b.submit(&[
        "target",
        "--",
        "for i in 1 2 3; do echo $i; sleep 0.2; done; exit 4",
    ]);
    assert_eq!(b.run(&["logs", "-f", &id]).stdout, b"1\n2\n3\n");
    assert_eq!(b.run(&["wait", &id]).status.code(), Some(4));
    assert_eq!(b.run(&["logs", &id]).stdout, b"1\n2\n3\n");
    // A job the store has seen end needs no host to be waited for.
    host.sshd.kill();
    let waited = b.run(&["wait", &id]);
    assert_eq!(waited.status.code(), Some(4), "{}", stderr_of(&waited));
}

#[test]
fn cancel_on_a_remote_host_stops_the_whole_tree() {
    let host = Loopback::start();
    let b = host.belay();
    let pids = b.scratch("pids");
    let script = format!(
        "sleep 300 & echo $! >> '{p}'; (sleep 300 & echo $! >> '{p}'; wait) & wait",
        p = pids.display()
    );
    let id = b.submit(&["target", "--", &script]);
    assert!(poll(Duration::from_secs(10), || {
        std::fs::read_to_string(&pids).is_ok_and(|s| s.lines().count() == 2)
    }));
    let job = b.wait_state(&id, "running", Duration::from_secs(10));
    let sid: u32 = job["scheduler_id"].as_str().unwrap().parse().unwrap();
    assert!(!session_members(sid).is_empty());
    b.ok(&["cancel", &id]);
    assert_eq!(b.job(&id)["state"], "cancelled");
    assert!(
        poll(Duration::from_secs(5), || session_members(sid).is_empty()),
        "left running: {:?}",
        session_members(sid)
    );
    for p in std::fs::read_to_string(&pids).unwrap().lines() {
        assert!(!is_running(p.parse().unwrap()), "grandchild {p} survived");
    }
}

#[test]
fn protocol_calls_do_not_pay_the_login_shell() {
    // A .bashrc that sleeps 0.5 s: the job's own shell pays it (modules
    // work), belay's protocol calls do not.
    let dir = tempfile::tempdir().unwrap();
    let key = belay_testbed::KeyPair::generate(dir.path(), "id", belay_testbed::KeyKind::Ed25519)
        .unwrap();
    let sshd = belay_testbed::Sshd::start(belay_testbed::SshdOptions {
        authorized_keys: vec![key.public_line().unwrap()],
        home_files: vec![
            (
                ".bashrc".into(),
                "echo x >> ~/.bashrc-runs\nsleep 0.5\nexport FROM_PROFILE=yes\n".into(),
            ),
            (".profile".into(), ". ~/.bashrc\n".into()),
        ],
        extra_config: vec!["PermitUserEnvironment no".into()],
        ..Default::default()
    })
    .unwrap();
    let kh = dir.path().join("known_hosts");
    std::fs::write(&kh, format!("{}\n", sshd.known_hosts_line("127.0.0.1"))).unwrap();
    let cfg = dir.path().join("config");
    std::fs::write(
        &cfg,
        belay_testbed::HostBlock::new("slow")
            .hostname("127.0.0.1")
            .port(sshd.port())
            .test_client(&key, &kh)
            .to_string(),
    )
    .unwrap();
    let b = Belay::new().with_env("BELAY_SSH_CONFIG", cfg.to_str().unwrap());
    let out = b.ok(&["run", "slow", "--", "echo $FROM_PROFILE"]);
    assert_eq!(out, "yes\n", "the job runs in a login shell");
    // Protocol calls on an established connection do not pay it: `host
    // check` times one round trip after connecting. (Each belay process
    // connects once; the shell it keeps pays the .bashrc once, at start.)
    for _ in 0..3 {
        let out = b.ok(&["host", "check", "slow"]);
        let rt: f64 = out
            .split("round trip ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no round trip in: {out}"));
        assert!(
            rt < 100.0,
            "a protocol call took {rt} ms: it paid the 500 ms .bashrc"
        );
    }
    // Many calls in one process: cancelling five jobs pays the .bashrc at
    // most once (the shell the process keeps), not once per job. Each
    // start is counted on the host, so this holds however loaded the
    // machine is; the count is read from the host's home directly (the
    // sessions' /root), so reading it starts no shell. One late start of
    // an earlier process (a shell it opened in the background just before
    // it exited) may land in between.
    let ids: Vec<String> = (0..5)
        .map(|_| b.submit(&["slow", "--", "sleep 300"]))
        .collect();
    let runs = std::path::PathBuf::from(format!("/proc/{}/root/root/.bashrc-runs", sshd.pid()));
    let starts = || -> usize {
        std::fs::read_to_string(&runs)
            .expect("the host's .bashrc counter")
            .lines()
            .count()
    };
    let before = starts();
    let mut args = vec!["cancel", "--grace", "1"];
    args.extend(ids.iter().map(String::as_str));
    b.ok(&args);
    let added = starts() - before;
    assert!(
        added <= 2,
        "cancelling five jobs started {added} shells that read .bashrc (the cancel's one, a late one at most)"
    );
}

#[test]
fn unknown_and_changed_host_keys_are_refused_until_trusted() {
    let host = Loopback::start();
    let b = host.belay();
    std::fs::write(&host.known_hosts, "").unwrap();
    let out = b.run(&["run", "target", "--", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(err.contains("belay host trust"), "names the remedy: {err}");
    assert!(b.jobs().is_empty(), "nothing recorded for a refused host");

    // Without a terminal and without --yes/--fingerprint, trust refuses.
    let out = b.run(&["host", "trust", "target"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    let fp = shown
        .split("fingerprint ")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    assert!(fp.starts_with("SHA256:"), "{shown}");
    let wrong = b.run(&["host", "trust", "target", "--fingerprint", "SHA256:wrong"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&host.known_hosts).unwrap(), "");
    let ok = b.ok(&["host", "trust", "target", "--fingerprint", &fp]);
    assert!(ok.contains("recorded in"), "{ok}");
    assert_eq!(b.ok(&["run", "target", "--", "echo trusted"]), "trusted\n");

    // A changed key: refused, naming the file and line to fix.
    let other = belay_testbed::Sshd::start(Default::default()).unwrap();
    let forged = format!(
        "[127.0.0.1]:{} {}\n",
        host.sshd.port(),
        other.host_key_line()
    );
    std::fs::write(&host.known_hosts, forged).unwrap();
    let out = b.run(&["run", "target", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!("{}:1", host.known_hosts.display())),
        "{err}"
    );
    let forgot = b.ok(&["host", "forget", "target"]);
    assert!(forgot.contains(":1"), "{forgot}");
}

#[test]
fn bad_hosts_fail_with_the_real_ssh_error_and_record_nothing() {
    let host = Loopback::start();
    let b = host.belay();
    // Unknown alias: not in the config and not resolvable -> bad input.
    let out = b.run(&["run", "no-such-host-belay.invalid", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("no-such-host-belay.invalid"));
    // Unreachable, and not to be queued: a failure (1), with the OS's
    // reason. (Without --no-queue the daemon would queue it; tests/daemon.rs.)
    let out = b.run(&["run", "--no-queue", "closed", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).to_lowercase().contains("refused"),
        "{}",
        stderr_of(&out)
    );
    // Refused auth: a failure (1), naming what was tried.
    let stranger = belay_testbed::KeyPair::generate(
        host.dir.path(),
        "stranger",
        belay_testbed::KeyKind::Ed25519,
    )
    .unwrap();
    host.add_hosts(
        &belay_testbed::HostBlock::new("wrongkey")
            .hostname("127.0.0.1")
            .port(host.sshd.port())
            .test_client(&stranger, &host.known_hosts)
            .to_string(),
    );
    let out = b.run(&["run", "wrongkey", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(err.contains("stranger"), "names the key tried: {err}");
    assert!(b.jobs().is_empty());
    // host check says the same, per host.
    let out = b.run(&["host", "check", "target", "closed"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("target: ok") && text.contains("closed: FAILED"),
        "{text}"
    );
}

#[test]
fn host_show_lists_what_ssh_resolves() {
    let host = Loopback::start();
    let b = host.belay();
    let out = b.ok(&["host", "show", "target"]);
    assert!(
        out.contains(&format!("root@127.0.0.1:{}", host.sshd.port())),
        "{out}"
    );
    assert!(
        out.contains(&host.key.private.display().to_string()),
        "{out}"
    );
    assert!(out.contains("jump chain: none"), "{out}");
    b.ok(&["host", "check", "target"]);
    let list = b.ok(&["host", "list"]);
    assert!(list.contains("target") && list.contains("local"), "{list}");
}

#[test]
fn an_encrypted_key_asks_for_its_passphrase_on_the_terminal_only() {
    let host = Loopback::start();
    let key = belay_testbed::KeyPair::generate_with_passphrase(
        host.dir.path(),
        "locked",
        belay_testbed::KeyKind::Ed25519,
        "s3cret phrase",
    )
    .unwrap();
    let _sshd = host.add_interactive_host("locked", &key, Default::default());
    let b = host.belay();

    // No terminal: no prompt, a clear failure naming the key.
    let out = b.run(&["run", "locked", "--", "echo", "unlocked"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("locked"), "{}", stderr_of(&out));

    // On a terminal (a real pty from `script`): asked, answered, connected
    // (through the daemon the question is relayed to this terminal).
    let (text, code) = on_a_terminal(
        &b,
        &host,
        "BELAY run locked -- echo unlocked",
        "Enter passphrase for key",
        "s3cret phrase",
    );
    assert!(
        !text.contains("s3cret"),
        "the passphrase was echoed: {text}"
    );
    assert!(text.contains("unlocked"), "{text}");
    assert_eq!(code, 0, "{text}");

    if daemon_mode() {
        // One answer serves the daemon's connection for as long as it
        // lives: a command with no terminal now gets through (only the
        // daemon's connection, unlocked above, can carry it).
        assert_eq!(b.ok(&["run", "locked", "--", "echo again"]), "again\n");
    }
}

/// Runs `line` (BELAY = the binary) on a new terminal (a real pty from
/// `script`), answers `answer` once `asked` is on it — only once asked, as
/// a person would (typed-ahead input is echoed by the terminal before
/// belay can turn echo off) — and returns what the terminal showed and the
/// exit status.
fn on_a_terminal(
    b: &Belay,
    host: &Loopback,
    line: &str,
    asked: &str,
    answer: &str,
) -> (String, i32) {
    use std::io::{Read, Write};
    let line = line.replace("BELAY", env!("CARGO_BIN_EXE_belay"));
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("BELAY_HOME", b.home.path())
        .env("BELAY_SSH_CONFIG", &host.config)
        .env("HOME", b.scratch("home"))
        .env("BELAY_NO_DAEMON", if daemon_mode() { "" } else { "1" })
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains(asked) {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "never asked: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
    stdout.read_to_end(&mut seen).unwrap();
    let status = child.wait().unwrap();
    (
        String::from_utf8_lossy(&seen).into_owned(),
        status.code().unwrap_or(-1),
    )
}

#[test]
fn a_second_factor_is_asked_on_the_terminal_and_one_answer_serves_the_connection() {
    // sshd wants a key AND a keyboard-interactive answer (a PAM stack whose
    // one question is a one-time code), as HPC login nodes with 2FA do.
    let host = Loopback::start();
    let check = host.dir.path().join("otp-check");
    std::fs::write(&check, "#!/bin/sh\nread -r code\n[ \"$code\" = 424242 ]\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&check, std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = belay_testbed::KeyPair::generate(
        host.dir.path(),
        "otpkey",
        belay_testbed::KeyKind::Ed25519,
    )
    .unwrap();
    let _sshd = host.add_interactive_host(
        "otp",
        &key,
        belay_testbed::SshdOptions {
            extra_config: vec!["AuthenticationMethods publickey,keyboard-interactive".into()],
            pam_stack: Some(format!(
                "auth required pam_exec.so expose_authtok quiet {}\nauth required pam_permit.so\naccount required pam_permit.so\nsession required pam_permit.so\n",
                check.display()
            )),
            ..Default::default()
        },
    );
    let b = host.belay();

    // No terminal: no prompt, a clear failure.
    let out = b.run(&["run", "otp", "--", "echo", "in"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("keyboard-interactive"),
        "{}",
        stderr_of(&out)
    );

    // A wrong code: refused, nothing runs.
    let (text, code) = on_a_terminal(&b, &host, "BELAY run otp -- echo in", "assword", "000000");
    assert_eq!(code, 1, "{text}");
    assert!(!text.contains("\nin"), "{text}");

    // The right one: asked on the terminal (through the daemon, relayed to
    // it), not echoed, and the job runs.
    let (text, code) = on_a_terminal(&b, &host, "BELAY run otp -- echo in", "assword", "424242");
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("424242"), "the answer was echoed: {text}");
    assert!(text.contains("in"), "{text}");

    if daemon_mode() {
        // One answer serves the daemon's connection while it lives: a
        // command with no terminal gets through on it.
        assert_eq!(b.ok(&["run", "otp", "--", "echo again"]), "again\n");
    }
}

#[test]
fn a_link_cut_under_logs_follow_repeats_and_loses_nothing() {
    let host = Loopback::start();
    let b = host.belay();
    let id = b.submit(&[
        "target",
        "--",
        "for i in $(seq 1 30); do echo line $i; sleep 0.1; done",
    ]);
    let mut child = b.spawn(&["logs", "-f", &id]);
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 64];
    use std::io::Read;
    while !String::from_utf8_lossy(&seen).contains("line 5\n") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "logs -f ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    // Cut the link: kill the per-connection sshd processes (what a dropped
    // network does to them), not the detached job.
    let mut cut = 0;
    for pid in host.sshd.session_pids() {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "sshd" && pid != host.sshd.pid() {
            // SAFETY: killing sshd processes of the test's own sshd.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            cut += 1;
        }
    }
    assert!(cut > 0, "no connection to cut");
    stdout.read_to_end(&mut seen).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&seen));
    let want: String = (1..=30).map(|i| format!("line {i}\n")).collect();
    assert_eq!(
        String::from_utf8_lossy(&seen),
        want,
        "every byte exactly once"
    );
    assert_eq!(b.job(&id)["state"], "succeeded");
    // The idempotent read was re-run on a fresh connection by the
    // transport: the user saw no failure, not even a retry warning.
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!err.contains("retrying"), "{err}");
}

#[test]
fn a_non_root_account_runs_jobs_in_its_own_home() {
    let host = Loopback::start();
    let user = belay_testbed::TestUser::create().expect("test user");
    host.add_user_host("asuser", &user);
    let b = host.belay();
    let out = b.ok(&["run", "asuser", "--", "sh", "-c", "id -u; pwd"]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(user.uid().to_string().as_str()));
    assert_eq!(lines.next(), Some(user.home().to_str().unwrap()));
    let jobs = b.jobs();
    let dir = jobs[0]["job_dir"].as_str().unwrap();
    assert!(
        dir.starts_with(user.path(".belay/jobs").to_str().unwrap()),
        "the user's own workroot: {dir}"
    );
}

#[test]
fn one_command_asks_ssh_for_a_hosts_settings_once() {
    // `run` checks the name before recording anything, the engine checks
    // it again, and the connection needs it: one `ssh -G` answers all three.
    let host = Loopback::start();
    let b = host.belay();
    // (Counted in the command's own log: without the daemon, where the
    // command does the resolving. Through it, the daemon resolves once
    // per host for its whole life.)
    let out = b
        .cmd(["-vv", "--no-daemon", "run", "-d", "target", "--", "true"])
        .output();
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err.matches("resolved with ssh -G").count(),
        1,
        "one ssh -G per hop per command: {err}"
    );
}
