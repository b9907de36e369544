//! Reaching a live Slurm job's compute node. Where the user's OpenSSH
//! config names the node (a `Host` with a ProxyJump or ProxyCommand,
//! typically through the login node: [`node_alias`]) and the node takes
//! the connection, `shell`, `forward` and `app` go there by SSH. Else,
//! from the login node, a command run as a job step beside the job
//! (`srun --overlap --jobid=ID`), on the compute node Slurm placed it,
//! whatever that node's network lets the login node reach. `belay shell` runs the user's
//! shell that way; `belay forward` and `belay app` run [`RELAY_PROGRAM`]
//! there, a small byte relay to a port or Unix socket on the node, whose
//! stdin and stdout are the forwarded connection (a compute node's
//! loopback ports and node-local sockets are out of reach of the login
//! node's `direct-tcpip`).
//!
//! `srun -u`: without it slurmstepd buffers a step's output by line, and a
//! relayed protocol that writes no newline (a websocket frame) would stall.
//! Verified byte-exact on Slurm 22.05 with 5 MB of random data.

use crate::hosts::Hosts;
use crate::job::{Job, JobState};
use crate::shell::quote;

/// The alias by which the user's OpenSSH config reaches `job`'s compute
/// node, if it does: the node's hostname (from the job's `started`
/// record) resolves to a chain with a ProxyJump or ProxyCommand (a plain
/// name would be tried directly, from here, where compute nodes are rarely
/// reachable), and it is not `host`, the login node itself. Only for a
/// Slurm job that has not ended.
pub fn node_alias(hosts: &Hosts, host: &str, job: &Job) -> Option<String> {
    allocation_id(job)?;
    let node = job.liveness.as_deref()?.split(' ').nth(3)?;
    if node.is_empty() || node == host || node.starts_with('-') {
        return None;
    }
    let chain = hosts.resolve(node).ok()?;
    (!chain.jumps.is_empty() || chain.target.proxy_command.is_some()).then(|| node.to_string())
}

/// The Slurm job id of `job` when it is a live Slurm job (running or in a
/// debug hold), the case where its processes are inside an allocation on
/// a compute node.
pub fn live_job_id(job: &Job) -> Option<&str> {
    let live = matches!(job.state, JobState::Running | JobState::Held);
    let id = job.scheduler_id.as_deref()?;
    (job.scheduler == "slurm"
        && live
        && !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit() || b == b'_'))
    .then_some(id)
}

/// The Slurm job id of `job` when it is a Slurm job that has not ended
/// (pending, running or held): a forward to it goes into its allocation,
/// once there is one, whatever state the store last saw.
pub fn allocation_id(job: &Job) -> Option<&str> {
    let id = job.scheduler_id.as_deref()?;
    (job.scheduler == "slurm"
        && job.state.is_live()
        && !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit() || b == b'_'))
    .then_some(id)
}

/// A byte relay in python3 (present wherever belay's apps run): connects
/// to `argv[1]` (`/path.sock`, `HOST:PORT` or `[V6]:PORT`) and copies
/// stdin to it and it to stdout until both ends close. With `probe` as
/// `argv[2]` it only connects and says whether it could (exit 3 and the
/// error on stderr when not).
pub const RELAY_PROGRAM: &str = r#"import os, socket, sys, threading
t = sys.argv[1]
try:
    if t.startswith('/'):
        s = socket.socket(socket.AF_UNIX)
        s.connect(t)
    else:
        h, p = t.rsplit(':', 1)
        s = socket.create_connection((h.strip('[]'), int(p)))
except OSError as e:
    sys.stderr.write('nothing accepts connections at %s on %s (%s)\n' % (t, socket.gethostname(), e.strerror or e))
    sys.exit(3)
if sys.argv[2:] == ['probe']:
    sys.exit(0)
def up():
    try:
        while True:
            b = os.read(0, 65536)
            if not b:
                break
            s.sendall(b)
    finally:
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
threading.Thread(target=up, daemon=True).start()
while True:
    b = s.recv(65536)
    if not b:
        break
    while b:
        b = b[os.write(1, b):]
"#;

/// The command (for the login node) that relays a connection to `target`
/// as seen from inside Slurm job `slurm_id`.
pub fn relay_command(slurm_id: &str, target: &str) -> String {
    step_command(slurm_id, target, false)
}

/// The command that checks something accepts connections at `target`
/// inside Slurm job `slurm_id` (exit 0), else says why on stderr.
pub fn probe_command(slurm_id: &str, target: &str) -> String {
    step_command(slurm_id, target, true)
}

fn step_command(slurm_id: &str, target: &str, probe: bool) -> String {
    format!(
        "exec srun -u --overlap --jobid={slurm_id} --nodes=1 --ntasks=1 --quiet python3 -c {} {}{}",
        quote(RELAY_PROGRAM),
        quote(target),
        if probe { " probe" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_program_compiles_and_the_command_quotes_its_target() {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                &format!("compile({:?}, 'relay', 'exec')", RELAY_PROGRAM),
            ])
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let c = relay_command("42", "/tmp/a b.sock");
        assert!(c.starts_with("exec srun -u --overlap --jobid=42 "), "{c}");
        assert!(c.ends_with(" '/tmp/a b.sock'"), "{c}");
        assert!(probe_command("42", "127.0.0.1:8888").ends_with(" '127.0.0.1:8888' probe"));
    }

    #[test]
    fn the_relay_copies_both_ways_and_a_probe_says_what_is_missing() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let echo = std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            c.read_to_end(&mut buf).unwrap();
            c.write_all(&buf).unwrap();
        });
        let mut relay = std::process::Command::new("python3")
            .args(["-c", RELAY_PROGRAM, &format!("127.0.0.1:{port}")])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        relay.stdin.take().unwrap().write_all(&data).unwrap();
        let mut back = Vec::new();
        relay.stdout.take().unwrap().read_to_end(&mut back).unwrap();
        assert!(relay.wait().unwrap().success());
        echo.join().unwrap();
        assert_eq!(back, data);
        let closed = std::process::Command::new("python3")
            .args(["-c", RELAY_PROGRAM, &format!("127.0.0.1:{port}"), "probe"])
            .output()
            .unwrap();
        assert_eq!(closed.status.code(), Some(3));
        let said = String::from_utf8_lossy(&closed.stderr);
        assert!(
            said.contains(&format!("nothing accepts connections at 127.0.0.1:{port}")),
            "{said}"
        );
    }
}
