//! Crash safety on the embedded host: belay SIGKILLed at every step of a
//! submit, wrappers killed without an exit file, recycled pids, reboots.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use support::*;

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
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{point}: belay should have died by SIGKILL"
        );

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
