//! Work that moves forward with no user command waiting on it: jobs queued
//! for a host that does not answer (started when it does, never if
//! cancelled first), and the pass that does it all (`belay advance`, the
//! daemon's loop run once) — resumes, and outputs of ended jobs fetched into
//! `results/<id>/` — SIGKILLed at each of its steps.
//!
//! A host "away" is an ssh_config alias pointing at a closed port; it
//! "comes back" when the alias is rewritten to point at the real sshd.
//! Queueing in direct mode is a test hook (`BELAY_TEST_QUEUE=1`, live in
//! failpoint builds only): outside tests only the daemon queues.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use serde_json::Value;

use crate::support::remote::{Away, Loopback};
use crate::support::*;

/// `run -d later …`, queued: returns the job id.
fn queue(b: &Belay, args: &[&str]) -> String {
    let mut full = vec!["run", "-d"];
    full.extend_from_slice(args);
    let out = b.cmd(full).output();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert_eq!(err.lines().count(), 1, "one line says so: {err}");
    assert!(err.contains("queued"), "{err}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// One pass; its per-host summary.
fn advance(b: &Belay) -> Vec<Value> {
    b.cmd(["advance", "--json"])
        .json()
        .as_array()
        .unwrap()
        .clone()
}

fn events(job: &Value) -> Vec<String> {
    job["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap().to_string())
        .collect()
}

fn launches(counter: &std::path::Path) -> usize {
    std::fs::read_to_string(counter)
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn a_job_queued_for_a_host_away_starts_exactly_once_when_it_answers() {
    let away = Away::start();
    let b = away.belay();
    let counter = b.scratch("counter");
    let cmd = format!("echo x >> '{}'; echo hi", counter.display());

    // Direct mode refuses by default, and --no-queue always does.
    let refused = b
        .cmd(["run", "-d", "later", "--", "true"])
        .env("BELAY_TEST_QUEUE", "0")
        .output();
    assert_eq!(refused.status.code(), Some(1), "{}", stderr_of(&refused));
    let refused = b
        .cmd(["run", "-d", "--no-queue", "later", "--", "true"])
        .output();
    assert_eq!(refused.status.code(), Some(1), "{}", stderr_of(&refused));
    // A host that refuses us (an unknown host key) is refused, not queued.
    let refused = b.cmd(["run", "-d", "stranger", "--", "true"]).output();
    assert_eq!(refused.status.code(), Some(1), "{}", stderr_of(&refused));
    assert!(
        stderr_of(&refused).contains("host key"),
        "{}",
        stderr_of(&refused)
    );
    assert!(b.jobs().is_empty(), "nothing recorded for refusals");

    let id = queue(&b, &["later", "--", &cmd]);
    let job = b.job(&id);
    assert_eq!(job["state"], "queued", "{job:#}");
    let reason = job["reason"].as_str().unwrap();
    assert!(
        reason.contains("starts when later answers") && reason.contains("later"),
        "{reason}"
    );

    // Away: the pass says so, and leaves the job waiting.
    let passes = advance(&b);
    assert_eq!(passes.len(), 1, "{passes:#?}");
    assert_eq!(passes[0]["answered"], false, "{passes:#?}");
    assert!(passes[0]["error"].as_str().is_some());
    assert_eq!(b.job(&id)["state"], "queued");

    // Back: two passes at once; the job is launched by one of them.
    away.comes_back();
    let racing: Vec<_> = (0..2).map(|_| b.spawn(&["advance"])).collect();
    for child in racing {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
    }
    let job = b.wait_state(&id, "succeeded", Duration::from_secs(20));
    assert_eq!(job["reason"], Value::Null, "the wait is history: {job:#}");
    advance(&b);
    assert_eq!(launches(&counter), 1, "launched exactly once");
    assert_eq!(b.run(&["logs", &id]).stdout, b"hi\n");
    let path = events(&job);
    assert_eq!(path.first().unwrap(), "queued");
    assert_eq!(
        path.iter().filter(|s| *s == "submitting").count(),
        1,
        "{path:?}"
    );
}

#[test]
fn a_queued_job_cancelled_is_never_launched_and_needs_no_host() {
    let away = Away::start();
    let b = away.belay();
    let counter = b.scratch("counter");
    let id = queue(
        &b,
        &["later", "--", &format!("echo x >> '{}'", counter.display())],
    );
    // The host is still away: the cancel is done here, at once.
    let out = b
        .cmd(["cancel", &id])
        .deadline(Duration::from_secs(10))
        .output();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let job = b.job(&id);
    assert_eq!(job["state"], "cancelled", "{job:#}");
    assert!(job["reason"].as_str().unwrap().contains("never launched"));

    away.comes_back();
    advance(&b);
    b.ok(&["ps", "--all"]);
    assert_eq!(b.job(&id)["state"], "cancelled");
    assert_eq!(b.job(&id)["job_dir"], Value::Null, "never staged");
    assert_eq!(launches(&counter), 0, "never launched");
}

#[test]
fn checks_that_need_the_host_fail_a_queued_job_when_it_starts() {
    let away = Away::start();
    let b = away.belay();
    let no_dir = queue(&b, &["--workdir", "/nonexistent/wd", "later", "--", "true"]);
    let input = b.scratch("data.txt");
    std::fs::write(&input, "x").unwrap();
    let gone = queue(
        &b,
        &[
            "--input",
            input.to_str().unwrap(),
            "later",
            "--",
            "cat data.txt",
        ],
    );
    std::fs::remove_file(&input).unwrap(); // vanished while queued

    away.comes_back();
    advance(&b);
    let job = b.wait_state(&no_dir, "failed", Duration::from_secs(20));
    let reason = job["reason"].as_str().unwrap();
    assert!(
        reason.contains("/nonexistent/wd") && reason.contains("does not exist"),
        "{reason}"
    );
    let job = b.wait_state(&gone, "failed", Duration::from_secs(20));
    let reason = job["reason"].as_str().unwrap();
    assert!(reason.contains("data.txt"), "{reason}");
}

#[test]
fn a_pass_fetches_the_outputs_of_a_detached_job_once() {
    let host = Loopback::start();
    let b = host.belay();
    let id = b.submit(&[
        "--output",
        "out.txt",
        "--output",
        "never-written",
        "target",
        "--",
        "echo data > out.txt",
    ]);
    b.wait_state(&id, "succeeded", Duration::from_secs(20));
    let results = b.home.path().join("results").join(&id);
    assert!(
        !results.join("out.txt").exists(),
        "no command fetched it yet"
    );

    // Two passes at once: one copies them, the other finds that done.
    let racing: Vec<_> = (0..2).map(|_| b.spawn(&["advance", "--json"])).collect();
    let outs: Vec<_> = racing
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let fetched_by: Vec<_> = outs
        .iter()
        .filter(|out| {
            assert!(out.status.success(), "{}", stderr_of(out));
            let passes: Value = serde_json::from_slice(&out.stdout).unwrap();
            passes[0]["outputs_fetched"][0] == id.as_str()
        })
        .collect();
    assert_eq!(fetched_by.len(), 1, "fetched once");
    assert!(
        stderr_of(fetched_by[0]).contains("never-written"),
        "a missing output is said: {}",
        stderr_of(fetched_by[0])
    );
    assert_eq!(
        std::fs::read_to_string(results.join("out.txt")).unwrap(),
        "data\n"
    );
    // Recorded, missing output included: the next pass has nothing to do.
    let again = b.cmd(["advance", "--json"]).output();
    assert!(stderr_of(&again).is_empty(), "{}", stderr_of(&again));
    assert_eq!(
        serde_json::from_slice::<Value>(&again.stdout).unwrap(),
        serde_json::json!([])
    );

    // An attached run fetches its own outputs and records them: the pass
    // does not copy them a second time.
    let run = b.run(&["run", "--output", "o2", "target", "--", "echo two > o2"]);
    assert!(run.status.success(), "{}", stderr_of(&run));
    let passes = advance(&b);
    assert!(
        passes
            .iter()
            .all(|p| p["outputs_fetched"] == serde_json::json!([])),
        "{passes:#?}"
    );
}

#[test]
fn outputs_wait_for_a_host_away_and_come_when_it_answers() {
    let away = Away::start();
    let b = away.belay();
    away.comes_back();
    let id = b.submit(&["--output", "r.txt", "later", "--", "echo r > r.txt"]);
    b.wait_state(&id, "succeeded", Duration::from_secs(20));
    away.point_at(1);
    let passes = advance(&b);
    assert_eq!(passes[0]["answered"], false, "{passes:#?}");
    let results = b.home.path().join("results").join(&id);
    assert!(!results.join("r.txt").exists());
    away.comes_back();
    let passes = advance(&b);
    assert_eq!(passes[0]["outputs_fetched"][0], id.as_str(), "{passes:#?}");
    assert_eq!(
        std::fs::read_to_string(results.join("r.txt")).unwrap(),
        "r\n"
    );
}

#[test]
fn a_resume_killed_at_any_step_launches_exactly_once() {
    let away = Away::start();
    for point in ["after-resume-claim", "after-stage", "after-launch"] {
        away.point_at(1);
        let b = away.belay();
        let counter = b.scratch("counter");
        let id = queue(
            &b,
            &["later", "--", &format!("echo x >> '{}'", counter.display())],
        );
        away.comes_back();
        let out = b.run_env(&["advance"], "BELAY_FAILPOINT", point);
        assert_eq!(out.status.signal(), Some(9), "{point}: {}", stderr_of(&out));
        // The next pass finishes it.
        advance(&b);
        let job = b.wait_state(&id, "succeeded", Duration::from_secs(20));
        advance(&b);
        assert_eq!(launches(&counter), 1, "{point}: launched once");
        let path = events(&job);
        assert_eq!(path.last().unwrap(), "succeeded", "{point}: {path:?}");
    }
}

#[test]
fn an_output_fetch_killed_midway_is_finished_by_the_next_pass() {
    let host = Loopback::start();
    for point in ["during-output-fetch", "after-output-fetch"] {
        let b = host.belay();
        let id = b.submit(&[
            "--output",
            "a.txt",
            "--output",
            "b.txt",
            "target",
            "--",
            "echo a > a.txt; echo b > b.txt",
        ]);
        b.wait_state(&id, "succeeded", Duration::from_secs(20));
        let out = b.run_env(&["advance"], "BELAY_FAILPOINT", point);
        assert_eq!(out.status.signal(), Some(9), "{point}: {}", stderr_of(&out));
        let passes = advance(&b);
        assert_eq!(
            passes[0]["outputs_fetched"][0],
            id.as_str(),
            "{point}: {passes:#?}"
        );
        let results = b.home.path().join("results").join(&id);
        assert_eq!(
            std::fs::read_to_string(results.join("a.txt")).unwrap(),
            "a\n"
        );
        assert_eq!(
            std::fs::read_to_string(results.join("b.txt")).unwrap(),
            "b\n"
        );
        assert_eq!(advance(&b), Vec::<Value>::new(), "{point}: done once");
    }
}

#[test]
fn a_submit_cut_mid_way_is_released_for_the_next_pass_even_in_its_own_process() {
    // A daemon's token stays alive: a submit it gave up must not wait for
    // its death to be finished. The link drops after the launch was sent.
    let host = Loopback::start();
    let b = host.belay();
    let counter = b.scratch("counter");
    let cmd = format!("echo x >> '{}'", counter.display());
    let out = b
        .cmd(["run", "-d", "--name", "cut", "target", "--", &cmd])
        .env("BELAY_FAILPOINT", "launch-reply-lost")
        .output();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let db = rusqlite::Connection::open(b.home.path().join("belay.db")).unwrap();
    let submitter: Option<String> = db
        .query_row("SELECT submitter FROM jobs WHERE name = 'cut'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(submitter, None, "released: any pass may finish it");
    advance(&b);
    b.wait_state("cut", "succeeded", Duration::from_secs(20));
    advance(&b);
    assert_eq!(launches(&counter), 1, "adopted, not launched again");
}
