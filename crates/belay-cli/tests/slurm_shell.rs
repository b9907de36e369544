//! `belay shell JOB` into a live Slurm job (issue 13 item 7): the shell is
//! a step of the job's own allocation (`srun --overlap --jobid`), so it
//! sees the job's Slurm environment, and it lands in the job's directory
//! with its variables — through a real sshd login node and real Slurm.

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
