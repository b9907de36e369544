//! How a submit that does not simply succeed leaves its job: a lost launch
//! reply, a hard failure after the job was recorded, a Ctrl-C mid-upload.
//! In every case the user has seen the job's id, and no later `ps` launches
//! a job behind their back or launches one twice. Real sshd on loopback.

use std::path::Path;
use std::time::Duration;

use crate::support::remote::Loopback;
use crate::support::*;

/// The remote host's view of `/root/...` (its `/root` is private).
fn remote(host: &Loopback, path: &str) -> std::path::PathBuf {
    host.remote_view(Path::new(path))
}

#[test]
fn a_launch_whose_reply_was_lost_may_have_started_and_ps_adopts_it_without_a_second_launch() {
    let host = Loopback::start();
    let b = host.belay();
    let (id, err) = submit_failing_at(&b, "once", "echo x >> /root/launches", "launch-reply-lost");
    assert!(err.contains(&id), "the id is printed: {err}");
    assert!(
        err.contains("may have started") && err.contains("belay ps"),
        "says the truth: {err}"
    );
    assert!(!err.contains("not launched yet"), "{err}");
    // The next command adopts it: it ends succeeded, launched exactly once.
    b.ok(&["ps"]);
    b.wait_state("once", "succeeded", Duration::from_secs(20));
    b.ok(&["ps", "--all"]);
    let launches = std::fs::read_to_string(remote(&host, "/root/launches")).unwrap();
    assert_eq!(launches, "x\n", "one launch, not two");
}

#[test]
fn a_submit_that_fails_hard_after_the_record_names_the_job_and_never_launches_it_later() {
    let host = Loopback::start();
    let b = host.belay();
    let (id, err) = submit_failing_at(&b, "hard", "touch /root/ran", "stage-fails-hard");
    assert!(err.contains(&id), "the id is printed: {err}");
    assert!(
        err.contains("failpoint stage-fails-hard"),
        "the cause: {err}"
    );
    // ps shows it, with the reason; a later ps never launches it.
    let jobs = b.jobs();
    let listed = jobs
        .iter()
        .find(|j| j["id"] == id.as_str())
        .expect("listed");
    assert_eq!(listed["state"], "failed");
    let reason = listed["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("stage-fails-hard"), "reason: {reason}");
    b.ok(&["ps", "--all"]);
    assert_eq!(b.job(&id)["state"], "failed");
    assert!(
        !remote(&host, "/root/ran").exists(),
        "launched behind the user's back"
    );
}

#[test]
fn ctrl_c_during_the_input_upload_cancels_the_job_and_nothing_is_launched() {
    let host = Loopback::start();
    let b = host.belay();
    let child = run_while_uploading(&b, &host);
    let pid = child.id();
    // SAFETY: kill(2) on a child of ours.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let out = wait_child(child, Duration::from_secs(60));
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(130), "stderr: {err}");
    assert!(err.contains("nothing was launched"), "{err}");
    let job = b.job("upl");
    assert!(
        err.contains(job["id"].as_str().unwrap()),
        "the id is printed: {err}"
    );
    // A later ps finds it cancelled and launches nothing.
    b.ok(&["ps", "--all"]);
    let job = b.job("upl");
    assert_eq!(job["state"], "cancelled", "{job}");
    assert!(!remote(&host, "/root/ran").exists(), "a cancelled job ran");
    let dir = remote(&host, job["job_dir"].as_str().unwrap());
    assert!(!dir.join("launch.lock").exists(), "it was launched");
}

#[test]
fn a_wrapper_that_cannot_record_started_on_a_full_disk_does_not_run_the_command() {
    let host = Loopback::start();
    let b = host.belay();
    let disk = host.small_disk();
    let root = disk.path().to_str().unwrap();
    std::fs::write(
        b.home.path().join("config.toml"),
        format!("[hosts.target]\nworkroot = \"{root}\"\n"),
    )
    .unwrap();
    // Staged, then the submitter dies before the launch...
    let out = b
        .cmd([
            "run",
            "-d",
            "--name",
            "full",
            "target",
            "--",
            "touch /root/ran",
        ])
        .env("BELAY_FAILPOINT", "after-stage")
        .output();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(9), "{}", stderr_of(&out));
    // The one job directory (the workroot also holds its `.belay-workroot`
    // marker).
    let jobs: Vec<_> = std::fs::read_dir(host.remote_view(disk.path()))
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .collect();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let dir = disk.path().join(jobs[0].file_name());
    let dir_s = dir.to_str().unwrap();
    // ...the disk fills up, and the staged wrapper is started then (as a
    // batch scheduler starts a job that waited in its queue).
    host.in_namespace(&[
        "sh",
        "-c",
        &format!("dd if=/dev/zero of={root}/fill bs=4k 2>/dev/null; true"),
    ]);
    host.in_namespace(&[
        "sh",
        "-c",
        &format!("cd {dir_s} && : > launch.lock && setsid -w sh run.sh; true"),
    ]);
    b.ok(&["ps", "--all"]);
    let job = b.job("full");
    assert!(
        !remote(&host, "/root/ran").exists(),
        "the command ran without `started`"
    );
    assert_eq!(job["state"], "failed", "{job}");
    let reason = job["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(dir_s), "names the job directory: {job}");
    assert!(reason.contains("full"), "says why: {reason}");
    assert!(reason.contains("not run"), "{reason}");
}

/// `run -d --name NAME target -- COMMAND` with `BELAY_FAILPOINT=POINT`,
/// which must end in exit status 1: the job's id (from the store, not from
/// what belay printed) and belay's stderr.
fn submit_failing_at(b: &Belay, name: &str, command: &str, point: &str) -> (String, String) {
    let out = b
        .cmd(["run", "-d", "--name", name, "target", "--", command])
        .env("BELAY_FAILPOINT", point)
        .output();
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr_of(&out));
    let id = b.job(name)["id"].as_str().unwrap().to_string();
    (id, stderr_of(&out))
}

/// Wait for a spawned belay (kill it and panic at the deadline).
fn wait_child(mut child: std::process::Child, within: Duration) -> std::process::Output {
    let done = poll(within, || child.try_wait().is_ok_and(|s| s.is_some()));
    if !done {
        let _ = child.kill();
        panic!("belay did not end within {within:?}");
    }
    child.wait_with_output().expect("output")
}

#[test]
fn a_cancel_recorded_while_the_inputs_upload_stops_the_launch() {
    // `belay cancel` from a place that cannot reach the host records the
    // cancel; the submit still uploading from here must honour it before
    // its launch, not start a job the user has cancelled.
    let host = Loopback::start();
    let b = host.belay();
    let child = run_while_uploading(&b, &host);
    // The same store, but a config where `target` does not answer.
    let unreachable = host.dir.path().join("unreachable_config");
    std::fs::write(
        &unreachable,
        belay_testbed::HostBlock::new("target")
            .hostname("127.0.0.1")
            .port(1)
            .test_client(&host.key, &host.known_hosts)
            .to_string(),
    )
    .unwrap();
    let out = b
        .cmd(["cancel", "upl"])
        .env("BELAY_SSH_CONFIG", unreachable.to_str().unwrap())
        .output();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("cancel recorded"),
        "{}",
        stderr_of(&out)
    );
    let out = wait_child(child, Duration::from_secs(120));
    let err = stderr_of(&out);
    assert_ne!(out.status.code(), Some(0), "the run went on: {err}");
    assert!(err.contains("nothing was launched"), "{err}");
    b.ok(&["ps", "--all"]);
    let job = b.job("upl");
    assert_eq!(job["state"], "cancelled", "{job}");
    assert!(!remote(&host, "/root/ran").exists(), "a cancelled job ran");
    let dir = remote(&host, job["job_dir"].as_str().unwrap());
    assert!(!dir.join("launch.lock").exists(), "it was launched");
}

/// A `run --name upl` of `touch /root/ran` with a 1 GiB input (big enough
/// that the upload takes a while on loopback), returned once bytes of the
/// input are landing on the host.
fn run_while_uploading(b: &Belay, host: &Loopback) -> std::process::Child {
    let big = b.scratch("big.bin");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(1 << 30).unwrap();
    drop(f);
    let input = big.display().to_string();
    let child = b.spawn(&[
        "run",
        "--name",
        "upl",
        "--input",
        &input,
        "target",
        "--",
        "touch /root/ran",
    ]);
    let jobs_root = remote(host, "/root/.belay/jobs");
    let uploading = poll(Duration::from_secs(30), || {
        std::fs::read_dir(&jobs_root).is_ok_and(|dirs| {
            dirs.flatten().any(|d| {
                std::fs::read_dir(d.path().join("inputs"))
                    .is_ok_and(|mut entries| entries.next().is_some())
            })
        })
    });
    assert!(uploading, "the upload never started");
    child
}
