//! Debug hold (`run --hold-on-failure`, a `hold` file, `belay release`),
//! through a real sshd: a failed job is kept `held` with its directory and
//! exit code, ends by `release` with its own code, by `cancel` as
//! `cancelled`, and by its time limit on the host with no belay running.
//! (Job directories are read as the host's sessions see them:
//! `Loopback::remote_view`.)

use std::time::Duration;

use crate::support::remote::Loopback;
use crate::support::*;

#[test]
fn a_failed_job_is_held_until_released_and_then_fails_with_its_code() {
    let host = Loopback::start();
    let b = host.belay();
    let out = b.run(&[
        "run",
        "--hold-on-failure",
        "10m",
        "target",
        "--",
        "echo before; exit 3",
    ]);
    // The attached run returns when the command ends, with its code, and
    // says how to use the hold.
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "before\n");
    let err = stderr_of(&out);
    assert!(
        err.contains("held") && err.contains("belay release"),
        "{err}"
    );
    let job = &b.jobs()[0];
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["state"], "held", "{job:#}");
    assert_eq!(job["exit_code"], 3);
    assert_eq!(job["hold_on_failure"], 600);
    let left = job["hold_left_s"].as_i64().expect("time left while held");
    assert!((500..=600).contains(&left), "{left}");
    // The job's directory is kept, its wrapper waits there.
    let dir = host.remote_view(&b.job_dir(&id));
    let held = kv_file(&dir.join("held"));
    assert_eq!(held["code"], "3");
    assert!(!dir.join("exit").exists());
    assert!(b.ok(&["show", &id]).contains("held"), "show names the hold");
    assert!(b.ok(&["ps"]).contains("held"), "ps lists it as held");

    // A shell works while held: in the job's directory, with its id.
    let there = b.ok(&["shell", &id, "--", "echo \"$BELAY_JOB_ID\"; pwd"]);
    assert_eq!(
        there,
        format!("{id}\n/root\n"),
        "its id, then its directory (home)"
    );

    let said = b.ok(&["release", &id]);
    assert!(said.contains("failed") && said.contains("3"), "{said}");
    let job = b.job(&id);
    assert_eq!(job["state"], "failed", "{job:#}");
    assert_eq!(job["exit_code"], 3);
    assert!(
        job["reason"].as_str().unwrap_or("").contains("released"),
        "{job:#}"
    );
    assert_eq!(kv_file(&dir.join("exit"))["hold_end"], "released");
    // Nothing of the job is left running on the host.
    let pid: u32 = kv_file(&dir.join("started"))["pid"].parse().unwrap();
    assert!(poll(Duration::from_secs(5), || !is_running(pid)));
    // A job that is not held has nothing to release: bad input.
    b.cmd(["release", &id]).bad_input(&id);
}

#[test]
fn a_hold_ends_by_itself_on_the_host_with_no_belay_running() {
    let host = Loopback::start();
    let b = host.belay();
    let id = b.submit(&["--hold-on-failure", "3s", "target", "--", "exit 4"]);
    let dir = b.wait_state(&id, "held", Duration::from_secs(20))["job_dir"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = host.remote_view(std::path::Path::new(&dir));
    // No belay command from here until the wrapper has ended the hold
    // (the daemon, if one runs, is stopped first: nothing of belay runs).
    b.cmd(["serve", "--stop"]).output();
    assert!(
        // (Written in place: whole once it is not empty.)
        poll(Duration::from_secs(20), || {
            std::fs::metadata(dir.join("exit")).is_ok_and(|m| m.len() > 0)
        }),
        "the 3 s hold never ended on the host"
    );
    let exit = kv_file(&dir.join("exit"));
    assert_eq!(exit["code"], "4");
    assert_eq!(exit["hold_end"], "expired");
    let job = b.job(&id);
    assert_eq!(job["state"], "failed", "{job:#}");
    assert_eq!(job["exit_code"], 4);
    assert!(
        job["reason"].as_str().unwrap_or("").contains("expired"),
        "{job:#}"
    );
}

#[test]
fn a_job_can_ask_for_its_hold_and_a_cancel_ends_one() {
    let host = Loopback::start();
    let b = host.belay();
    // A successful job that asked to be held (for 60 s).
    let asked = b.submit(&["target", "--", "echo 60 > \"$BELAY_JOB_DIR/hold\"; exit 0"]);
    let job = b.wait_state(&asked, "held", Duration::from_secs(20));
    assert_eq!(job["exit_code"], 0);
    let left = job["hold_left_s"].as_i64().unwrap();
    assert!((30..=60).contains(&left), "{left}");
    // Released: it succeeded, as its command did.
    b.ok(&["release", &asked]);
    assert_eq!(b.job(&asked)["state"], "succeeded");

    // A held job that is cancelled ends `cancelled`, its wrapper gone.
    let failed = b.submit(&["--hold-on-failure", "1h", "target", "--", "exit 5"]);
    b.wait_state(&failed, "held", Duration::from_secs(20));
    let dir = host.remote_view(&b.job_dir(&failed));
    b.ok(&["cancel", &failed]);
    let job = b.job(&failed);
    assert_eq!(job["state"], "cancelled", "{job:#}");
    assert_eq!(kv_file(&dir.join("exit"))["hold_end"], "cancelled");
}

#[test]
fn a_bad_hold_duration_is_refused_and_nothing_is_recorded() {
    let host = Loopback::start();
    let b = host.belay();
    b.cmd(["run", "--hold-on-failure", "soon", "target", "--", "true"])
        .bad_input("soon");
    b.cmd(["run", "--hold-on-failure", "30d", "target", "--", "true"])
        .bad_input("hold-on-failure");
    assert!(b.jobs().is_empty());
}
