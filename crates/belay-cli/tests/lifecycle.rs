//! The job lifecycle on the embedded `local` host, through the real binary:
//! exit codes, streaming, cancel of whole process trees, `logs -f` offsets,
//! and Ctrl-C detaching.

use std::io::Read;
use std::time::Duration;

use crate::support::*;

#[test]
fn failed_job_prints_both_streams_and_exits_with_its_code() {
    let b = Belay::new();
    let out = b.run(&[
        "run",
        "local",
        "--",
        "sh",
        "-c",
        "echo hi; echo oops >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert!(
        stderr_of(&out).contains("oops"),
        "stderr: {}",
        stderr_of(&out)
    );
    let jobs = b.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["state"], "failed");
    assert_eq!(jobs[0]["exit_code"], 3);
}

#[test]
fn one_argument_is_a_shell_line_and_env_and_workdir_apply() {
    let b = Belay::new();
    let wd = b.scratch("wd");
    std::fs::create_dir(&wd).unwrap();
    let out = b.ok(&[
        "run",
        "--env",
        "GREETING=it's me",
        "--workdir",
        wd.to_str().unwrap(),
        "local",
        "--",
        "echo \"$GREETING\" from $(pwd) && exit 0",
    ]);
    assert_eq!(out, format!("it's me from {}\n", wd.display()));
    let out = b.run(&["run", "local", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.code(), Some(143), "128+N for signal N");
}

#[test]
fn attached_run_streams_output_while_the_job_runs() {
    let b = Belay::new();
    let gate = b.scratch("gate");
    let script = format!(
        "echo first; i=0; while [ ! -e '{g}' ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; \
         [ -e '{g}' ] && echo second || echo gate-timeout",
        g = gate.display()
    );
    let mut child = b.spawn(&["run", "local", "--", &script]);
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 6];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"first\n", "output arrives before the job ends");
    std::fs::write(&gate, "").unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "second\n");
    assert!(child.wait().unwrap().success());
}

#[test]
fn cancel_stops_the_whole_process_tree() {
    let b = Belay::new();
    let pids = b.scratch("pids");
    let script = format!(
        "sleep 300 & echo $! >> '{p}'; (sleep 300 & echo $! >> '{p}'; wait) & wait",
        p = pids.display()
    );
    let id = b.submit(&["local", "--", &script]);
    assert!(poll(Duration::from_secs(10), || {
        std::fs::read_to_string(&pids).is_ok_and(|s| s.lines().count() == 2)
    }));
    let started = kv_file(&b.job_dir(&id).join("started"));
    let sid: u32 = started["sid"].parse().unwrap();
    let grandchildren: Vec<u32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert!(grandchildren.iter().all(|&p| is_running(p)));

    let out = b.ok(&["cancel", &id]);
    assert!(out.contains("cancelled"), "{out}");
    assert_eq!(b.job(&id)["state"], "cancelled");
    assert!(
        poll(Duration::from_secs(5), || session_members(sid).is_empty()),
        "left running: {:?}",
        session_members(sid)
    );
    for p in grandchildren {
        assert!(!is_running(p), "grandchild {p} survived cancel");
    }
}

#[test]
fn cancel_kills_after_the_grace_period_when_term_is_ignored() {
    let b = Belay::new();
    let id = b.submit(&["local", "--", "trap '' TERM; sleep 300 & wait; sleep 300"]);
    b.wait_state(&id, "running", Duration::from_secs(10));
    let sid: u32 = kv_file(&b.job_dir(&id).join("started"))["sid"]
        .parse()
        .unwrap();
    assert!(poll(Duration::from_secs(5), || session_members(sid).len() >= 2));
    let t = std::time::Instant::now();
    b.ok(&["cancel", "--grace", "1", &id]);
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "KILL only after the grace period"
    );
    let job = b.job(&id);
    assert_eq!(job["state"], "cancelled");
    assert!(
        session_members(sid).is_empty(),
        "left: {:?}",
        session_members(sid)
    );
    assert_eq!(
        b.ok(&["cancel", &id]).trim(),
        format!("{id}: already cancelled")
    );
}

#[test]
fn cancel_before_launch_means_it_never_runs() {
    // A job killed right after it was recorded (never staged) and then
    // cancelled must never start, even if a reconcile tries to finish it.
    let b = Belay::new();
    let marker = b.scratch("ran");
    let cmd = format!("touch '{}'", marker.display());
    let out = b.run_env(
        &["run", "-d", "--name", "never", "local", "--", &cmd],
        "BELAY_FAILPOINT",
        "after-record",
    );
    assert_killed_by_failpoint(&out, "after-record");
    b.ok(&["cancel", "never"]);
    b.ok(&["ps"]);
    let job = b.job("never");
    assert_eq!(job["state"], "cancelled");
    assert!(!marker.exists(), "a cancelled job ran");
}

#[test]
fn logs_follow_prints_every_byte_exactly_once() {
    let b = Belay::new();
    let id = b.submit(&[
        "local", "--",
        "for i in 1 2 3 4 5; do printf 'line %s\\n' $i; printf 'err %s\\n' $i >&2; sleep 0.2; done; printf 'no newline'",
    ]);
    let followed = b.run(&["logs", "-f", &id]);
    assert!(followed.status.success());
    let dir = b.job_dir(&id);
    let remote = std::fs::read(dir.join("stdout")).unwrap();
    assert_eq!(followed.stdout, remote);
    assert_eq!(
        String::from_utf8_lossy(&remote),
        "line 1\nline 2\nline 3\nline 4\nline 5\nno newline"
    );
    assert_eq!(
        b.run(&["logs", &id]).stdout,
        remote,
        "re-running prints the same bytes"
    );
    assert_eq!(b.run(&["logs", "-f", &id]).stdout, remote);
    let err = b.run(&["logs", "--stderr", &id]);
    assert_eq!(err.stdout, std::fs::read(dir.join("stderr")).unwrap());
    assert_eq!(
        String::from_utf8_lossy(&err.stdout),
        "err 1\nerr 2\nerr 3\nerr 4\nerr 5\n"
    );
}

#[test]
fn logs_of_large_binary_output_are_exact_across_chunks() {
    let b = Belay::new();
    let id = b.submit(&["local", "--", "head -c 9000000 /dev/urandom"]);
    b.ok(&["wait", &id]);
    let remote = std::fs::read(b.job_dir(&id).join("stdout")).unwrap();
    assert_eq!(remote.len(), 9_000_000);
    let got = b.run(&["logs", &id]);
    assert!(got.stdout == remote, "logs differ from the job's stdout");
    let followed = b.run(&["logs", "-f", &id]);
    assert!(
        followed.stdout == remote,
        "logs -f differs from the job's stdout"
    );
}

#[test]
fn ctrl_c_detaches_and_the_job_keeps_running() {
    let b = Belay::new();
    let mut child = b.spawn(&[
        "run",
        "--name",
        "det",
        "local",
        "--",
        "echo started; sleep 300",
    ]);
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 8];
    stdout.read_exact(&mut first).unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("detached") && err.contains("belay logs -f"),
        "{err}"
    );
    assert_eq!(b.job("det")["state"], "running");
    b.ok(&["cancel", "--grace", "1", "det"]);
}

#[test]
fn wait_exits_with_the_jobs_code() {
    let b = Belay::new();
    let id = b.submit(&["local", "--", "sleep 0.3; exit 7"]);
    let out = b.run(&["wait", &id]);
    assert_eq!(out.status.code(), Some(7));
    let ok = b.submit(&["--name", "fine", "local", "--", "true"]);
    assert_eq!(b.run(&["wait", "fine"]).status.code(), Some(0));
    assert_eq!(b.job(&ok)["state"], "succeeded");
}

#[test]
fn the_command_runs_in_the_login_shell_unless_asked_not_to() {
    let b = Belay::new();
    std::fs::write(
        b.scratch("home").join(".profile"),
        "FROM_PROFILE=yes; export FROM_PROFILE\n",
    )
    .unwrap();
    assert_eq!(
        b.ok(&["run", "local", "--", "echo \"[$FROM_PROFILE]\""]),
        "[yes]\n"
    );
    assert_eq!(
        b.ok(&[
            "run",
            "--no-login-shell",
            "local",
            "--",
            "echo \"[$FROM_PROFILE]\""
        ]),
        "[]\n"
    );
}
