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
