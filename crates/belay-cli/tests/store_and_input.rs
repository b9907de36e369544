//! The store under concurrency, and bad input: exit status 2, one line
//! naming the bad value, nothing written.

use std::process::Command;
use std::time::Duration;

use crate::support::*;

#[test]
fn concurrent_submits_and_ps_neither_corrupt_nor_lock_the_store() {
    let b = Belay::new();
    let rounds = 8;
    for round in 0..rounds {
        let kids = vec![
            b.spawn(&["run", "-d", "local", "--", "true"]),
            b.spawn(&["run", "-d", "local", "--", "echo", &format!("r{round}")]),
            b.spawn(&["ps", "--json"]),
        ];
        for k in kids {
            let out = k.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", stderr_of(&out));
        }
    }
    let jobs = b.jobs();
    assert_eq!(jobs.len(), 2 * rounds);
    for j in &jobs {
        let id = j["id"].as_str().unwrap();
        assert_eq!(b.run(&["wait", id]).status.code(), Some(0));
    }
    assert!(b.jobs().iter().all(|j| j["state"] == "succeeded"));
    let conn = rusqlite::Connection::open(b.home.path().join("belay.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    // Every job's log is a whole path: queued, submitting, …, succeeded.
    for j in &jobs {
        let id = j["id"].as_str().unwrap();
        let mut stmt = conn
            .prepare("SELECT to_state FROM events WHERE job_id = ?1 ORDER BY seq")
            .unwrap();
        let path: Vec<String> = stmt
            .query_map([id], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            path.first().map(String::as_str),
            Some("queued"),
            "{id}: {path:?}"
        );
        assert_eq!(
            path.get(1).map(String::as_str),
            Some("submitting"),
            "{id}: {path:?}"
        );
        assert_eq!(
            path.last().map(String::as_str),
            Some("succeeded"),
            "{id}: {path:?}"
        );
    }
}

#[test]
fn bad_input_exits_2_names_the_value_and_writes_nothing() {
    let b = Belay::new();
    // On a fresh home: no store is created by refusals.
    b.cmd(["show", "nope"]).bad_input("nope");
    b.cmd(["run", "nohost", "--", "true"]).bad_input("nohost");
    assert!(
        !b.home.path().join("belay.db").exists(),
        "a refusal created the store"
    );

    // With a store holding one job: nothing changes.
    let id = b.submit(&["local", "--", "true"]);
    b.ok(&["wait", &id]);
    let before = b.jobs();
    b.cmd(["show", "nope"]).bad_input("nope");
    b.cmd(["logs", "nope"]).bad_input("nope");
    b.cmd(["wait", "nope"]).bad_input("nope");
    b.cmd(["cancel", &id, "nope"]).bad_input("nope");
    b.cmd(["run", "nohost", "--", "true"]).bad_input("nohost");
    b.cmd(["run", "--env", "BAD", "local", "--", "true"])
        .bad_input("BAD");
    b.cmd(["run", "--env", "1X=y", "local", "--", "true"])
        .bad_input("'1X'");
    b.cmd(["run", "--name", "bad name", "local", "--", "true"])
        .bad_input("bad name");
    b.cmd(["run", "local"]).bad_input("missing command");
    b.cmd(["run", "local", "--"]).bad_input("missing command");
    let after = b.jobs();
    assert_eq!(before, after, "the store changed after bad input");
}

#[test]
fn a_missing_workdir_is_bad_input_and_nothing_is_recorded() {
    let b = Belay::new();
    let out = b.run(&[
        "run",
        "--name",
        "wd",
        "--workdir",
        "/nonexistent/x",
        "local",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("/nonexistent/x"));
    assert!(b.jobs().is_empty(), "a refused job was recorded");
}

#[test]
fn a_host_that_refuses_the_job_directory_fails_the_job_once_with_the_cause() {
    let b = Belay::new();
    // The workroot is a file: staging can never succeed there.
    std::fs::write(b.home.path().join("jobs"), "not a directory").unwrap();
    let out = b.run(&["run", "-d", "--name", "nostage", "local", "--", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let job = b.job("nostage");
    assert_eq!(job["state"], "failed", "not stuck in submitting: {job:#}");
    assert!(
        job["reason"].as_str().unwrap().contains("staging"),
        "{job:#}"
    );
    // Later commands do not try again and again.
    let ps = b.run(&["ps"]);
    assert!(
        ps.status.success() && stderr_of(&ps).is_empty(),
        "{}",
        stderr_of(&ps)
    );
    assert_eq!(b.run(&["wait", "nostage"]).status.code(), Some(1));
}

#[test]
fn host_check_refuses_bad_names_before_creating_anything() {
    let b = Belay::new();
    let out = b.run(&["host", "check", "local", "no-such-host.invalid"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("no-such-host.invalid"));
    assert!(!b.home.path().join("belay.db").exists());
}

#[test]
fn a_reader_that_stops_reading_ends_belay_quietly() {
    let b = Belay::new();
    let id = b.submit(&["local", "--", "seq 1 300000"]);
    b.wait_state(&id, "succeeded", Duration::from_secs(30));
    // `belay logs JOB | head -c 1`: the reader quits after one byte of
    // 2 MB, far more than a pipe holds, so belay's writes meet EPIPE.
    let proto = b.command(&[]);
    let line = format!(
        "'{}' logs {id} 2>stderr | head -c 1 >/dev/null; echo \"${{PIPESTATUS[0]}}\"",
        proto.get_program().to_string_lossy()
    );
    let mut sh = Command::new("bash");
    sh.args(["-c", &line]).current_dir(b.scratch(""));
    for (k, v) in proto.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    let out = run_with_deadline(sh, Duration::from_secs(60));
    let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = std::fs::read_to_string(b.scratch("stderr")).unwrap();
    assert!(stderr.is_empty(), "belay wrote {stderr:?}");
    assert_eq!(status, "141", "the status of a process SIGPIPE ended");
}
