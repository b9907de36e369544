//! Job states stay true under a host that answers badly: an unreadable
//! workroot is no proof of death, a cancel that cannot act changes nothing,
//! a cancel for an unreachable host waits for it, one broken host does not
//! hide the others, and many cancels on one host are one script.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::support::remote::Loopback;
use crate::support::*;

fn chmod(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn an_unreadable_workroot_is_not_proof_that_a_job_died() {
    let host = Loopback::start();
    let user = belay_testbed::TestUser::create().expect("test user");
    host.add_user_host("asuser", &user);
    let b = host.belay();
    let go = user.path("go");
    let id = b.submit(&[
        "asuser",
        "--",
        "echo begun; while [ ! -e ~/go ]; do sleep 0.05; done; echo done",
    ]);
    b.wait_state(&id, "running", Duration::from_secs(10));
    let mut follower = b.spawn(&["logs", "-f", &id]);
    let mut waiter = b.spawn(&["wait", &id]);
    let workroot = user.path(".belay/jobs");
    chmod(&workroot, 0o000);
    // Every look while the workroot cannot be listed keeps the job running.
    for _ in 0..5 {
        let out = b.cmd(["ps", "--all", "--json"]).output();
        let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ps json");
        assert_eq!(jobs[0]["state"], "running", "{}", stderr_of(&out));
    }
    assert_eq!(b.job(&id)["state"], "running");
    assert!(follower.try_wait().unwrap().is_none(), "logs -f gave up");
    assert!(waiter.try_wait().unwrap().is_none(), "wait gave up");
    chmod(&workroot, 0o700);
    std::fs::write(&go, "").unwrap();
    let out = wait_child(follower, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "begun\ndone\n");
    let out = wait_child(waiter, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(b.job(&id)["state"], "succeeded");
}

/// The output of a spawned belay, which must end within `within`.
fn wait_child(mut child: std::process::Child, within: Duration) -> std::process::Output {
    let ended = poll(within, || child.try_wait().unwrap().is_some());
    if !ended {
        child.kill().unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        ended,
        "belay did not end within {within:?}: {}",
        stderr_of(&out)
    );
    out
}

/// Rewrite `key=` in a job directory's key=value file (a job that another
/// node, sharing this home directory, started or launched).
fn set_field(path: &std::path::Path, key: &str, value: &str) {
    let text = std::fs::read_to_string(path).expect("job file");
    let mut out: String = text
        .lines()
        .filter(|l| !l.starts_with(&format!("{key}=")))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&format!("{key}={value}\n"));
    std::fs::write(path, out).unwrap();
}

/// A cancel that reports it cannot act from here, and left no mark.
fn refused_cancel(b: &Belay, id: &str, dir: &std::path::Path) {
    let out = b.cmd(["cancel", "--grace", "1", id]).output();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("cannot cancel"),
        "{}",
        stderr_of(&out)
    );
    assert!(!dir.join("cancel-requested").exists(), "the job was marked");
}

#[test]
fn a_cancel_that_cannot_act_from_here_changes_nothing() {
    let b = Belay::new();
    let go = b.scratch("go");
    let id = b.submit(&[
        "local",
        "--",
        &format!("while [ ! -e '{}' ]; do sleep 0.05; done", go.display()),
    ]);
    b.wait_state(&id, "running", Duration::from_secs(10));
    let dir = b.job_dir(&id);
    set_field(&dir.join("started"), "node", "another-node");
    refused_cancel(&b, &id, &dir);
    std::fs::write(&go, "").unwrap();
    b.wait_state(&id, "succeeded", Duration::from_secs(10));

    // A pending job launched on another node: not marked either, so it
    // still runs when its wrapper starts there.
    // (Its submitter died after staging; nothing may reconcile it before
    // the cancel, or that would launch it here.)
    let first = dir;
    let out = b
        .cmd(["run", "-d", "--name", "pend", "local", "--", "true"])
        .env("BELAY_FAILPOINT", "after-stage")
        .output();
    assert!(!out.status.success(), "the failpoint fired");
    let workroot = first.parent().unwrap();
    let dir = std::fs::read_dir(workroot)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir() && *p != first)
        .expect("the staged job's directory");
    let id = "pend";
    std::fs::write(dir.join("launch.lock"), "").unwrap();
    std::fs::write(
        dir.join("launched"),
        format!(
            "scheduler=direct\nlaunched_at={}\nnode=another-node\n",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        ),
    )
    .unwrap();
    refused_cancel(&b, id, &dir);
    assert!(!dir.join("exit").exists(), "the job was ended");
    assert!(b.job(id)["state"] != "cancelled");
}

#[test]
fn one_host_whose_probe_reply_is_cut_short_does_not_hide_the_others() {
    // `asuser` answers, but its probe dies half-way: an `awk` that takes
    // the script calling it down with it (a broken tool on one host). The
    // probe calls awk for more running jobs than builtins check quickly.
    let user = belay_testbed::TestUser::create().expect("test user");
    let bin = tempfile::tempdir().unwrap();
    let awk = bin.path().join("awk");
    std::fs::write(&awk, "#!/bin/sh\nkill -9 \"$PPID\"\n").unwrap();
    chmod(&awk, 0o755);
    chmod(bin.path(), 0o755);
    let host = Loopback::start_with(vec![
        format!("Match User {}", user.name()),
        format!(
            "  ForceCommand PATH={}:$PATH; export PATH; eval \"$SSH_ORIGINAL_COMMAND\"",
            bin.path().display()
        ),
    ]);
    host.add_user_host("asuser", &user);
    let b = host.belay();
    let many = belay_core::remote::scripts::QUICK_BUILTIN_MAX + 1;
    let broken: Vec<String> = (0..many)
        .map(|_| b.submit(&["asuser", "--", "sleep 300"]))
        .collect();
    for id in &broken {
        b.wait_state(id, "running", Duration::from_secs(10));
    }
    let broken = &broken[0];
    let good = b.submit(&["target", "--", "sleep 300"]);
    b.wait_state(&good, "running", Duration::from_secs(10));

    let out = b.cmd(["ps", "--json"]).output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let state = |id: &str| {
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == id)
            .map(|j| j["state"].clone())
    };
    assert_eq!(state(&good), Some("running".into()));
    assert_eq!(state(broken), Some("running".into()), "last known state");
    let err = stderr_of(&out);
    assert!(
        err.contains("asuser") && err.contains("did not finish"),
        "{err}"
    );
    b.cmd(["cancel", "--grace", "1", &good]).ok();
}

#[test]
fn cancelling_many_jobs_on_one_host_is_one_script() {
    let host = Loopback::start();
    let b = host.belay();
    let ids: Vec<String> = (0..30)
        .map(|_| b.submit(&["target", "--", "sleep 300"]))
        .collect();
    for id in &ids {
        b.wait_state(id, "running", Duration::from_secs(10));
    }
    // (Scripts counted in the command's own log: it works directly.)
    let mut args = vec!["-vv", "--no-daemon", "cancel", "--grace", "1"];
    args.extend(ids.iter().map(String::as_str));
    let out = b.cmd(&args).output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let scripts = stderr_of(&out)
        .lines()
        .filter(|l| l.contains("protocol script"))
        .count();
    assert_eq!(scripts, 1, "{}", stderr_of(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    for id in &ids {
        assert!(stdout.contains(&format!("{id}: cancelled")), "{stdout}");
    }
    for job in b.jobs() {
        assert_eq!(job["state"], "cancelled", "{job:#}");
    }
}

#[test]
fn a_cancel_for_an_unreachable_host_is_carried_out_when_it_answers() {
    let mut host = Loopback::start();
    let user = belay_testbed::TestUser::create().expect("test user");
    host.add_user_host("asuser", &user);
    let b = host.belay();
    let running = b.submit(&["asuser", "--", "sleep 300"]);
    let job = b.wait_state(&running, "running", Duration::from_secs(10));
    let pid: i32 = job["scheduler_id"].as_str().unwrap().parse().unwrap();

    // A submit left to be finished later (its submitter died after
    // recording it), then cancelled while the host is away.
    let ran = user.path("ran");
    let out = b
        .cmd(["run", "-d", "--name", "later", "asuser", "--"])
        .arg(format!("touch '{}'", ran.display()))
        .env("BELAY_FAILPOINT", "after-record")
        .output();
    assert!(!out.status.success(), "{}", stderr_of(&out));
    host.sshd.kill();
    for id in [running.as_str(), "later"] {
        let out = b.cmd(["cancel", "--grace", "1", id]).output();
        assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
        let err = stderr_of(&out);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.contains("cancel recorded; will be carried out when asuser answers"),
            "{err}"
        );
    }
    assert_eq!(b.jobs().len(), 2);
    assert!(is_running(pid as u32), "nothing could stop it yet");

    host.sshd.restart().unwrap();
    let out = b.cmd(["ps", "--all", "--json"]).output();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let job = b.job(&running);
    assert_eq!(job["state"], "cancelled", "{job:#}");
    assert!(poll(Duration::from_secs(5), || !is_running(pid as u32)));
    let later = b.job("later");
    assert_eq!(later["state"], "cancelled", "{later:#}");
    assert!(later["started_at"].is_null(), "{later:#}");
    // And a later look never launches it.
    b.ok(&["ps"]);
    assert!(!ran.exists(), "the cancelled job ran");
}
