//! TLS on the API's TCP listener (`belay serve --listen ADDR --tls-cert
//! FILE --tls-key FILE`): certificates made by the `openssl` CLI at test
//! time, a real daemon, and real clients — curl (`--cacert`, the token in
//! a header file, never on its command line) and `openssl s_client` for
//! the certificate actually served.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

fn tool(name: &str) -> Command {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).any(|dir| dir.join(name).is_file());
    // Never a skip: scripts/test.sh installs it.
    assert!(found, "`{name}` is needed (apt-get install {name})");
    let mut c = Command::new(name);
    c.stdin(Stdio::null());
    c
}

/// A self-signed certificate for 127.0.0.1 and its key (0600), made in
/// `dir` as `NAME.crt`/`NAME.key`.
fn make_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let out = tool("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args([
            "-subj",
            "/CN=belay-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl req");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    (cert, key)
}

/// The SHA-256 fingerprint `openssl x509` gives a PEM certificate.
fn fingerprint_of_pem(pem: &[u8]) -> String {
    let mut child = tool("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl x509");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), pem).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl x509: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn fingerprint(cert: &Path) -> String {
    fingerprint_of_pem(&std::fs::read(cert).unwrap())
}

/// The fingerprint of the certificate a new connection to `addr` is served.
fn served_fingerprint(addr: &str) -> String {
    let out = tool("openssl")
        .args(["s_client", "-connect", addr])
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate served: {text}"));
    let end = text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    fingerprint_of_pem(text[begin..end].as_bytes())
}

/// curl's answer: its exit status and, when it got one, the HTTP status.
struct Curl {
    exit: i32,
    status: u16,
    body: String,
    stderr: String,
}

/// `curl URL` with `--cacert` (when given) and the token, when given, in
/// a header file (a secret is never on a command line).
fn curl(url: &str, cacert: Option<&Path>, token: Option<&str>, dir: &Path) -> Curl {
    let mut c = tool("curl");
    c.args(["-sS", "--noproxy", "*", "--max-time", "20"])
        .args(["-o", "-", "-w", "\n%{http_code}"]);
    if let Some(ca) = cacert {
        c.arg("--cacert").arg(ca);
    }
    if let Some(t) = token {
        let header = dir.join("auth-header");
        std::fs::write(&header, format!("Authorization: Bearer {t}\n")).unwrap();
        std::fs::set_permissions(&header, std::fs::Permissions::from_mode(0o600)).unwrap();
        c.arg("-H").arg(format!("@{}", header.display()));
    }
    let out = c.arg(url).output().expect("curl");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Curl {
        exit: out.status.code().unwrap_or(-1),
        status: code.trim().parse().unwrap_or(0),
        body: body.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

fn token(b: &Belay, name: &str) -> String {
    let token = b.cmd(["token", "create", name]).ok().trim().to_string();
    assert!(token.starts_with("belay_"), "{token}");
    token
}

/// A daemon serving TLS on `listen`; its first stdout line and the port
/// `serve --status` names, once it answers.
struct Daemon {
    child: Child,
    line: String,
    /// The second line: `dashboard: URL/?token=…`.
    dashboard: String,
    port: u16,
    status: Value,
}

fn serve_tls(b: &Belay, listen: &str, cert: &Path, key: &Path) -> Daemon {
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let mut child = b.spawn(&[
        "serve",
        "--listen",
        listen,
        "--tls-cert",
        cert,
        "--tls-key",
        key,
    ]);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| match child.try_wait() {
            Ok(Some(ended)) => {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                panic!("serve ended ({ended}): {err}")
            }
            _ => panic!("serve said nothing on stdout"),
        });
    let dashboard = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("serve printed no dashboard line");
    let mut status = Value::Null;
    assert!(
        poll(Duration::from_secs(30), || {
            let out = b.run(&["serve", "--status", "--json"]);
            status = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            status["listen"].is_string()
        }),
        "the daemon never said where it listens"
    );
    let port = status["listen"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    Daemon {
        child,
        line,
        dashboard,
        port,
        status,
    }
}

impl Daemon {
    fn stop(mut self, b: &Belay) {
        b.ok(&["serve", "--stop"]);
        let ended = poll(Duration::from_secs(30), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        assert!(ended, "the daemon did not stop");
    }
}

#[test]
fn the_api_is_served_over_tls_with_tokens_and_a_renewed_certificate_needs_no_restart() {
    let b = Belay::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_pair(dir.path(), "first");
    let alice = token(&b, "alice");
    let daemon = serve_tls(&b, "127.0.0.1:0", &cert, &key);
    let addr = format!("127.0.0.1:{}", daemon.port);
    let url = format!("https://{addr}/v1/jobs");
    assert_eq!(daemon.line, format!("serving the API on https://{addr}"));
    assert_eq!(daemon.status["tls"], true, "{:#}", daemon.status);

    // A client that connects and never says a word holds up no one.
    let _silent = TcpStream::connect(&addr).unwrap();

    let ok = curl(&url, Some(&cert), Some(&alice), dir.path());
    assert_eq!((ok.exit, ok.status), (0, 200), "{}", ok.stderr);
    let jobs: Value = serde_json::from_str(&ok.body).unwrap();
    assert!(jobs["jobs"].is_array(), "{jobs:#}");
    let none = curl(&url, Some(&cert), None, dir.path());
    assert_eq!(none.status, 401, "{}", none.stderr);
    assert!(none.body.contains("unauthorized"), "{}", none.body);
    let wrong = curl(&url, Some(&cert), Some("belay_0000"), dir.path());
    assert_eq!(wrong.status, 401);
    // The certificate is checked by the client: without the CA, refused.
    let untrusted = curl(&url, None, Some(&alice), dir.path());
    assert_eq!(
        untrusted.exit, 60,
        "curl's 'peer certificate': {}",
        untrusted.stderr
    );
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = curl(
        &format!("http://{addr}/v1/jobs"),
        None,
        Some(&alice),
        dir.path(),
    );
    assert_ne!(plain.exit, 0, "plain HTTP answered: {}", plain.body);
    assert_eq!(plain.status, 0, "plain HTTP answered: {}", plain.body);

    // The pair renewed on disk (a new key too), as certbot does: new
    // files renamed over the old. The next connection gets it.
    let first = fingerprint(&cert);
    assert_eq!(served_fingerprint(&addr), first);
    let (new_cert, new_key) = make_pair(dir.path(), "second");
    let second = fingerprint(&new_cert);
    assert_ne!(first, second);
    std::fs::rename(&new_key, &key).unwrap();
    std::fs::rename(&new_cert, &cert).unwrap();
    assert_eq!(served_fingerprint(&addr), second, "the renewed certificate");
    let renewed = curl(&url, Some(&cert), Some(&alice), dir.path());
    assert_eq!(
        (renewed.exit, renewed.status),
        (0, 200),
        "{}",
        renewed.stderr
    );

    // A broken file (half written): the last good pair is kept.
    let good = std::fs::read(&cert).unwrap();
    std::fs::write(&cert, b"-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    assert_eq!(served_fingerprint(&addr), second, "the last good pair");
    std::fs::write(dir.path().join("good.crt"), &good).unwrap();
    let kept = curl(
        &url,
        Some(&dir.path().join("good.crt")),
        Some(&alice),
        dir.path(),
    );
    assert_eq!((kept.exit, kept.status), (0, 200), "{}", kept.stderr);
    daemon.stop(&b);
}

#[test]
fn bad_certificate_files_and_flags_exit_2_naming_what_is_wrong() {
    let b = Belay::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_pair(dir.path(), "pair");
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let missing = dir.path().join("missing.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (missing_s, garbage_s) = (missing.to_str().unwrap(), garbage.to_str().unwrap());
    let serve = |c: &str, k: &str| {
        b.cmd([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            c,
            "--tls-key",
            k,
        ])
    };
    serve(missing_s, key_s).bad_input(missing_s);
    serve(cert_s, missing_s).bad_input(missing_s);
    serve(garbage_s, key_s).bad_input(garbage_s);
    serve(cert_s, garbage_s).bad_input(garbage_s);
    // A private key others may read is refused, mode named.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let line = serve(cert_s, key_s).bad_input(key_s);
    assert!(line.contains("0644"), "{line}");
    // Group-writable too (group-readable is allowed: an ssl-cert group).
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o660)).unwrap();
    serve(cert_s, key_s).bad_input("0660");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // The flags: each needs the other; TLS and --insecure exclude each other.
    b.cmd(["serve", "--listen", "127.0.0.1:0", "--tls-cert", cert_s])
        .bad_input("--tls-key");
    b.cmd(["serve", "--listen", "127.0.0.1:0", "--tls-key", key_s])
        .bad_input("--tls-cert");
    b.cmd([
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--tls-cert",
        cert_s,
        "--tls-key",
        key_s,
        "--insecure",
    ])
    .bad_input("--insecure");
    // Off loopback without TLS nor --insecure: refused.
    b.cmd(["serve", "--listen", "0.0.0.0:0"])
        .bad_input("0.0.0.0:0");
    // No daemon was left running by any of these.
    let out = b.run(&["serve", "--status"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn a_non_loopback_address_is_served_with_tls() {
    let b = Belay::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_pair(dir.path(), "pair");
    let alice = token(&b, "alice");
    let daemon = serve_tls(&b, "0.0.0.0:0", &cert, &key);
    assert_eq!(
        daemon.line,
        format!("serving the API on https://0.0.0.0:{}", daemon.port)
    );
    assert_eq!(daemon.status["tls"], true);
    let human = b.ok(&["serve", "--status"]);
    assert!(
        human.contains(&format!("TCP https://0.0.0.0:{}", daemon.port)),
        "{human}"
    );
    let url = format!("https://127.0.0.1:{}/v1/daemon", daemon.port);
    let ok = curl(&url, Some(&cert), Some(&alice), dir.path());
    assert_eq!((ok.exit, ok.status), (0, 200), "{}", ok.stderr);
    let info: Value = serde_json::from_str(&ok.body).unwrap();
    assert_eq!(info["tls"], true, "{info:#}");
    daemon.stop(&b);
}

#[test]
fn the_dashboard_over_tls_has_an_https_url_and_a_secure_cookie() {
    let b = Belay::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_pair(dir.path(), "pair");
    let daemon = serve_tls(&b, "127.0.0.1:0", &cert, &key);
    let url = daemon
        .dashboard
        .strip_prefix("dashboard: ")
        .unwrap_or_else(|| panic!("not a dashboard line: {}", daemon.dashboard));
    assert!(
        url.starts_with(&format!("https://127.0.0.1:{}/?token=belay_", daemon.port)),
        "{url}"
    );
    // The URL holds a token: curl reads it from a 0600 config file.
    let config = dir.path().join("login-url");
    std::fs::write(&config, format!("url = \"{url}\"\n")).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = tool("curl")
        .args([
            "-sS",
            "--noproxy",
            "*",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            "-D",
            "-",
        ])
        .arg("--cacert")
        .arg(&cert)
        .arg("-K")
        .arg(&config)
        .output()
        .expect("curl");
    let headers = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(headers.starts_with("http/1.1 303"), "{headers}");
    assert!(headers.contains("\r\nlocation: /\r\n"), "{headers}");
    let cookie = headers
        .lines()
        .find(|l| l.starts_with("set-cookie: belay_token=belay_"))
        .unwrap_or_else(|| panic!("no login cookie: {headers}"));
    for attribute in ["httponly", "samesite=strict", "secure", "path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    // A user's URL from `token create` names the same https listener.
    let created = b.run(&["token", "create", "bob"]);
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(
        stderr.contains(&format!(
            "dashboard: https://127.0.0.1:{}/?token=belay_",
            daemon.port
        )),
        "{stderr}"
    );
    daemon.stop(&b);
}
