//! `belay forward` through a real sshd: HTTP through a forwarded port and
//! a forwarded Unix socket, refusals named, bad input, the link dropped
//! and back (same local port, a connection made during the outage
//! completes), `--stop` leaving no listener, a daemon killed with SIGKILL
//! binding its forwards again, and a job's forward closing when the job
//! ends. Forwards live in the daemon, so these tests turn it on
//! explicitly (the same in both matrix modes); one test covers
//! `--no-daemon` (the forward held by the command). The isolated-node
//! case runs in a NetLab: a Unix-socket HTTP server on a node reachable
//! only through the jump host, partitioned for 10 s and healed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::remote::{Lab, Loopback};
use crate::support::*;

/// `b` with its commands going through the daemon whatever the matrix mode.
fn through_daemon(b: Belay) -> Belay {
    b.with_env("BELAY_NO_DAEMON", "")
}

/// A python HTTP server (killed on drop), serving `dir` on a TCP port of
/// 127.0.0.1 or on a Unix socket.
struct HttpServer {
    child: Child,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const UNIX_HTTP: &str = r#"
import http.server, socketserver, sys, os
os.chdir(sys.argv[2])
class Handler(http.server.SimpleHTTPRequestHandler):
    def address_string(self):
        return "unix"
class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 64
Server(sys.argv[1], Handler).serve_forever()
"#;

fn page_dir(b: &Belay, text: &str) -> PathBuf {
    let dir = b.scratch("www");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("page.txt"), text).unwrap();
    dir
}

fn tcp_server(dir: &Path) -> (HttpServer, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    assert!(
        poll(Duration::from_secs(10), || TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "http.server on {port}"
    );
    (HttpServer { child }, port)
}

fn unix_server(dir: &Path, socket: &Path) -> HttpServer {
    let child = Command::new("python3")
        .args(["-c", UNIX_HTTP])
        .arg(socket)
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    assert!(
        poll(Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(socket).is_ok()
        }),
        "unix http server at {}",
        socket.display()
    );
    HttpServer { child }
}

/// `GET /page.txt` through `addr` (`127.0.0.1:PORT` or a socket path):
/// the body, or why not.
fn get(addr: &str) -> Result<String, String> {
    let request = b"GET /page.txt HTTP/1.0\r\nHost: belay\r\n\r\n";
    let mut reply = Vec::new();
    if addr.starts_with('/') {
        let mut s = std::os::unix::net::UnixStream::connect(addr).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.write_all(request).map_err(|e| e.to_string())?;
        s.read_to_end(&mut reply).map_err(|e| e.to_string())?;
    } else {
        let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.write_all(request).map_err(|e| e.to_string())?;
        s.read_to_end(&mut reply).map_err(|e| e.to_string())?;
    }
    let text = String::from_utf8_lossy(&reply).into_owned();
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.0 200") => Ok(body.to_string()),
        _ => Err(format!("not a 200 reply: {text:?}")),
    }
}

/// Opens one forward through the daemon; its listing.
fn open(b: &Belay, to: &str, spec: &str) -> Value {
    let v = b.cmd(["forward", to, spec, "--json"]).json();
    v[0].clone()
}

fn list(b: &Belay) -> Vec<Value> {
    b.cmd(["forward", "--list", "--json"])
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn local_of(v: &Value) -> String {
    v["local"].as_str().expect("local address").to_string()
}

fn refused(addr: &str) -> bool {
    TcpStream::connect(addr).is_err()
}

fn daemon_pid(b: &Belay) -> u32 {
    let v: Value = serde_json::from_str(&b.cmd(["serve", "--status", "--json"]).ok()).unwrap();
    v["pid"].as_u64().expect("pid") as u32
}

#[test]
fn http_goes_through_a_forwarded_port_and_a_forwarded_unix_socket() {
    let host = Loopback::start();
    let b = through_daemon(host.belay());
    let dir = page_dir(&b, "hello through belay\n");
    let (_tcp, port) = tcp_server(&dir);
    let socket = b.scratch("app.sock");
    let _unix = unix_server(&dir, &socket);

    let by_port = open(&b, "target", &port.to_string());
    assert_eq!(by_port["state"], "listening", "{by_port}");
    let via_port = local_of(&by_port);
    assert!(via_port.starts_with("127.0.0.1:"), "{via_port}");
    assert_eq!(get(&via_port).unwrap(), "hello through belay\n");

    let by_socket = open(&b, "target", socket.to_str().unwrap());
    let via_socket = local_of(&by_socket);
    assert_eq!(get(&via_socket).unwrap(), "hello through belay\n");
    // Many requests, some at once, on the same forward.
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let addr = via_socket.clone();
            std::thread::spawn(move || (0..5).map(|_| get(&addr)).collect::<Result<Vec<_>, _>>())
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }

    // A chosen local port, and a local Unix socket (mode 0600).
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let chosen = free.local_addr().unwrap().port();
    drop(free);
    let fixed = open(&b, "target", &format!("{chosen}:127.0.0.1:{port}"));
    assert_eq!(local_of(&fixed), format!("127.0.0.1:{chosen}"));
    assert_eq!(get(&local_of(&fixed)).unwrap(), "hello through belay\n");
    let here = b.scratch("here.sock");
    let to_socket = open(&b, "target", &format!("{}:{port}", here.display()));
    assert_eq!(
        get(here.to_str().unwrap()).unwrap(),
        "hello through belay\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&here).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let listed = list(&b);
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(
        listed.iter().all(|f| f["state"] == "listening"),
        "{listed:?}"
    );
    let human = b.cmd(["forward", "--list"]).ok();
    assert!(
        human.contains(&via_port) && human.contains("listening"),
        "{human}"
    );

    // --stop ID: no listener left; --stop all: none at all.
    let id = by_port["id"].as_str().unwrap();
    let out = b.cmd(["forward", "--stop", id]).ok();
    assert!(out.contains(id), "{out}");
    assert!(refused(&via_port), "{via_port} still accepts after --stop");
    b.cmd(["forward", "--stop", "all"]).ok();
    assert!(list(&b).is_empty());
    assert!(refused(&local_of(&fixed)));
    assert!(!here.exists(), "the local socket is removed");
    assert!(std::os::unix::net::UnixStream::connect(&via_socket).is_err());
    let _ = to_socket;
}

#[test]
fn bad_specs_and_a_local_port_in_use_are_bad_input() {
    let host = Loopback::start();
    let b = through_daemon(host.belay());
    b.cmd(["forward", "target", "70000"]).bad_input("70000");
    b.cmd(["forward", "target", "80000:80"]).bad_input("80000");
    b.cmd(["forward", "target", "relative.sock"])
        .bad_input("relative.sock");
    b.cmd(["forward", "target"]).bad_input("target");
    b.cmd(["forward", "no-such-host.invalid", "80"])
        .bad_input("no-such-host.invalid");
    let dir = page_dir(&b, "x");
    let (_tcp, port) = tcp_server(&dir);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    b.cmd(["forward", "target", &format!("{busy}:{port}")])
        .bad_input(&busy.to_string());
    assert!(list(&b).is_empty(), "nothing recorded");
    b.cmd(["forward", "--stop", "nothing-like-this"])
        .bad_input("nothing-like-this");
}

#[test]
fn refusals_name_the_host_and_the_sshd_setting() {
    let host = Loopback::start_with(vec![
        "AllowTcpForwarding no".into(),
        "AllowStreamLocalForwarding no".into(),
    ]);
    let b = through_daemon(host.belay());
    let dir = page_dir(&b, "x");
    let (_tcp, port) = tcp_server(&dir);
    let out = b.cmd(["forward", "target", &port.to_string()]).output();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("target") && err.contains("AllowTcpForwarding"),
        "{err}"
    );
    let socket = b.scratch("app.sock");
    let _unix = unix_server(&dir, &socket);
    let out = b
        .cmd(["forward", "target", socket.to_str().unwrap()])
        .output();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("target") && err.contains("AllowStreamLocalForwarding"),
        "{err}"
    );
    assert!(list(&b).is_empty(), "nothing recorded");
}

#[test]
fn a_forward_heals_after_the_link_drops_on_the_same_local_port() {
    let mut host = Loopback::start();
    let b = through_daemon(host.belay());
    let dir = page_dir(&b, "still here\n");
    let (_tcp, port) = tcp_server(&dir);
    let fwd = open(&b, "target", &port.to_string());
    let addr = local_of(&fwd);
    assert_eq!(get(&addr).unwrap(), "still here\n");

    // The link dropped (its sshd processes killed): the same port works
    // again, without touching the forward.
    host.sshd.kill_sessions();
    assert!(
        poll(Duration::from_secs(30), || get(&addr).is_ok()),
        "the forward did not heal"
    );

    // The host away for a while: a connection made meanwhile waits, and
    // completes once the host is back.
    host.sshd.kill();
    let during = {
        let addr = addr.clone();
        std::thread::spawn(move || get(&addr))
    };
    std::thread::sleep(Duration::from_secs(2)); // the outage lasts this long
    host.sshd.restart().expect("sshd back");
    assert_eq!(during.join().unwrap().unwrap(), "still here\n");
    let listed = list(&b);
    assert_eq!(
        local_of(&listed[0]),
        addr,
        "the local address never changes"
    );
}

/// The TCP ports process `pid` listens on (its own sockets in LISTEN).
fn listening_ports(pid: u32) -> Vec<u16> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                let port = f[1].rsplit(':').next().unwrap_or("0");
                ports.push(u16::from_str_radix(port, 16).unwrap_or(0));
            }
        }
    }
    ports.sort();
    ports
}

#[test]
fn a_hundred_forced_reconnects_keep_the_port_and_stop_leaves_no_listener() {
    let host = Loopback::start();
    let b = through_daemon(host.belay());
    let dir = page_dir(&b, "every time\n");
    let (_tcp, port) = tcp_server(&dir);
    b.cmd(["run", "local", "--", "true"]).ok(); // starts the daemon
    let before = listening_ports(daemon_pid(&b));
    let fwd = open(&b, "target", &port.to_string());
    let addr = local_of(&fwd);
    let pid = daemon_pid(&b);
    let local: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        listening_ports(pid).contains(&local),
        "{addr} is the daemon's"
    );
    assert_eq!(get(&addr).unwrap(), "every time\n");
    let accepted = || host.sshd.log().matches("Accepted publickey").count();
    for i in 0..100 {
        let logins = accepted();
        // The daemon's connection dies (its sshd processes killed); the
        // next request through the same port heals it.
        host.sshd.kill_sessions();
        let mut last = Err(String::new());
        let healed = poll(Duration::from_secs(30), || {
            last = get(&addr);
            last.is_ok()
        });
        assert!(healed, "drop {i}: the forward did not heal: {last:?}");
        assert_eq!(last.unwrap(), "every time\n", "drop {i}");
        assert!(
            accepted() > logins,
            "drop {i}: no new login, so no reconnect"
        );
    }
    assert_eq!(daemon_pid(&b), pid, "one daemon throughout");
    let listed = list(&b);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        local_of(&listed[0]),
        addr,
        "the local address never changes"
    );

    b.cmd(["forward", "--stop", "all"]).ok();
    assert!(refused(&addr), "{addr} still accepts after --stop");
    assert_eq!(
        listening_ports(pid),
        before,
        "the daemon listens where it did before"
    );
    assert!(list(&b).is_empty());
}

#[test]
fn a_killed_daemon_binds_its_forwards_again() {
    let host = Loopback::start();
    let b = through_daemon(host.belay());
    let dir = page_dir(&b, "after restart\n");
    let (_tcp, port) = tcp_server(&dir);
    let fwd = open(&b, "target", &port.to_string());
    let addr = local_of(&fwd);
    let old = daemon_pid(&b);
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(old as i32, libc::SIGKILL) };
    assert!(poll(Duration::from_secs(10), || !is_running(old)));
    // (Polled: the kernel closes a SIGKILLed process's sockets as it is
    // torn down, which a busy machine may finish after its pid is gone.)
    assert!(
        poll(Duration::from_secs(10), || refused(&addr)),
        "the killed daemon's listener is gone"
    );

    // The next command starts a daemon, which binds it again.
    let listed = list(&b);
    assert_ne!(daemon_pid(&b), old);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], fwd["id"]);
    assert_eq!(listed[0]["state"], "listening", "{listed:?}");
    assert_eq!(local_of(&listed[0]), addr, "the same local port");
    assert_eq!(get(&addr).unwrap(), "after restart\n");
    b.cmd(["forward", "--stop", "all"]).ok();
    // The daemon stopped with nothing recorded: nothing listens after it.
    b.cmd(["serve", "--stop"]).ok();
    assert!(refused(&addr));
}

#[test]
fn a_jobs_forward_closes_when_the_job_ends() {
    let host = Loopback::start();
    let b = through_daemon(host.belay());
    let dir = page_dir(&b, "job page\n");
    let (_tcp, port) = tcp_server(&dir);
    let marker = b.scratch("go");
    let id = b.submit(&[
        "target",
        "--",
        &format!("while [ ! -e {} ]; do sleep 0.2; done", marker.display()),
    ]);
    b.wait_state(&id, "running", Duration::from_secs(30));
    let fwd = open(&b, &id, &port.to_string());
    assert_eq!(fwd["job_id"], id.as_str());
    assert_eq!(fwd["host"], "target");
    let addr = local_of(&fwd);
    assert_eq!(get(&addr).unwrap(), "job page\n");

    std::fs::write(&marker, "").unwrap();
    assert!(
        poll(Duration::from_secs(30), || list(&b)
            .first()
            .is_some_and(|f| f["state"] == "job ended")),
        "{:?}",
        list(&b)
    );
    assert!(refused(&addr), "a closed forward leaves no listener");
    let human = b.cmd(["forward", "--list"]).ok();
    assert!(human.contains("job ended"), "{human}");
    // An ended job cannot be forwarded to.
    b.cmd(["forward", &id, &port.to_string()]).bad_input(&id);
}

#[test]
fn without_the_daemon_the_forward_lives_in_the_command() {
    let host = Loopback::start();
    let b = host.belay().with_env("BELAY_NO_DAEMON", "1");
    let dir = page_dir(&b, "foreground\n");
    let (_tcp, port) = tcp_server(&dir);
    let mut child = b
        .command(&["forward", "target", &port.to_string(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    // The listing is printed once it listens (the command keeps running).
    assert!(poll(Duration::from_secs(30), || {
        let n = stdout.read(&mut buf).unwrap_or(0);
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        text.trim_end().ends_with(']') || n == 0
    }));
    assert!(text.trim_end().ends_with(']'), "{text:?}: {:?}", {
        let _ = child.kill();
        child.wait_with_output().map(|o| stderr_of(&o))
    });
    let v: Value = serde_json::from_str(&text).unwrap();
    let addr = local_of(&v[0]);
    assert_eq!(get(&addr).unwrap(), "foreground\n");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(refused(&addr));
    assert!(!b.home.path().join("belay.sock").exists(), "no daemon");
}

#[test]
fn a_forward_to_a_socket_on_an_isolated_node_survives_a_partition() {
    let lab = Lab::start();
    let b = through_daemon(lab.belay());
    let dir = page_dir(&b, "from node1\n");
    let socket = b.scratch("node-app.sock");
    // The server runs in node1's network namespace (the socket is a path:
    // the forward reaches it through node1's sshd, via the jump host).
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.lab.nodes[0].netns,
            "python3",
            "-c",
            UNIX_HTTP,
        ])
        .arg(&socket)
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 in node1");
    let _server = HttpServer { child };
    assert!(poll(Duration::from_secs(10), || socket.exists()));
    let fwd = open(&b, "node1", socket.to_str().unwrap());
    let addr = local_of(&fwd);
    assert_eq!(get(&addr).unwrap(), "from node1\n");

    partition(&lab, &lab.lab.nodes[0].netns, true);
    std::thread::sleep(Duration::from_secs(10)); // the partition lasts this long
    partition(&lab, &lab.lab.nodes[0].netns, false);
    // New connections work again soon after the heal (≤ 3 s is measured
    // by bench/forward.py; here a generous deadline), same local address.
    let healed = std::time::Instant::now();
    assert!(
        poll(Duration::from_secs(45), || get(&addr).is_ok()),
        "no answer through {addr} after the heal"
    );
    eprintln!("forward answered {:?} after the heal", healed.elapsed());
    assert_eq!(local_of(&list(&b)[0]), addr);
}

/// Drop every packet in and out of a namespace (a partition), or heal it.
fn partition(lab: &Lab, ns: &str, cut: bool) {
    let script = if cut {
        "nft -f - <<'EOF'\ntable inet belay_fwd {\n  chain in { type filter hook input priority 0; policy drop; }\n  chain out { type filter hook output priority 0; policy drop; }\n}\nEOF\n"
    } else {
        "nft delete table inet belay_fwd 2>/dev/null; true\n"
    };
    lab.lab
        .exec_in(ns, script)
        .expect("nft in the node namespace");
}
