//! The API on TCP (`belay serve --listen`) with per-user tokens (`belay
//! token`): a real daemon on a real TCP port, spoken to with plain
//! HTTP/1.1 over a `TcpStream`, and the same requests on its Unix socket
//! for comparison. Every route of `openapi.json` is tried without a token
//! (401), with another user's token on a job (403), and with the owner's
//! and an admin token (the route's own answer, as on the socket).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::remote::Loopback;
use crate::support::*;

/// One HTTP answer: status, headers (lower-case names) and body bytes.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The JSON lines of a streamed (chunked) body.
    fn lines(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.body)
            .lines()
            .filter_map(|l| serde_json::from_str(l.trim()).ok())
            .filter(Value::is_object)
            .collect()
    }
}

/// Where a request goes.
#[derive(Clone, Copy)]
enum To<'a> {
    Tcp(&'a str),
    Unix(&'a std::path::Path),
}

fn request(to: To, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Answer {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: belay\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    if method == "POST" && path == "/v1/shells" {
        head.push_str("Connection: upgrade\r\nUpgrade: belay-shell\r\n");
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT") {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(&body);
    match to {
        To::Tcp(addr) => exchange(TcpStream::connect(addr).expect("connect tcp"), &head),
        To::Unix(path) => exchange(UnixStream::connect(path).expect("connect socket"), &head),
    }
}

fn exchange<S: Read + Write>(mut stream: S, head: &str) -> Answer {
    stream.write_all(head.as_bytes()).expect("send");
    // The head first: a 101 (a shell) is not read further.
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).expect("read head") {
            0 => panic!("closed before a head: {}", String::from_utf8_lossy(&raw)),
            _ => raw.push(byte[0]),
        }
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text}"));
    let mut body = Vec::new();
    if status != 101 {
        stream.read_to_end(&mut body).expect("read body");
    }
    Answer { status, body }
}

struct Api {
    b: Belay,
    host: Loopback,
    tcp: String,
    socket: std::path::PathBuf,
    _daemon: std::process::Child,
}

impl Api {
    fn tcp(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        request(To::Tcp(&self.tcp), method, path, token, body.as_ref())
    }

    fn unix(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        request(To::Unix(&self.socket), method, path, None, body.as_ref())
    }

    /// Submit over TCP as `token`; the job's id (the answer is 202).
    fn submit(&self, token: &str, host: &str, command: &[&str], outputs: &[&str]) -> String {
        self.submit_named(token, None, host, command, outputs)
    }

    fn submit_named(
        &self,
        token: &str,
        name: Option<&str>,
        host: &str,
        command: &[&str],
        outputs: &[&str],
    ) -> String {
        let spec = json!({"spec": {
            "host": host, "name": name, "command": command, "workdir": null, "env": [],
            "login_shell": false, "inputs": [], "outputs": outputs,
        }});
        let a = self.tcp("POST", "/v1/jobs", Some(token), Some(spec));
        assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.body));
        let lines = a.lines();
        let done = lines
            .iter()
            .find(|l| l["event"] == "submitted")
            .unwrap_or_else(|| panic!("not submitted: {lines:?}"));
        done["job"]["id"].as_str().unwrap().to_string()
    }
}

fn token(b: &Belay, name: &str, admin: bool) -> String {
    let mut args = vec!["token", "create", name];
    if admin {
        args.push("--admin");
    }
    let out = b.cmd(args).ok();
    let token = out.trim().to_string();
    assert!(
        token.starts_with("belay_") && !token.contains('\n'),
        "{out}"
    );
    token
}

/// A daemon with `--listen 127.0.0.1:0`, once it answers on TCP.
fn start(b: Belay, host: Loopback) -> Api {
    let daemon = b.spawn(&["serve", "--listen", "127.0.0.1:0"]);
    let mut tcp = None;
    let up = poll(Duration::from_secs(30), || {
        let out = b.run(&["serve", "--status", "--json"]);
        tcp = serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v["listen"].as_str().map(str::to_string));
        tcp.is_some()
    });
    assert!(up, "the daemon never said where it listens");
    let socket = b.home.path().join("belay.sock");
    Api {
        b,
        host,
        tcp: tcp.unwrap(),
        socket,
        _daemon: daemon,
    }
}

/// `/v1/jobs/{job}` matches `/v1/jobs/1a2b3c4d`.
fn matches_template(template: &str, path: &str) -> bool {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t.starts_with('{') || t == p)
}

fn ids(list: &Value) -> Vec<String> {
    list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_route_wants_a_token_and_a_user_token_reaches_only_its_own_jobs() {
    let host = Loopback::start();
    let b = host.belay();
    let alice = token(&b, "alice", false);
    let bob = token(&b, "bob", false);
    let ops = token(&b, "ops", true);
    let api = start(b, host);
    let b = &api.b;

    // Jobs: alice's on the sshd (live, for shells and forwards) and one
    // that ended with an output (for fetches); bob's; the local user's.
    let remote = api.submit(&alice, "target", &["sleep", "300"], &[]);
    let ended = api.submit(
        &alice,
        "local",
        &["sh", "-c", "echo hi > out.txt"],
        &["out.txt"],
    );
    let bobs = api.submit(&bob, "local", &["sleep", "300"], &[]);
    let locals = b.submit(&["local", "--", "sleep", "300"]);
    b.wait_state(&remote, "running", Duration::from_secs(30));
    b.wait_state(&ended, "succeeded", Duration::from_secs(30));
    assert_eq!(b.job(&remote)["owner"], "alice", "the token's name owns it");
    assert_eq!(b.job(&locals)["owner"], Value::Null, "the local user's");

    // Lists: a user sees its own; admin and the socket see every job.
    let listed = |t: &str| ids(&api.tcp("GET", "/v1/jobs?all=true", Some(t), None).json());
    let mut mine = listed(&alice);
    mine.sort();
    let mut want = vec![remote.clone(), ended.clone()];
    want.sort();
    assert_eq!(mine, want);
    assert_eq!(listed(&bob), vec![bobs.clone()]);
    for every in [
        listed(&ops),
        ids(&api.unix("GET", "/v1/jobs?all=true", None).json()),
    ] {
        for id in [&remote, &ended, &bobs, &locals] {
            assert!(every.contains(id), "{id} missing from {every:?}");
        }
    }

    // Pages of the newest-first list.
    let page = |q: &str| {
        ids(&api
            .tcp("GET", &format!("/v1/jobs?all=true&{q}"), Some(&ops), None)
            .json())
    };
    let first = page("limit=2");
    assert_eq!(first.len(), 2);
    assert_eq!(page("limit=2&offset=1")[0], first[1]);
    assert_eq!(page("limit=10").len(), 4, "every job, fewer than the limit");

    // Every route: (method, path, body, bob's answer on alice's job).
    let job = &remote;
    // Where forwards go: the sshd's own port, which answers on the host.
    let port = api.host.sshd.port().to_string();
    let routes: Vec<(&str, String, Option<Value>, u16)> = vec![
        ("GET", "/v1/openapi.json".into(), None, 200),
        ("GET", "/v1/daemon".into(), None, 200),
        ("GET", "/v1/jobs".into(), None, 200),
        ("GET", format!("/v1/jobs/{job}"), None, 403),
        ("GET", format!("/v1/jobs/{job}/events"), None, 403),
        ("GET", format!("/v1/jobs/{job}/logs/stdout"), None, 403),
        ("GET", format!("/v1/jobs/{job}/output"), None, 403),
        (
            "POST",
            format!("/v1/jobs/{ended}/fetches"),
            Some(json!({})),
            403,
        ),
        ("GET", format!("/v1/jobs/{job}/app"), None, 403),
        ("DELETE", format!("/v1/jobs/{job}/app"), None, 403),
        (
            "POST",
            "/v1/releases".into(),
            Some(json!({"job": job})),
            403,
        ),
        ("GET", "/v1/hosts".into(), None, 200),
        ("GET", "/v1/hosts/target".into(), None, 200),
        ("POST", "/v1/hosts/target/checks".into(), None, 200),
        ("GET", "/v1/hosts/local/key".into(), None, 403),
        ("PUT", "/v1/hosts/local/key".into(), Some(json!({})), 403),
        ("DELETE", "/v1/hosts/local/key".into(), None, 403),
        (
            "POST",
            "/v1/prompts/1".into(),
            Some(json!({"answers": []})),
            403,
        ),
        ("GET", "/v1/forwards".into(), None, 200),
        (
            "POST",
            "/v1/forwards".into(),
            Some(json!({"to": job, "spec": port})),
            403,
        ),
        ("DELETE", format!("/v1/forwards?job={job}"), None, 403),
        ("DELETE", "/v1/forwards?all=true".into(), None, 403),
        (
            "POST",
            "/v1/shells".into(),
            Some(json!({"target": job, "command": "true"})),
            403,
        ),
        ("DELETE", format!("/v1/shells/{job}"), None, 403),
        (
            "POST",
            "/v1/cancellations".into(),
            Some(json!({"jobs": [bobs], "grace": 1})),
            403,
        ),
    ];
    // Tried on their own below (a submit; stopping the daemon, last) or
    // elsewhere (the event stream), and without a token here.
    let elsewhere = [
        ("POST", "/v1/jobs", "/v1/jobs"),
        ("DELETE", "/v1/daemon", "/v1/daemon"),
        ("DELETE", "/v1/forwards/{id}", "/v1/forwards/1"),
        // A stream that never ends: tests/dashboard.rs reads it.
        ("GET", "/v1/events", "/v1/events"),
    ];
    for (method, _, path) in elsewhere {
        let a = api.tcp(method, path, None, Some(json!({})));
        assert_eq!(a.status, 401, "{method} {path} without a token");
    }
    // Every operation the OpenAPI document names is tried.
    let document = api.unix("GET", "/v1/openapi.json", None).json();
    for (template, operations) in document["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            let tried = routes.iter().any(|(m, path, _, _)| {
                *m == method && matches_template(template, path.split('?').next().unwrap())
            }) || elsewhere
                .iter()
                .any(|(m, t, _)| *m == method && t == template);
            assert!(tried, "{method} {template} is not tried");
        }
    }
    for (method, path, body, for_bob) in &routes {
        let what = format!("{method} {path}");
        let none = api.tcp(method, path, None, body.clone());
        assert_eq!(none.status, 401, "{what} without a token");
        assert_eq!(none.json()["error"]["kind"], "unauthorized", "{what}");
        let wrong = api.tcp(method, path, Some("belay_0000"), body.clone());
        assert_eq!(wrong.status, 401, "{what} with a wrong token");
        // bob on alice's job (alice on bob's, for the cancel).
        let (other, owner) = if path == "/v1/cancellations" {
            (&alice, &bob)
        } else {
            (&bob, &alice)
        };
        let answer = api.tcp(method, path, Some(other), body.clone());
        assert_eq!(
            answer.status,
            *for_bob,
            "{what}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        if answer.status == 403 {
            assert_eq!(answer.json()["error"]["kind"], "forbidden", "{what}");
            // The owner (where a job is addressed), an admin and the
            // socket get past the check to the route's own answer (which
            // may differ: some of these change what the next one finds).
            let mut allowed = vec![("socket", api.unix(method, path, body.clone()))];
            if path.contains(job.as_str()) || path.contains(ended.as_str()) {
                allowed.push(("owner", api.tcp(method, path, Some(owner), body.clone())));
            }
            allowed.push(("admin", api.tcp(method, path, Some(&ops), body.clone())));
            for (who, a) in allowed {
                assert!(
                    ![401, 403].contains(&a.status),
                    "{what} as {who}: {} {}",
                    a.status,
                    String::from_utf8_lossy(&a.body)
                );
            }
        }
    }

    // The owner's answers that say the work was done.
    let show = api.tcp("GET", &format!("/v1/jobs/{job}"), Some(&alice), None);
    assert_eq!(show.status, 200);
    assert_eq!(show.json()["job"]["id"], job.as_str());
    let fetched = api.tcp(
        "POST",
        &format!("/v1/jobs/{ended}/fetches"),
        Some(&alice),
        Some(json!({"again": true})),
    );
    assert_eq!(fetched.status, 200);
    assert!(
        fetched
            .lines()
            .iter()
            .any(|l| l["result"]["copied"] == true),
        "{:?}",
        fetched.lines()
    );
    let opened = api.tcp(
        "POST",
        "/v1/forwards",
        Some(&alice),
        Some(json!({"to": job, "spec": port})),
    );
    assert_eq!(
        opened.status,
        201,
        "{}",
        String::from_utf8_lossy(&opened.body)
    );
    let forward = opened.json()["id"].as_str().unwrap().to_string();
    let admins = api.tcp(
        "POST",
        "/v1/forwards",
        Some(&ops),
        Some(json!({"to": "target", "spec": port})),
    );
    assert_eq!(admins.status, 201, "admin forwards to a host");
    let host_forward = admins.json()["id"].as_str().unwrap().to_string();
    // Forwards: each user sees its own; only admin one to a host.
    let forwards = |t: &str| -> Vec<String> {
        api.tcp("GET", "/v1/forwards", Some(t), None).json()["forwards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(forwards(&alice), vec![forward.clone()]);
    assert!(forwards(&bob).is_empty());
    assert_eq!(forwards(&ops).len(), 2);
    for (t, id, want) in [
        (&bob, &forward, 403),
        (&alice, &host_forward, 403),
        (&alice, &forward, 200),
    ] {
        let a = api.tcp("DELETE", &format!("/v1/forwards/{id}"), Some(t), None);
        assert_eq!(a.status, want, "DELETE /v1/forwards/{id}");
    }
    // A user's token reaches jobs, never a host's account.
    for (method, path, body) in [
        (
            "POST",
            "/v1/forwards",
            json!({"to": "target", "spec": port}),
        ),
        (
            "POST",
            "/v1/shells",
            json!({"target": "target", "command": "true"}),
        ),
    ] {
        let a = api.tcp(method, path, Some(&alice), Some(body));
        assert_eq!(a.status, 403, "{method} {path} to a host");
    }
    assert_eq!(
        api.tcp("DELETE", "/v1/shells/target", Some(&alice), None)
            .status,
        403
    );
    let shell = api.tcp(
        "POST",
        "/v1/shells",
        Some(&alice),
        Some(json!({"target": job, "command": "true"})),
    );
    assert_eq!(shell.status, 101, "alice's shell into her job is upgraded");
    // Another user's job, even a local user's, is not bob's to cancel.
    let cancel = |t: &str, id: &str| {
        api.tcp(
            "POST",
            "/v1/cancellations",
            Some(t),
            Some(json!({"jobs": [id], "grace": 1})),
        )
    };
    assert_eq!(cancel(&bob, &locals).status, 403);
    assert_eq!(cancel(&bob, &remote).status, 403);
    assert_eq!(
        b.job(&remote)["state"],
        "running",
        "refused means untouched"
    );
    assert_eq!(cancel(&alice, &remote).status, 200);
    b.wait_state(&remote, "cancelled", Duration::from_secs(30));
    assert_eq!(cancel(&ops, &bobs).status, 200);
    b.wait_state(&bobs, "cancelled", Duration::from_secs(30));
    // The local user's, by admin: no job of this test outlives it.
    assert_eq!(cancel(&ops, &locals).status, 200);
    b.wait_state(&locals, "cancelled", Duration::from_secs(30));

    // A submission for a known host that does not answer: accepted, queued.
    let queued = api.submit(&alice, "closed", &["true"], &[]);
    let seen = api
        .tcp("GET", &format!("/v1/jobs/{queued}"), Some(&alice), None)
        .json();
    assert_eq!(seen["job"]["state"], "queued", "{seen:#}");
    assert_eq!(seen["job"]["owner"], "alice");

    // Stopping the daemon is admin's.
    assert_eq!(
        api.tcp("DELETE", "/v1/daemon", Some(&alice), None).status,
        403
    );
    assert_eq!(
        api.tcp("DELETE", "/v1/daemon", Some(&ops), None).status,
        202
    );
}

#[test]
fn a_job_name_resolves_among_the_callers_own_jobs_only() {
    let host = Loopback::start();
    let b = host.belay();
    let alice = token(&b, "alice", false);
    let bob = token(&b, "bob", false);
    let ops = token(&b, "ops", true);
    let api = start(b, host);
    let b = &api.b;
    let sleep = ["sleep", "300"];
    // Both have a `train`; bob's is the newer (what a bare name meant).
    let alices = api.submit_named(&alice, Some("train"), "local", &sleep, &[]);
    let bobs = api.submit_named(&bob, Some("train"), "local", &sleep, &[]);
    let solo = api.submit_named(&bob, Some("solo"), "local", &sleep, &[]);
    b.wait_state(&bobs, "running", Duration::from_secs(30));

    let show = |t: &str, reference: &str| {
        let a = api.tcp("GET", &format!("/v1/jobs/{reference}"), Some(t), None);
        let id = match a.status {
            200 => a.json()["job"]["id"].as_str().unwrap().to_string(),
            _ => String::new(),
        };
        (a.status, id)
    };
    assert_eq!(show(&alice, "train"), (200, alices.clone()), "alice's own");
    assert_eq!(show(&bob, "train"), (200, bobs.clone()), "bob's own");
    assert_eq!(
        show(&ops, "train"),
        (200, bobs.clone()),
        "admin: the newest"
    );
    // A path segment is percent-decoded (%74 is `t`).
    assert_eq!(show(&alice, "%74rain"), (200, alices.clone()));
    // Another user's name is not found among hers (not "forbidden": it
    // says nothing of bob's jobs); his job by id is forbidden.
    assert_eq!(show(&alice, "solo").0, 404);
    assert_eq!(show(&alice, &solo).0, 403);
    let logs = api.tcp("GET", "/v1/jobs/train/logs/stdout", Some(&alice), None);
    assert_eq!(logs.status, 200, "{}", String::from_utf8_lossy(&logs.body));

    // Cancelling `train` as alice cancels hers, not bob's newer one.
    let cancel = api.tcp(
        "POST",
        "/v1/cancellations",
        Some(&alice),
        Some(json!({"jobs": ["train"], "grace": 1})),
    );
    assert_eq!(
        cancel.status,
        200,
        "{}",
        String::from_utf8_lossy(&cancel.body)
    );
    b.wait_state(&alices, "cancelled", Duration::from_secs(30));
    assert_eq!(b.job(&bobs)["state"], "running", "bob's is untouched");
    let cancel = api.tcp(
        "POST",
        "/v1/cancellations",
        Some(&ops),
        Some(json!({"jobs": [bobs, solo], "grace": 1})),
    );
    assert_eq!(cancel.status, 200);
    assert_eq!(
        api.tcp("DELETE", "/v1/daemon", Some(&ops), None).status,
        202
    );
}

#[test]
fn tokens_are_shown_once_kept_as_hashes_listed_without_them_and_revocable() {
    let host = Loopback::start();
    let b = host.belay();
    let alice = token(&b, "alice", false);
    token(&b, "ops", true);
    b.cmd(["token", "create", "alice"]).bad_input("alice");
    b.cmd(["token", "create", "a b"]).bad_input("a b");
    b.cmd(["token", "revoke", "nobody"]).bad_input("nobody");
    let api = start(b, host);
    let b = &api.b;
    assert_eq!(api.tcp("GET", "/v1/jobs", Some(&alice), None).status, 200);

    let list = b.cmd(["token", "list", "--json"]).json();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let row = |n: &str| rows.iter().find(|r| r["name"] == n).unwrap().clone();
    assert_eq!(row("alice")["admin"], false);
    assert_eq!(row("ops")["admin"], true);
    assert!(row("alice")["last_used"].is_string(), "used: {list:#}");
    assert!(row("ops")["last_used"].is_null(), "never used: {list:#}");
    let human = b.cmd(["token", "list"]).ok();
    assert!(
        human.contains("alice") && human.contains("never"),
        "{human}"
    );
    // Nowhere on disk nor in a listing: only its hash is kept.
    for text in [list.to_string(), human] {
        assert!(!text.contains(&alice), "{text}");
    }
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(b.home.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && path.extension().is_none_or(|e| e != "sock") {
            stored.extend(std::fs::read(&path).unwrap_or_default());
        }
    }
    let secret = &alice.as_bytes()["belay_".len()..];
    assert!(!stored.is_empty());
    assert!(
        !stored.windows(secret.len()).any(|w| w == secret),
        "the token is on disk"
    );

    b.cmd(["token", "revoke", "alice"]).ok();
    let after = api.tcp("GET", "/v1/jobs", Some(&alice), None);
    assert_eq!(
        after.status, 401,
        "a revoked token is refused from the next request"
    );
    assert_eq!(after.json()["error"]["kind"], "unauthorized");
}

#[test]
fn listen_refuses_bad_addresses_and_plain_http_off_loopback_unless_insecure() {
    let b = Belay::new();
    b.cmd(["serve", "--listen", "localhost"])
        .bad_input("localhost");
    b.cmd(["serve", "--listen", "0.0.0.0:0"])
        .bad_input("0.0.0.0:0");
    b.cmd([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        "c.pem",
        "--tls-key",
        "k.pem",
    ])
    .bad_input("c.pem");
    // --insecure says so explicitly: it serves, tokens still required.
    let daemon = b.spawn(&["serve", "--listen", "0.0.0.0:0", "--insecure"]);
    let mut listen = None;
    assert!(poll(Duration::from_secs(30), || {
        let out = b.run(&["serve", "--status", "--json"]);
        listen = serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v["listen"].as_str().map(str::to_string));
        listen.is_some()
    }));
    let port = listen.unwrap().rsplit(':').next().unwrap().to_string();
    let a = request(
        To::Tcp(&format!("127.0.0.1:{port}")),
        "GET",
        "/v1/jobs",
        None,
        None,
    );
    assert_eq!(a.status, 401);
    b.ok(&["serve", "--stop"]);
    drop(daemon);
}
