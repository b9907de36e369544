//! Crash safety on the embedded host: belay SIGKILLed at every step of a
//! submit, wrappers killed without an exit file, recycled pids, reboots.

use std::time::Duration;

use crate::support::*;

#[test]
fn a_submit_killed_at_any_step_launches_exactly_once() {
    for point in ["after-record", "after-stage", "after-launch", "after-store"] {
        let b = Belay::new();
        let counter = b.scratch("counter");
        let cmd = format!("echo x >> '{}'; sleep 0.2", counter.display());
        let name = format!("fp-{point}");
        let out = b.run_env(
            &["run", "-d", "--name", &name, "local", "--", &cmd],
            "BELAY_FAILPOINT",
            point,
        );
        assert_killed_by_failpoint(&out, point);

        // Recovery is what any later command does: reconcile from the job dir.
        b.ok(&["ps"]);
        b.ok(&["ps"]);
        let waited = b.run(&["wait", &name]);
        assert_eq!(
            waited.status.code(),
            Some(0),
            "{point}: {}",
            stderr_of(&waited)
        );
        b.ok(&["ps", "--all"]);
        let job = b.job(&name);
        assert_eq!(job["state"], "succeeded", "{point}: {job:#}");
        let lines = std::fs::read_to_string(&counter).unwrap_or_default();
        assert_eq!(
            lines.lines().count(),
            1,
            "{point}: launched {} times",
            lines.lines().count()
        );
        let events: Vec<_> = job["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["to"].clone())
            .collect();
        assert_eq!(events.first().unwrap(), "queued", "{point}");
        assert_eq!(events.last().unwrap(), "succeeded", "{point}");
    }
}

#[test]
fn a_wrapper_killed_without_exit_file_is_lost_never_succeeded() {
    let b = Belay::new();
    let id = b.submit(&["local", "--", "sleep 300"]);
    b.wait_state(&id, "running", Duration::from_secs(10));
    let started = kv_file(&b.job_dir(&id).join("started"));
    let pid: i32 = started["pid"].parse().unwrap();
    let sid: u32 = started["sid"].parse().unwrap();
    // SAFETY: killing the job's wrapper, a process this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let job = b.wait_state(&id, "lost", Duration::from_secs(10));
    let reason = job["reason"].as_str().unwrap();
    assert!(
        reason.contains("gone") && reason.contains("no exit file"),
        "{reason}"
    );
    assert!(job["exit_code"].is_null());
    // The orphaned `sleep` of the lost job is stopped too: nothing leaks.
    assert!(
        poll(Duration::from_secs(10), || session_members(sid).is_empty()),
        "leaked: {:?}",
        session_members(sid)
    );
    assert_eq!(b.job(&id)["state"], "lost", "stays lost");
}

#[test]
fn a_recycled_pid_does_not_fool_liveness() {
    let b = Belay::new();
    let id = b.submit(&["local", "--", "sleep 300"]);
    b.wait_state(&id, "running", Duration::from_secs(10));
    let dir = b.job_dir(&id);
    let started_path = dir.join("started");
    let text = std::fs::read_to_string(&started_path).unwrap();
    let sid: u32 = kv_file(&started_path)["sid"].parse().unwrap();
    kill_session(sid);
    assert!(poll(Duration::from_secs(5), || session_members(sid).is_empty()));
    // An unrelated live process now holds the pid the job file names.
    let mut stranger = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .unwrap();
    let old_pid = kv_file(&started_path)["pid"].clone();
    let forged = text.replace(
        &format!("pid={old_pid}\n"),
        &format!("pid={}\n", stranger.id()),
    );
    std::fs::write(&started_path, forged).unwrap();

    let job = b.wait_state(&id, "lost", Duration::from_secs(10));
    assert!(
        job["reason"].as_str().unwrap().contains("another process"),
        "{job:#}"
    );
    assert!(
        is_running(stranger.id()),
        "belay must not touch the process that reused the pid"
    );
    stranger.kill().unwrap();
    stranger.wait().unwrap();
}

#[test]
fn a_changed_boot_id_means_lost_and_no_signal_to_anyone() {
    let b = Belay::new();
    let boot = b.scratch("boot_id");
    std::fs::write(&boot, "boot-a\n").unwrap();
    let b = b.with_env("BELAY_BOOT_ID_FILE", boot.to_str().unwrap());
    let id = b.submit(&["local", "--", "sleep 300"]);
    b.wait_state(&id, "running", Duration::from_secs(10));
    let sid: u32 = kv_file(&b.job_dir(&id).join("started"))["sid"]
        .parse()
        .unwrap();
    assert_eq!(
        kv_file(&b.job_dir(&id).join("started"))["boot_id"],
        "boot-a"
    );
    std::fs::write(&boot, "boot-b\n").unwrap();
    let job = b.wait_state(&id, "lost", Duration::from_secs(10));
    assert!(
        job["reason"].as_str().unwrap().contains("rebooted"),
        "{job:#}"
    );
    // After a "reboot" no process can be the job's, so none was signalled.
    assert!(!session_members(sid).is_empty());
    kill_session(sid);
}

#[test]
fn a_cancel_that_arrives_before_the_wrapper_starts_wins() {
    // A slow `setsid` (a loaded host) keeps the job `pending` longer than
    // cancel waits for it: the wrapper must find the cancel when it starts.
    let b = Belay::new();
    let bin = b.scratch("bin");
    std::fs::create_dir(&bin).unwrap();
    let slow = bin.join("setsid");
    std::fs::write(&slow, "#!/bin/sh\nsleep 4\nexec /usr/bin/setsid \"$@\"\n").unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let b = b.with_env("PATH", &path);
    let marker = b.scratch("ran");
    let id = b.submit(&["local", "--", &format!("touch '{}'", marker.display())]);
    assert_eq!(b.job(&id)["state"], "pending");
    let out = b.ok(&["cancel", &id]);
    assert!(out.contains("will not start"), "{out}");
    let job = b.wait_state(&id, "cancelled", Duration::from_secs(20));
    assert!(!marker.exists(), "the command ran after it was cancelled");
    assert_eq!(job["exit_code"], 143);
}

#[test]
fn user_env_cannot_break_the_wrapper() {
    let b = Belay::new();
    let evil = b.scratch("evil");
    let out = b.run(&[
        "run",
        "--env",
        "PATH=/nonexistent",
        "--env",
        &format!("belay_d={}", evil.display()),
        "--env",
        "IFS=,",
        "--env",
        &format!("d={}", evil.display()),
        "local",
        "--",
        "echo hi",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(b.jobs()[0]["state"], "succeeded");
    assert!(
        !evil.exists(),
        "the wrapper wrote where a user variable pointed"
    );
}

#[test]
fn a_job_seen_from_another_node_is_neither_lost_nor_signalled() {
    // Login nodes sharing a home: a probe that lands on another node (here
    // another UTS namespace with another hostname) cannot judge the job.
    let b = Belay::new();
    let id = b.submit(&["local", "--", "sleep 300"]);
    let job = b.wait_state(&id, "running", Duration::from_secs(10));
    let sid: u32 = job["scheduler_id"].as_str().unwrap().parse().unwrap();
    let elsewhere = |args: &[&str]| {
        let mut c = std::process::Command::new("unshare");
        c.args([
            "-u",
            "sh",
            "-c",
            "hostname belay-other-node && exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_belay"),
        ])
        .args(args)
        .env("BELAY_HOME", b.home.path())
        // Another machine: it cannot reach this one's daemon socket.
        .env("BELAY_NO_DAEMON", "1")
        .env("HOME", b.scratch("home"));
        run_with_deadline(c, Duration::from_secs(60))
    };
    let ps = elsewhere(&["ps", "--json"]);
    assert!(ps.status.success(), "{}", stderr_of(&ps));
    assert_eq!(b.job(&id)["state"], "running");
    let cancel = elsewhere(&["cancel", "--grace", "1", &id]);
    assert_eq!(
        cancel.status.code(),
        Some(1),
        "cannot cancel from elsewhere"
    );
    assert!(
        stderr_of(&cancel).contains("belay-other-node"),
        "{}",
        stderr_of(&cancel)
    );
    assert!(
        !session_members(sid).is_empty(),
        "signalled from another node"
    );
    b.ok(&["cancel", "--grace", "1", &id]);
    assert!(poll(Duration::from_secs(5), || session_members(sid).is_empty()));
}

#[test]
fn a_lost_verdict_is_corrected_by_a_late_exit_file() {
    let b = Belay::new();
    let boot = b.scratch("boot_id");
    std::fs::write(&boot, "boot-a\n").unwrap();
    let b = b.with_env("BELAY_BOOT_ID_FILE", boot.to_str().unwrap());
    let id = b.submit(&["local", "--", "sleep 1; echo done"]);
    b.wait_state(&id, "running", Duration::from_secs(10));
    std::fs::write(&boot, "boot-b\n").unwrap();
    b.wait_state(&id, "lost", Duration::from_secs(10));
    let exit = b.job_dir(&id).join("exit");
    assert!(
        poll(Duration::from_secs(10), || exit.exists()),
        "the job never finished"
    );
    let job = b.wait_state(&id, "succeeded", Duration::from_secs(10));
    assert_eq!(b.ok(&["logs", &id]), "done\n");
    let path: Vec<_> = job["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        path[path.len() - 2..],
        ["lost".to_string(), "succeeded".to_string()]
    );
}

#[test]
fn one_broken_orphan_does_not_stop_ps() {
    let b = Belay::new();
    let wd = b.scratch("wd");
    std::fs::create_dir(&wd).unwrap();
    let out = b.run_env(
        &[
            "run",
            "-d",
            "--name",
            "orphan",
            "--workdir",
            wd.to_str().unwrap(),
            "local",
            "--",
            "true",
        ],
        "BELAY_FAILPOINT",
        "after-record",
    );
    assert_killed_by_failpoint(&out, "after-record");
    std::fs::remove_dir(&wd).unwrap();
    let ok = b.submit(&["--name", "fine", "local", "--", "sleep 300"]);
    let ps = b.run(&["ps", "--all", "--json"]);
    assert_eq!(ps.status.code(), Some(0), "{}", stderr_of(&ps));
    if !daemon_mode() {
        // (Through the daemon its background pass may finish the orphan
        // before `ps` asks, and says so in its log instead.)
        assert!(
            stderr_of(&ps).contains("orphan") || stderr_of(&ps).contains("does not exist"),
            "{}",
            stderr_of(&ps)
        );
    }
    assert_eq!(b.job("orphan")["state"], "failed");
    assert_eq!(b.job(&ok)["state"], "running");
    b.ok(&["cancel", "--grace", "1", &ok]);
}
