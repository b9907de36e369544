//! Into a Slurm job (issue 13 item 7): `belay shell JOB` into a live job is
//! a step of the job's own allocation (`srun --overlap --jobid`), so it
//! sees the job's Slurm environment, and it lands in the job's directory
//! with its variables; `app run cluster jupyter --partition debug` (the
//! seed-002 story) serves a real jupyter-server as a Slurm job behind the
//! daemon's forward — through a real sshd login node and real Slurm.
//!
//! On a cluster whose compute node is isolated (its own network namespace:
//! its loopback ports are out of the login node's reach), a forward to a
//! job there goes by SSH to the node through the login node where the
//! user's config names the node and the node takes SSH, else through a
//! relay step in the job's allocation (`srun --overlap`), byte for byte.

use std::time::Duration;

use belay_testbed::SlurmOptions;

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

/// The seed-002 story: `app run cluster jupyter --partition debug` starts
/// a real jupyter-server as a Slurm job on an isolated compute node, on a
/// Unix socket, forwarded through the login node (a relay step in the
/// job's allocation); the printed URL answers with its token and refuses
/// without it; `app stop` ends the Slurm job.
#[test]
fn jupyter_runs_as_a_slurm_job_on_a_compute_node_behind_a_forward() {
    let jupyter = crate::support::jupyter::jupyter_server();
    let c = Cluster::start_with(SlurmOptions {
        compute_node: true,
        ..Default::default()
    });
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
    assert_eq!(
        c.slurm.job_field(&sid, "NodeList").as_deref(),
        Some(belay_testbed::NODE_NAME),
        "{slurm}"
    );
    assert!(
        c.slurm.calls("srun") >= 2,
        "reached through relay steps: {}",
        c.slurm.call_log()
    );
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

/// `GET path` at `addr`: the status and the body.
fn get(addr: &str, path: &str) -> Result<(u16, Vec<u8>), String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).map_err(|e| e.to_string())?;
    let end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("not HTTP: {:?}", String::from_utf8_lossy(&reply)))?;
    let head = String::from_utf8_lossy(&reply[..end]).into_owned();
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not HTTP: {head:?}"))?;
    Ok((code, reply[end + 4..].to_vec()))
}

/// A job on the isolated compute node serves HTTP on that node's loopback
/// only. The login node has nothing at that port (a forward to the host
/// itself is refused, naming it), yet a forward to the job reaches it,
/// through a relay step in its allocation: the 1 MB body comes back byte
/// for byte, connection after connection; the forward closes with the job.
#[test]
fn a_forward_reaches_a_port_on_an_isolated_compute_node_through_the_allocation() {
    let c = Cluster::start_with(SlurmOptions {
        compute_node: true,
        ..Default::default()
    });
    let b = c.belay().with_env("BELAY_NO_DAEMON", "");
    let port = "8642";
    let id = b.submit(&[
        "--name",
        "web",
        "cluster",
        "--",
        &format!(
            "head -c 1000000 /dev/urandom > blob && exec python3 -m http.server {port} --bind 127.0.0.1"
        ),
    ]);
    b.wait_state(&id, "running", Duration::from_secs(60));
    let sid = c.slurm_id(&b, &id);
    assert_eq!(
        c.slurm.job_field(&sid, "NodeList").as_deref(),
        Some(belay_testbed::NODE_NAME),
        "{}",
        c.slurm.scontrol_show_job(&sid)
    );
    // The login node's own loopback has nothing there.
    let direct = b.run(&["forward", "cluster", port, "--json"]);
    assert_eq!(direct.status.code(), Some(1), "{direct:?}");
    assert!(
        crate::support::stderr_of(&direct).contains(&format!("localhost:{port}")),
        "{direct:?}"
    );
    // The server may still be starting: the forward is refused (naming the
    // job's node) until it listens.
    let local = forward_when_listening(&b, &id, port);
    let srun_before = c.slurm.calls("srun");
    let sum = b
        .cmd(["shell", &id, "--", "sha256sum blob"])
        .deadline(Duration::from_secs(60))
        .ok();
    let want = sum.split_whitespace().next().unwrap().to_string();
    for _ in 0..3 {
        let (code, body) = get(&local, "/blob").expect("through the relay");
        assert_eq!(code, 200);
        assert_eq!(body.len(), 1_000_000);
        let got = sha256(&body);
        assert_eq!(got, want, "the body arrives byte for byte");
    }
    // One relay step per connection (and one for the shell above).
    assert!(
        c.slurm.calls("srun") >= srun_before + 4,
        "{}",
        c.slurm.call_log()
    );
    b.ok(&["cancel", &id]);
    b.wait_state(&id, "cancelled", Duration::from_secs(60));
    let closed = belay_testbed::wait_until(Duration::from_secs(30), || {
        let list = b.cmd(["forward", "--list", "--json"]).json();
        list["forwards"]
            .as_array()
            .or(list.as_array())
            .into_iter()
            .flatten()
            .any(|f| f["state"] == "job ended")
    });
    assert!(closed, "the forward closes with the job");
}

/// Where the cluster lets users SSH to compute nodes (an sshd on the node,
/// `Host node1` with `ProxyJump cluster` in the ssh config), a forward to
/// a job there is a forwarded channel on a connection to the node itself,
/// and a shell is a login there: no relay step (srun is not called), the
/// node's sshd sees the login.
#[test]
fn a_forward_goes_by_ssh_to_the_compute_node_where_the_cluster_allows_it() {
    let mut c = Cluster::start_with(SlurmOptions {
        compute_node: true,
        ..Default::default()
    });
    c.allow_ssh_to_node();
    let b = c.belay().with_env("BELAY_NO_DAEMON", "");
    let port = "8643";
    let id = b.submit(&[
        "cluster",
        "--",
        &format!("exec python3 -m http.server {port} --bind 127.0.0.1"),
    ]);
    b.wait_state(&id, "running", Duration::from_secs(60));
    let srun_before = c.slurm.calls("srun");
    let local = forward_when_listening(&b, &id, port);
    for _ in 0..3 {
        let (code, body) = get(&local, "/").expect("through the node's sshd");
        assert_eq!(code, 200);
        assert!(!body.is_empty());
    }
    assert_eq!(
        c.slurm.calls("srun"),
        srun_before,
        "no relay step: {}\nserve.log: {}\njob: {:#}",
        c.slurm.call_log(),
        std::fs::read_to_string(b.home.path().join("serve.log")).unwrap_or_default(),
        b.job(&id)
    );
    assert!(
        c.slurm.node_sshd_log().contains("Accepted publickey"),
        "the node's sshd took the connection: {}",
        c.slurm.node_sshd_log()
    );
    // `belay shell JOB` goes there too: on the node, in the job's
    // directory with its variables, not as a step (no srun, no Slurm
    // step variables).
    let out = b
        .cmd([
            "shell",
            &id,
            "--",
            "echo node=$(cat /proc/sys/kernel/hostname) belay=$BELAY_JOB_ID step=${SLURM_STEP_ID:-none}; pwd",
        ])
        .deadline(Duration::from_secs(60))
        .ok();
    assert_eq!(
        out.lines().next(),
        Some(format!("node={} belay={id} step=none", belay_testbed::NODE_NAME).as_str()),
        "{out}"
    );
    assert_eq!(out.lines().nth(1), Some("/root"), "{out}");
    assert_eq!(
        c.slurm.calls("srun"),
        srun_before,
        "no srun for the shell either: {}",
        c.slurm.call_log()
    );
}

/// A config that names the compute node (`Host node1`, ProxyJump cluster)
/// where the node takes no SSH: the forward still works, through a relay
/// step in the allocation, and the daemon's log says why; so does a shell,
/// a step of the allocation, with a line saying why.
#[test]
fn a_forward_falls_back_to_srun_when_the_compute_node_refuses_ssh() {
    let c = Cluster::start_with(SlurmOptions {
        compute_node: true,
        ..Default::default()
    });
    c.configure_node_host();
    let b = c.belay().with_env("BELAY_NO_DAEMON", "");
    let port = "8644";
    let id = b.submit(&[
        "cluster",
        "--",
        &format!("exec python3 -m http.server {port} --bind 127.0.0.1"),
    ]);
    b.wait_state(&id, "running", Duration::from_secs(60));
    let local = forward_when_listening(&b, &id, port);
    let (code, _) = get(&local, "/").expect("through a relay step");
    assert_eq!(code, 200);
    assert!(c.slurm.calls("srun") >= 2, "{}", c.slurm.call_log());
    let log = std::fs::read_to_string(b.home.path().join("serve.log")).unwrap_or_default();
    assert!(
        log.contains("no SSH to the job's node") && log.contains("forwarding through srun"),
        "{log}"
    );
    // A shell falls back the same way, and says so.
    let out = b
        .cmd([
            "shell",
            &id,
            "--",
            "echo node=$(cat /proc/sys/kernel/hostname) step=${SLURM_STEP_ID:-none}",
        ])
        .deadline(Duration::from_secs(60))
        .output();
    assert!(out.status.success(), "{}", crate::support::stderr_of(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.starts_with(&format!("node={} step=", belay_testbed::NODE_NAME))
            && !said.contains("step=none"),
        "a step of the allocation on the node: {said}"
    );
    assert!(
        crate::support::stderr_of(&out).contains("no SSH to the job's node"),
        "{}",
        crate::support::stderr_of(&out)
    );
}

/// `belay forward JOB PORT` once the job's server listens (it may still
/// be starting: until then the forward is refused, naming what is
/// missing); the local address.
fn forward_when_listening(b: &crate::support::Belay, id: &str, port: &str) -> String {
    let mut opened = None;
    let mut last = String::new();
    let up = belay_testbed::wait_until(Duration::from_secs(60), || {
        let out = b.run(&["forward", id, port, "--json"]);
        if out.status.success() {
            opened = Some(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap());
            return true;
        }
        last = crate::support::stderr_of(&out);
        assert!(
            last.contains("nothing accepts connections"),
            "a refusal names what is missing: {last}"
        );
        false
    });
    assert!(up, "no forward to the job: {last}");
    opened.unwrap()[0]["local"].as_str().unwrap().to_string()
}

/// sha256 of `data`, as `sha256sum` prints it (hex), by the system's tool.
fn sha256(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}
