//! `belay app` with a real jupyter-server (a virtualenv from the Python
//! package index: support/jupyter.rs) behind a real sshd: the URL works
//! with its token and not without, the token is in no file, log, store or
//! command line belay controls, one app per name, and `app stop` leaves
//! no process, forward or socket.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::jupyter::jupyter_server;
use crate::support::remote::Loopback;
use crate::support::*;

/// `b` with its commands going through the daemon whatever the matrix
/// mode (the daemon holds the app's forward).
fn through_daemon(b: Belay) -> Belay {
    b.with_env("BELAY_NO_DAEMON", "")
}

/// The HTTP status of `GET path` at `addr` (`127.0.0.1:PORT`).
fn status(addr: &str, path: &str) -> Result<u16, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
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

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(files_containing(&p, needle));
        } else if std::fs::read(&p)
            .map(|b| String::from_utf8_lossy(&b).contains(needle))
            .unwrap_or(false)
        {
            found.push(p.display().to_string());
        }
    }
    found
}

/// Processes whose command line contains `needle`.
fn command_lines_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(cmd);
            }
        }
    }
    found
}

#[test]
fn jupyter_runs_behind_a_forward_and_its_token_stays_private() {
    let jupyter = jupyter_server();
    let host = Loopback::start();
    let b = through_daemon(host.belay());
    std::fs::write(
        b.home.path().join("config.toml"),
        format!("[hosts.target]\njupyter = \"{}\"\n", jupyter.display()),
    )
    .unwrap();

    let app = b
        .cmd(["app", "run", "target", "jupyter", "--json"])
        .deadline(Duration::from_secs(180))
        .json();
    let (job, url, local) = (
        app["job"].as_str().unwrap().to_string(),
        app["url"].as_str().unwrap().to_string(),
        app["local"].as_str().unwrap().to_string(),
    );
    let token = url
        .split("token=")
        .nth(1)
        .expect("a token in the URL")
        .to_string();
    assert!(token.len() >= 32, "{url}");
    // Through the printed URL's address: the token opens it, nothing else.
    assert_eq!(
        status(&local, &format!("/api/status?token={token}")),
        Ok(200)
    );
    assert_eq!(status(&local, "/api/status"), Ok(403));

    // The token is on the node in the app's 0600 file, and nowhere belay
    // writes: not spec.json, run.sh or the job's output, not the store or
    // the daemon's log, not a command line.
    let dir = host.remote_view(&b.job_dir(&job));
    let token_file = dir.join("app/token");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let leaks: Vec<String> = files_containing(&dir, &token)
        .into_iter()
        .filter(|p| !p.ends_with("app/token") && !p.contains("/app/runtime/"))
        .collect();
    assert!(leaks.is_empty(), "token in {leaks:?}");
    assert!(
        files_containing(b.home.path(), &token).is_empty(),
        "the token is in BELAY_HOME: {:?}",
        files_containing(b.home.path(), &token)
    );
    assert!(command_lines_with(&token).is_empty());
    // The socket is private too.
    let sock = dir.join("app/http.sock");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "socket mode {mode:o}");

    // One app of a name per host: the second run says where the first is.
    let again = b
        .cmd(["app", "run", "target", "jupyter", "--json"])
        .deadline(Duration::from_secs(60))
        .output();
    assert_eq!(again.status.code(), Some(0), "{}", stderr_of(&again));
    assert!(
        stderr_of(&again).contains("already runs"),
        "{}",
        stderr_of(&again)
    );
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["job"], job.as_str());
    assert_eq!(again["local"], local.as_str(), "the same forward");
    let listed = b.cmd(["app", "list", "--json"]).json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed:#}");
    assert_eq!(listed[0]["app"], "jupyter");
    assert_eq!(listed[0]["local"], local.as_str());

    // Stopped: no process, no forward, no socket.
    let started = kv_file(&dir.join("started"));
    let sid: u32 = started["sid"].parse().unwrap();
    b.ok(&["app", "stop", &job]);
    assert_eq!(b.job(&job)["state"], "cancelled");
    assert!(poll(Duration::from_secs(10), || session_members(sid).is_empty()));
    assert!(!sock.exists(), "the socket is left behind");
    assert!(
        TcpStream::connect(&local).is_err(),
        "the forward still listens"
    );
    assert!(
        b.cmd(["app", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// A jupyter without `--sock` (as before jupyter-server 2) serves on a
/// port of the node's loopback instead; the first port it is given is
/// taken by another process before the server binds it, and the app
/// chooses another and comes up there.
#[test]
fn jupyter_without_sock_serves_on_a_port_and_chooses_again_when_it_is_taken() {
    let jupyter = jupyter_server();
    let host = Loopback::start();
    let b = through_daemon(host.belay());
    let old = b.scratch("old-jupyter");
    let (mark, taken) = (b.scratch("first-try"), b.scratch("port-taken"));
    std::fs::write(
        &old,
        format!(
            r#"#!/bin/sh
# jupyter-server without --sock; on its first launch someone binds its port first.
if [ "$1" = --help-all ]; then {real} --help-all | grep -v -- --sock; exit 0; fi
for a in "$@"; do
  case $a in --sock*) echo "no --sock here" >&2; exit 2 ;; --port=*) port=${{a#--port=}} ;; esac
done
if [ ! -e {mark} ]; then
  : > {mark}
  python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))
open(sys.argv[2], "w").write(sys.argv[1]); time.sleep(300)' "$port" {taken} &
  while [ ! -s {taken} ]; do sleep 0.05; done
fi
exec {real} "$@"
"#,
            real = jupyter.display(),
            mark = mark.display(),
            taken = taken.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        b.home.path().join("config.toml"),
        format!("[hosts.target]\njupyter = \"{}\"\n", old.display()),
    )
    .unwrap();
    let app = b
        .cmd(["app", "run", "target", "jupyter", "--json"])
        .deadline(Duration::from_secs(180))
        .json();
    let job = app["job"].as_str().unwrap().to_string();
    let (url, local) = (app["url"].as_str().unwrap(), app["local"].as_str().unwrap());
    let token = url.split("token=").nth(1).expect("a token in the URL");
    assert_eq!(
        status(local, &format!("/api/status?token={token}")),
        Ok(200)
    );
    assert_eq!(status(local, "/api/status"), Ok(403));
    let first = std::fs::read_to_string(&taken).expect("the first port was taken");
    let dir = host.remote_view(&b.job_dir(&job));
    let listed = b.cmd(["forward", "--list", "--json"]).json();
    let remote = listed
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["job_id"] == job.as_str())
        .and_then(|f| f["remote"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        remote.starts_with("127.0.0.1:") && !remote.ends_with(&format!(":{first}")),
        "a port, not the taken one ({first}): {listed:#}"
    );
    assert!(!dir.join("app/http.sock").exists(), "no socket");
    let stderr = b.ok(&["logs", "--stderr", &job]);
    assert!(stderr.contains("has no --sock"), "{stderr}");
    assert!(
        stderr.contains(&format!("port {first} was taken; trying another")),
        "{stderr}"
    );
    b.ok(&["app", "stop", &job]);
    assert_eq!(b.job(&job)["state"], "cancelled");
}

#[test]
fn an_unknown_app_or_a_missing_jupyter_is_said_plainly() {
    let host = Loopback::start();
    let b = through_daemon(host.belay());
    let err = b
        .cmd(["app", "run", "target", "nosuch"])
        .bad_input("nosuch");
    assert!(err.contains("jupyter"), "{err}");
    assert!(b.jobs().is_empty(), "nothing recorded");
    // No jupyter on the host's PATH: the job ends, and the error says what
    // to do.
    let out = b
        .cmd(["app", "run", "target", "jupyter", "--timeout", "60s"])
        .deadline(Duration::from_secs(90))
        .output();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("ended before it listened"),
        "{}",
        stderr_of(&out)
    );
    let job = &b.jobs()[0];
    let logs = b.ok(&["logs", "--stderr", job["id"].as_str().unwrap()]);
    assert!(
        logs.contains("neither jupyter-lab nor jupyter-server"),
        "{logs}"
    );
}

#[test]
fn jupyter_on_an_isolated_node_is_reached_through_the_jump_host() {
    let jupyter = jupyter_server();
    let lab = crate::support::remote::Lab::start();
    let b = through_daemon(lab.belay());
    std::fs::write(
        b.home.path().join("config.toml"),
        format!("[hosts.node1]\njupyter = \"{}\"\n", jupyter.display()),
    )
    .unwrap();
    let app = b
        .cmd(["app", "run", "node1", "jupyter", "--json"])
        .deadline(Duration::from_secs(180))
        .json();
    let url = app["url"].as_str().unwrap();
    let local = app["local"].as_str().unwrap();
    let token = url.split("token=").nth(1).expect("a token");
    assert_eq!(
        status(local, &format!("/api/status?token={token}")),
        Ok(200)
    );
    assert_eq!(status(local, "/api/status"), Ok(403));
    let job = app["job"].as_str().unwrap();
    b.ok(&["app", "stop", job]);
    assert_eq!(b.job(job)["state"], "cancelled");
    assert!(
        TcpStream::connect(local).is_err(),
        "the forward still listens"
    );
}
