//! Into a Slurm job (issue 13 item 7): `belay shell JOB` into a live job is
//! a step of the job's own allocation (`srun --overlap --jobid`), so it
//! sees the job's Slurm environment, and it lands in the job's directory
//! with its variables; `app run cluster jupyter --partition debug` (the
//! seed-002 story) serves a real jupyter-server as a Slurm job behind the
//! daemon's forward — through a real sshd login node and real Slurm.

use std::time::Duration;

use crate::support::slurm::Cluster;

#[test]
fn a_shell_into_a_running_slurm_job_is_a_step_of_its_allocation() {
    let c = Cluster::start();
    let b = c.belay();
    let id = b.submit(&["--name", "train", "cluster", "--", "sleep 120"]);
    b.wait_state(&id, "running", Duration::from_secs(60));
    let sid = c.slurm_id(&b, &id);
    let out = b
        .cmd([
            "shell",
            &id,
            "--",
            "echo job=$SLURM_JOB_ID step=$SLURM_STEP_ID belay=$BELAY_JOB_ID; pwd",
        ])
        .deadline(Duration::from_secs(60))
        .ok();
    let mut lines = out.lines();
    let first = lines.next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("job={sid} step=")) && first.ends_with(&format!("belay={id}")),
        "the shell runs inside Slurm job {sid}: {out}"
    );
    let step = first
        .split("step=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(
        step.parse::<u64>().is_ok(),
        "an overlapping step, not the batch script: {out}"
    );
    // No --workdir: the job runs (and the shell lands) in the home directory.
    assert_eq!(lines.next(), Some("/root"), "{out}");
    // An ended job: no step to join; the shell still opens on the login node.
    b.ok(&["cancel", &id]);
    b.wait_state(&id, "cancelled", Duration::from_secs(60));
    let out = b
        .cmd(["shell", &id, "--", "echo job=${SLURM_JOB_ID:-none}"])
        .deadline(Duration::from_secs(60))
        .ok();
    assert_eq!(out.trim(), "job=none", "{out}");
}

/// The HTTP status of `GET path` at `addr` (`127.0.0.1:PORT`).
fn status(addr: &str, path: &str) -> Result<u16, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&reply);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not HTTP: {text:?}"))
}

/// The seed-002 story on a (single-node) cluster: `app run cluster jupyter
/// --partition debug` starts a real jupyter-server as a Slurm job, on a
/// Unix socket, forwarded through the login node; the printed URL answers
/// with its token and refuses without it; `app stop` ends the Slurm job.
#[test]
fn jupyter_runs_as_a_slurm_job_behind_a_forward() {
    let jupyter = crate::support::jupyter::jupyter_server();
    let c = Cluster::start();
    // The app holds its forward in the daemon, whatever the matrix mode.
    let b = c
        .belay_with(&format!(
            "poll_interval = \"1s\"\njupyter = \"{}\"\n",
            jupyter.display()
        ))
        .with_env("BELAY_NO_DAEMON", "");
    let app = b
        .cmd([
            "app",
            "run",
            "cluster",
            "jupyter",
            "--partition",
            "debug",
            "--time",
            "10",
            "--json",
        ])
        .deadline(Duration::from_secs(180))
        .json();
    let job = app["job"].as_str().unwrap().to_string();
    let url = app["url"].as_str().unwrap();
    let local = app["local"].as_str().unwrap();
    let token = url.split("token=").nth(1).expect("a token in the URL");
    assert_eq!(
        status(local, &format!("/api/status?token={token}")),
        Ok(200)
    );
    assert_eq!(status(local, "/api/status"), Ok(403));
    let shown = b.job(&job);
    assert_eq!(shown["scheduler"], "slurm", "{shown:#}");
    assert_eq!(shown["state"], "running", "{shown:#}");
    let sid = c.slurm_id(&b, &job);
    let slurm = c.slurm.scontrol_show_job(&sid);
    assert!(slurm.contains("JobState=RUNNING"), "{slurm}");
    assert!(slurm.contains("Partition=debug"), "{slurm}");
    b.ok(&["app", "stop", &job]);
    let ended = b.wait_state(&job, "cancelled", Duration::from_secs(60));
    assert_eq!(ended["state"], "cancelled");
    assert!(
        belay_testbed::wait_until(Duration::from_secs(30), || {
            !c.slurm.scontrol_show_job(&sid).contains("JobState=RUNNING")
        }),
        "the Slurm job still runs: {}",
        c.slurm.scontrol_show_job(&sid)
    );
    assert!(
        status(local, "/api/status").is_err(),
        "the forward is closed"
    );
}
