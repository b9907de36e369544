//! Slurm hosts (issue 13), through a real sshd login node and a real
//! single-node Slurm (belay-testbed's `Slurm`, no accounting): submission
//! with the run flags, exactly once even when `sbatch` lies, honest states
//! (pending with Slurm's reason, TIMEOUT, a node that dies, a job gone
//! from `squeue` without a trace), cancel, polling discipline, debug hold
//! inside the allocation, and Slurm's own refusals as bad input.
//!
//! What Slurm did is read with the test bed's uncounted helpers
//! (`scontrol show job`, `squeue -t all`); what the login node ran is
//! counted by its wrappers (`Slurm::calls`).

use std::time::{Duration, Instant};

use belay_testbed::SlurmOptions;
use serde_json::Value;

use crate::support::slurm::{Cluster, NoSbatch};
use crate::support::*;

/// Slurm's view of one job field, polled until it is `want`.
fn wait_slurm(c: &Cluster, id: &str, field: &str, want: &str, within: Duration) {
    let ok = poll(within, || {
        c.slurm.job_field(id, field).as_deref() == Some(want)
    });
    assert!(
        ok,
        "Slurm job {id} never had {field}={want}:\n{}",
        c.slurm.scontrol_show_job(id)
    );
}

/// Poll `show` until `pred` holds for the job (or panic with the last view).
fn wait_job(
    b: &Belay,
    job: &str,
    within: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    let ok = poll(within, || {
        last = b.job(job);
        pred(&last)
    });
    assert!(ok, "job {job}: never {what}; last: {last:#}");
    last
}

fn reason(v: &Value) -> String {
    v["reason"].as_str().unwrap_or("").to_string()
}

/// A job that holds both CPUs of the node until cancelled; returns its id
/// once Slurm runs it.
fn fill_the_node(c: &Cluster, b: &Belay, tag: &str) -> String {
    let id = b.submit(&["--cpus", "2", "--name", tag, "cluster", "--", "sleep 3600"]);
    let sid = c.slurm_id(b, &id);
    wait_slurm(c, &sid, "JobState", "RUNNING", Duration::from_secs(30));
    id
}

#[test]
fn an_attached_run_on_a_cluster_streams_output_and_exits_with_the_jobs_code() {
    let c = Cluster::start();
    let b = c.belay();
    let out = b
        .cmd(["run", "cluster", "--", "echo out; echo err >&2; exit 3"])
        .deadline(Duration::from_secs(90))
        .output();
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(stderr_of(&out).contains("err"), "{}", stderr_of(&out));
    let job = &b.jobs()[0];
    let id = job["id"].as_str().unwrap();
    assert_eq!(job["state"], "failed", "{job:#}");
    assert_eq!(job["exit_code"], 3);
    assert_eq!(job["scheduler"], "slurm", "{job:#}");
    let sid = c.slurm_id(&b, id);
    assert!(sid.parse::<u64>().is_ok(), "{job:#}");
    // The job ran under Slurm, named after belay's job, and its output
    // landed in the job directory as on any host.
    let shown = c.slurm.scontrol_show_job(&sid);
    assert!(shown.contains(&format!("JobName=belay-{id}")), "{shown}");
    let dir = c.remote(job["job_dir"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(dir.join("stdout")).unwrap(),
        "out\n"
    );
    assert_eq!(b.ok(&["logs", id]), "out\n");
    assert!(
        b.ok(&["show", id]).contains(&sid),
        "show displays the Slurm id"
    );
    assert_eq!(c.slurm.calls("sbatch"), 1, "{}", c.slurm.call_log());
    // A succeeding job, detached, then waited for.
    let ok = b.submit(&["cluster", "--", "echo fine"]);
    let out = b
        .cmd(["wait", &ok])
        .deadline(Duration::from_secs(60))
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(b.job(&ok)["state"], "succeeded");
}

#[test]
fn run_flags_and_host_defaults_reach_slurm() {
    let c = Cluster::start();
    let b = c.belay_with(
        "poll_interval = \"1s\"\n[hosts.cluster.slurm]\npartition = \"short\"\ntime = \"1\"\n",
    );
    // Host defaults alone.
    let plain = b.submit(&["cluster", "--", "sleep 3600"]);
    let sid = c.slurm_id(&b, &plain);
    let key = b.job(&plain)["key"].as_str().unwrap().to_string();
    assert_eq!(
        c.slurm.job_field(&sid, "Partition").as_deref(),
        Some("short")
    );
    assert_eq!(
        c.slurm.job_field(&sid, "TimeLimit").as_deref(),
        Some("00:01:00")
    );
    assert_eq!(
        c.slurm.job_field(&sid, "Comment"),
        Some(format!("belay:{key}"))
    );
    // Flags win over the host's defaults; --sbatch-arg passes through.
    let flagged = b.submit(&[
        "--name",
        "flagged",
        "--partition",
        "debug",
        "--time",
        "5",
        "--cpus",
        "2",
        "--ntasks",
        "1",
        "--nodes",
        "1",
        "--sbatch-arg=--mem=100M",
        "cluster",
        "--",
        "sleep 3600",
    ]);
    let sid = c.slurm_id(&b, &flagged);
    let shown = c.slurm.scontrol_show_job(&sid);
    for want in [
        "JobName=flagged",
        "Partition=debug",
        "TimeLimit=00:05:00",
        "NumCPUs=2",
        "NumNodes=1",
        "MinMemoryNode=100M",
    ] {
        assert!(shown.contains(want), "{want} in:\n{shown}");
    }
    let key = b.job("flagged")["key"].as_str().unwrap().to_string();
    assert!(shown.contains(&format!("Comment=belay:{key}")), "{shown}");
    b.ok(&["cancel", &plain, &flagged]);
}

#[test]
fn the_scheduler_flag_overrides_the_hosts_configuration() {
    let c = Cluster::start();
    let b = c.belay();
    // `target` is the same login node, not configured as a cluster.
    let on_slurm = b.submit(&["--scheduler", "slurm", "target", "--", "echo via slurm"]);
    let done = b.wait_state(&on_slurm, "succeeded", Duration::from_secs(60));
    assert_eq!(done["scheduler"], "slurm", "{done:#}");
    assert_eq!(b.ok(&["logs", &on_slurm]), "via slurm\n");
    let direct = b.submit(&["--scheduler", "direct", "cluster", "--", "echo direct"]);
    let done = b.wait_state(&direct, "succeeded", Duration::from_secs(60));
    assert_eq!(done["scheduler"], "direct", "{done:#}");
    let key = done["key"].as_str().unwrap();
    assert!(
        c.slurm.jobs_with_comment(key).is_empty(),
        "{}",
        c.slurm.queue()
    );
    assert_eq!(c.slurm.calls("sbatch"), 1, "{}", c.slurm.call_log());
}

#[test]
fn an_sbatch_that_submits_then_times_out_leaves_exactly_one_slurm_job_which_belay_adopts() {
    let c = Cluster::start_with(SlurmOptions {
        lying_sbatch: true,
        ..SlurmOptions::default()
    });
    let b = c.belay();
    let out = b
        .cmd(["run", "--name", "liar", "cluster", "--", "echo once"])
        .deadline(Duration::from_secs(120))
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "once\n");
    let job = b.job("liar");
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let key = job["key"].as_str().unwrap();
    let jobs = c.slurm.jobs_with_comment(&format!("belay:{key}"));
    assert_eq!(
        jobs.len(),
        1,
        "exactly one Slurm job; sbatch calls:\n{}queue:\n{}",
        c.slurm.call_log(),
        c.slurm.queue()
    );
    assert_eq!(
        job["scheduler_id"].as_str(),
        Some(jobs[0].as_str()),
        "{job:#}"
    );
    let dir = c.remote(job["job_dir"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(dir.join("stdout")).unwrap(),
        "once\n"
    );
}

#[test]
fn a_job_waiting_for_resources_is_pending_with_slurms_reason_then_runs() {
    let c = Cluster::start();
    let b = c.belay();
    let big = fill_the_node(&c, &b, "big");
    b.wait_state(&big, "running", Duration::from_secs(30));
    let small = b.submit(&["--name", "small", "cluster", "--", "echo second"]);
    let job = wait_job(
        &b,
        "small",
        Duration::from_secs(30),
        "pending for Resources",
        |j| j["state"] == "pending" && reason(j).contains("Resources"),
    );
    let dir = c.remote(job["job_dir"].as_str().unwrap());
    assert!(
        !dir.join("started").exists(),
        "a pending job has not started"
    );
    // ps shows it too, reason included.
    let rows: Value = serde_json::from_str(&b.ok(&["ps", "--json"])).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == small.as_str())
        .expect("small in ps")
        .clone();
    assert_eq!(row["state"], "pending", "{row:#}");
    assert!(reason(&row).contains("Resources"), "{row:#}");
    assert!(b.ok(&["ps"]).contains("Resources"), "ps names the reason");
    // Freed, it runs and ends on its own.
    b.ok(&["cancel", &big]);
    assert_eq!(b.job(&big)["state"], "cancelled");
    b.wait_state(&small, "succeeded", Duration::from_secs(60));
    assert_eq!(b.ok(&["logs", &small]), "second\n");
}

#[test]
fn cancel_stops_a_running_job_through_scancel() {
    let c = Cluster::start();
    let b = c.belay();
    let id = b.submit(&["cluster", "--", "sleep 3013"]);
    b.wait_state(&id, "running", Duration::from_secs(30));
    let sid = c.slurm_id(&b, &id);
    assert!(poll(Duration::from_secs(10), || {
        !belay_testbed::processes_matching("^sleep 3013$").is_empty()
    }));
    let before = c.slurm.calls("scancel");
    b.ok(&["cancel", &id]);
    assert_eq!(b.job(&id)["state"], "cancelled");
    assert!(c.slurm.calls("scancel") > before, "{}", c.slurm.call_log());
    wait_slurm(&c, &sid, "JobState", "CANCELLED", Duration::from_secs(20));
    assert!(
        poll(Duration::from_secs(20), || {
            belay_testbed::processes_matching("^sleep 3013$").is_empty()
        }),
        "the job's command still runs"
    );
    // It stays cancelled once Slurm and the wrapper have had their say.
    b.ok(&["ps", "--all"]);
    assert_eq!(b.job(&id)["state"], "cancelled");
}

#[test]
fn cancel_of_a_pending_job_means_it_never_runs() {
    let c = Cluster::start();
    let b = c.belay();
    let big = fill_the_node(&c, &b, "filler");
    let waiting = b.submit(&["cluster", "--", "touch /root/pending-ran"]);
    let job = wait_job(&b, &waiting, Duration::from_secs(30), "pending", |j| {
        j["state"] == "pending"
    });
    let sid = c.slurm_id(&b, &waiting);
    b.ok(&["cancel", &waiting]);
    assert_eq!(b.job(&waiting)["state"], "cancelled");
    wait_slurm(&c, &sid, "JobState", "CANCELLED", Duration::from_secs(20));
    // Even once the node is free, it never starts.
    b.ok(&["cancel", &big]);
    assert!(poll(Duration::from_secs(20), || c.slurm.node_state() == "idle"));
    let dir = c.remote(job["job_dir"].as_str().unwrap());
    assert!(!dir.join("started").exists(), "the cancelled job started");
    assert!(
        !c.remote("/root/pending-ran").exists(),
        "the cancelled job ran"
    );
    assert_eq!(b.job(&waiting)["state"], "cancelled");
}

#[test]
fn a_job_killed_by_its_slurm_time_limit_fails_naming_timeout() {
    let c = Cluster::start();
    let b = c.belay();
    // One minute is Slurm's smallest limit; the job would sleep longer.
    let id = b.submit(&["--time", "1", "cluster", "--", "sleep 600"]);
    b.wait_state(&id, "running", Duration::from_secs(30));
    let sid = c.slurm_id(&b, &id);
    wait_slurm(&c, &sid, "JobState", "TIMEOUT", Duration::from_secs(150));
    let job = wait_job(&b, &id, Duration::from_secs(30), "ended", |j| {
        !matches!(j["state"].as_str(), Some("pending" | "running"))
    });
    assert_eq!(job["state"], "failed", "{job:#}");
    assert!(reason(&job).contains("TIMEOUT"), "{job:#}");
}

/// Kills belay job `id`'s batch script (Slurm job `sid`, with its
/// subshells) by SIGKILL while no belay watches (the daemon stopped): no
/// exit file; Slurm ends the job, and its record leaves slurmctld.
fn kill_unwatched(c: &Cluster, b: &Belay, id: &str, sid: &str) {
    if daemon_mode() {
        b.ok(&["serve", "--stop"]);
    }
    let script = format!(
        "{}/spool/job{:0>5}/slurm_script",
        c.slurm.dir().display(),
        sid
    );
    let wrappers = belay_testbed::processes_matching(&script);
    assert!(!wrappers.is_empty(), "the batch script runs");
    for w in &wrappers {
        let pid: i32 = w.split(' ').next().unwrap().parse().unwrap();
        // SAFETY: the wrapper of this test's job, in this test's cluster.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert!(
        poll(Duration::from_secs(90), || c
            .slurm
            .scontrol_show_job(sid)
            .is_empty()
            && c.slurm.jobs_with_comment(id).is_empty()),
        "Slurm kept the job's record:\n{}",
        c.slurm.scontrol_show_job(sid)
    );
}

#[test]
fn a_job_gone_from_squeue_without_a_trace_is_lost_after_a_grace_never_done() {
    // Records leave slurmctld 2 s after the end; no accounting, no jobcomp.
    let c = Cluster::start_with(SlurmOptions {
        min_job_age: 2,
        jobcomp: false,
        ..SlurmOptions::default()
    });
    let b = c.belay();
    let id = b.submit(&["cluster", "--", "sleep 3017"]);
    let job = b.wait_state(&id, "running", Duration::from_secs(30));
    let sid = c.slurm_id(&b, &id);
    let dir = c.remote(job["job_dir"].as_str().unwrap());
    kill_unwatched(&c, &b, &id, &sid);
    assert!(
        !dir.join("exit").exists(),
        "the killed wrapper wrote no exit file"
    );
    assert!(c.slurm.jobcomp().is_empty(), "no completion record either");
    // The first look after it vanished: not done, and not yet given up.
    let first = b.job(&id);
    assert!(
        !matches!(first["state"].as_str(), Some("succeeded" | "lost")),
        "right after it left squeue: {first:#}"
    );
    let job = wait_job(&b, &id, Duration::from_secs(180), "lost", |j| {
        matches!(j["state"].as_str(), Some("lost" | "succeeded"))
    });
    assert_eq!(job["state"], "lost", "{job:#}");
    assert!(!reason(&job).is_empty(), "lost says why: {job:#}");
    let events: Vec<&str> = job["events"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["to"].as_str()).collect())
        .unwrap_or_default();
    assert!(!events.contains(&"succeeded"), "{job:#}");
}

/// A job Slurm ended (its batch script killed) whose record left
/// slurmctld before belay looked, on a site that keeps job completion
/// records in a text file: the record names the end at once, no grace.
#[test]
fn a_job_gone_from_squeue_is_named_from_the_job_completion_record() {
    let c = Cluster::start_with(SlurmOptions {
        min_job_age: 2,
        jobcomp: true,
        ..SlurmOptions::default()
    });
    let b = c.belay();
    let id = b.submit(&["cluster", "--", "sleep 3018"]);
    b.wait_state(&id, "running", Duration::from_secs(30));
    let sid = c.slurm_id(&b, &id);
    kill_unwatched(&c, &b, &id, &sid);
    let record = c
        .slurm
        .jobcomp()
        .lines()
        .find(|l| l.starts_with(&format!("JobId={sid} ")))
        .map(str::to_string)
        .expect("a completion record");
    let state = record
        .split(' ')
        .find_map(|w| w.strip_prefix("JobState="))
        .unwrap()
        .to_string();
    // Well inside the lost grace (a minute of silent heartbeat).
    let job = wait_job(&b, &id, Duration::from_secs(30), "ended", |j| {
        !matches!(j["state"].as_str(), Some("running" | "pending"))
    });
    assert_eq!(job["state"], "failed", "{job:#}");
    let why = reason(&job);
    assert!(
        why.contains(&state) && why.contains("job completion record"),
        "{job:#}"
    );
}

#[test]
fn live_jobs_are_polled_with_one_squeue_per_interval_never_one_per_job() {
    let c = Cluster::start();
    let b = c.belay_with("poll_interval = \"2s\"\n");
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(b.submit(&["--name", &format!("live{i}"), "cluster", "--", "sleep 3600"]));
    }
    // (Through the daemon, `run -d` returns before sbatch has answered.)
    assert!(
        poll(Duration::from_secs(60), || c.slurm.queue().lines().count()
            == 20),
        "{}",
        c.slurm.queue()
    );
    let (squeue0, other0) = (
        c.slurm.calls("squeue"),
        c.slurm.calls("scontrol") + c.slurm.calls("sacct"),
    );
    let start = Instant::now();
    let mut rounds = 0;
    while start.elapsed() < Duration::from_secs(9) || rounds < 5 {
        let rows: Value = serde_json::from_str(&b.ok(&["ps", "--json"])).unwrap();
        assert_eq!(rows.as_array().unwrap().len(), 20, "{rows:#}");
        rounds += 1;
    }
    let elapsed = start.elapsed();
    let squeue = c.slurm.calls("squeue") - squeue0;
    let other = c.slurm.calls("scontrol") + c.slurm.calls("sacct") - other0;
    let allowed = (elapsed.as_secs_f64() / 2.0).floor() as usize + 1;
    assert!(
        (1..=allowed).contains(&squeue),
        "{squeue} squeue calls in {elapsed:?} ({rounds} ps) with a 2 s interval; log:\n{}",
        c.slurm.call_log()
    );
    assert!(
        other <= squeue,
        "{other} scontrol/sacct calls for {squeue} polls; log:\n{}",
        c.slurm.call_log()
    );
    // The polls saw every job: two run, the rest wait for resources.
    let rows: Value = serde_json::from_str(&b.ok(&["ps", "--json"])).unwrap();
    let states: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert!(
        states.iter().all(|s| *s == "pending" || *s == "running"),
        "{states:?}"
    );
    assert!(states.contains(&"pending"), "{states:?}");
}

#[test]
fn a_partition_slurm_refuses_is_bad_input_with_slurms_message() {
    let c = Cluster::start();
    let b = c.belay();
    let line = b
        .cmd(["run", "-d", "--partition", "nope", "cluster", "--", "true"])
        .bad_input("nope");
    assert!(
        line.to_lowercase().contains("invalid partition"),
        "Slurm's own words: {line}"
    );
    let line = b
        .cmd(["run", "-d", "--time", "banana", "cluster", "--", "true"])
        .bad_input("banana");
    assert!(line.to_lowercase().contains("time"), "{line}");
    for job in b.jobs() {
        assert!(
            !matches!(
                job["state"].as_str(),
                Some("submitting" | "queued" | "pending")
            ),
            "nothing left waiting: {job:#}"
        );
    }
    assert_eq!(c.slurm.queue().trim(), "", "Slurm has no job");
}

#[test]
fn a_slurm_host_without_sbatch_is_bad_input_naming_host_and_command() {
    let h = NoSbatch::start();
    let b = h.belay();
    let line = b
        .cmd(["run", "-d", "nosbatch", "--", "true"])
        .bad_input("nosbatch");
    assert!(line.contains("sbatch"), "{line}");
    for job in b.jobs() {
        assert!(
            !matches!(
                job["state"].as_str(),
                Some("submitting" | "queued" | "pending")
            ),
            "nothing left waiting: {job:#}"
        );
    }
}

#[test]
fn a_held_job_keeps_its_allocation_until_released() {
    let c = Cluster::start();
    let b = c.belay();
    let id = b.submit(&[
        "--hold-on-failure",
        "10m",
        "--time",
        "5",
        "cluster",
        "--",
        "exit 3",
    ]);
    let job = b.wait_state(&id, "held", Duration::from_secs(60));
    assert_eq!(job["exit_code"], 3, "{job:#}");
    // Never beyond the job's walltime (5 min, though 10 were asked): the
    // hold lives inside the allocation, and show says so.
    assert!(
        job["hold_left_s"]
            .as_i64()
            .is_some_and(|s| s > 0 && s <= 300),
        "the hold ends with the allocation, within 5 min: {job:#}"
    );
    assert!(reason(&job).contains("time limit"), "{job:#}");
    let sid = c.slurm_id(&b, &id);
    assert_eq!(
        c.slurm.job_field(&sid, "JobState").as_deref(),
        Some("RUNNING"),
        "the allocation is kept while held"
    );
    assert!(b.ok(&["show", &id]).contains("held"));
    let said = b.ok(&["release", &id]);
    assert!(said.contains("failed"), "{said}");
    let job = b.job(&id);
    assert_eq!(job["state"], "failed", "{job:#}");
    assert_eq!(job["exit_code"], 3);
    assert!(
        poll(Duration::from_secs(30), || c
            .slurm
            .job_field(&sid, "JobState")
            .is_some_and(|s| s != "RUNNING")),
        "released, the allocation ends:\n{}",
        c.slurm.scontrol_show_job(&sid)
    );
}

#[test]
fn a_job_whose_node_fails_fails_naming_node_fail() {
    let mut c = Cluster::start_with(SlurmOptions {
        slurmd_timeout: 3,
        ..SlurmOptions::default()
    });
    let b = c.belay();
    let id = b.submit(&["cluster", "--", "sleep 3019"]);
    b.wait_state(&id, "running", Duration::from_secs(30));
    let sid = c.slurm_id(&b, &id);
    // The node dies with the job on it (no exit file); slurmctld gives the
    // node up after SlurmdTimeout and ends its jobs as NODE_FAIL.
    c.slurm.kill_node();
    assert!(
        poll(Duration::from_secs(90), || c
            .slurm
            .node_state()
            .starts_with("down")),
        "node: {}",
        c.slurm.node_state()
    );
    let job = wait_job(&b, &id, Duration::from_secs(60), "ended", |j| {
        !matches!(j["state"].as_str(), Some("pending" | "running"))
    });
    assert_eq!(job["state"], "failed", "{job:#}");
    assert!(reason(&job).contains("NODE_FAIL"), "{job:#}");
    // Slurm does not requeue it to run the command a second time (its
    // default for batch jobs on a failed node).
    let shown = c.slurm.scontrol_show_job(&sid);
    assert!(shown.contains("Restarts=0"), "{shown}");
    assert!(shown.contains("JobState=NODE_FAIL"), "{shown}");
}
