//! The web dashboard (`belay serve --listen`, served at `/`), end to end
//! in a real headless Chromium driven through WebDriver
//! ([`crate::support::webdriver`]): logging in by the printed URL (an
//! HttpOnly cookie, the token gone from the address bar), jobs submitted
//! through the API appearing and changing state live, a job's log tail,
//! cancelling and releasing from the keyboard, a user's page holding only
//! its own jobs; and, over plain HTTP, the login, the cross-site request header rule,
//! the page's headers, and one store watcher serving every live stream.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::remote::Loopback;
use crate::support::webdriver::{Browser, ENTER, http};
use crate::support::*;

const WAIT: Duration = Duration::from_secs(30);

struct Served {
    b: Belay,
    _host: Loopback,
    /// `127.0.0.1:PORT`.
    addr: String,
    /// The admin URL `serve --listen` printed.
    url: String,
    daemon: Child,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// `serve --listen 127.0.0.1:0`, and the dashboard URL it prints.
fn serve() -> Served {
    let host = Loopback::start();
    let b = host.belay();
    let mut daemon = b.spawn(&["serve", "--listen", "127.0.0.1:0"]);
    let stdout = daemon.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // "serving the API on URL" comes first, then the dashboard's line.
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            if line.starts_with("dashboard: ") {
                break;
            }
            line.clear();
        }
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(WAIT)
        .expect("serve --listen printed nothing");
    let url = line
        .trim()
        .strip_prefix("dashboard: ")
        .unwrap_or_else(|| panic!("not a dashboard line: {line:?}"))
        .to_string();
    let addr = url
        .strip_prefix("http://")
        .and_then(|r| r.split_once("/?token=belay_"))
        .map(|(a, _)| a.to_string())
        .unwrap_or_else(|| panic!("not a login URL: {url}"));
    Served {
        b,
        _host: host,
        addr,
        url,
        daemon,
    }
}

impl Served {
    fn token(&self) -> String {
        self.url.split_once("?token=").unwrap().1.to_string()
    }

    /// Submit through the API as `token`; the job's id.
    fn submit(&self, token: &str, host: &str, command: &[&str]) -> String {
        self.submit_held(token, host, command, None)
    }

    /// [`Served::submit`], held on failure for `hold` seconds.
    fn submit_held(&self, token: &str, host: &str, command: &[&str], hold: Option<u32>) -> String {
        let spec = json!({"spec": {
            "host": host, "name": "dash", "command": command, "workdir": null, "env": [],
            "login_shell": false, "inputs": [], "outputs": [], "hold_on_failure": hold,
        }});
        let auth = format!("Bearer {token}");
        let a = http(
            &self.addr,
            "POST",
            "/v1/jobs",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            &spec.to_string(),
        );
        assert_eq!(a.status, 202, "{}", a.text());
        let text = a.text();
        let done: Value = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["event"] == "submitted")
            .unwrap_or_else(|| panic!("not submitted: {text}"));
        done["job"]["id"].as_str().unwrap().to_string()
    }

    fn daemon_info(&self) -> Value {
        let auth = format!("Bearer {}", self.token());
        http(
            &self.addr,
            "GET",
            "/v1/daemon",
            &[("Authorization", &auth)],
            "",
        )
        .json()
    }
}

fn target_dir() -> PathBuf {
    // tests run in crates/belay-cli; target/ is the workspace's.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target");
    std::fs::create_dir_all(&dir).expect("target dir");
    dir
}

fn state_in_row(id: &str) -> String {
    format!(
        "(function () {{ var s = document.querySelector('tr[data-job=\"{id}\"] [data-state]'); return s ? s.dataset.state : null; }})()"
    )
}

#[test]
fn the_dashboard_logs_in_shows_jobs_live_and_cancels_and_releases_from_the_keyboard() {
    let s = serve();
    let browser = Browser::start();

    // Logging in: the cookie is HttpOnly, the token leaves the address.
    browser.goto(&s.url);
    let landed = browser.url();
    assert_eq!(
        landed,
        format!("http://{}/", s.addr),
        "the token stays out of the address bar"
    );
    let cookies = browser.cookies();
    let cookie = cookies
        .iter()
        .find(|c| c["name"] == "belay_token")
        .unwrap_or_else(|| panic!("no login cookie: {cookies:?}"));
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["sameSite"], "Strict");
    assert_eq!(
        browser.eval("return document.cookie"),
        json!(""),
        "not readable by scripts"
    );
    browser.wait_for(
        "the live stream",
        WAIT,
        "return document.getElementById('conn').dataset.live === 'yes'",
    );
    assert!(
        s.daemon_info()["event_streams"].as_u64().unwrap() >= 1,
        "the page listens on /v1/events"
    );
    // Marks this page load: still there at the end means no reload.
    browser.eval("window.loadedOnce = 'yes'; return true");

    // A job submitted through the API appears, runs, succeeds.
    let token = s.token();
    let job = s.submit(
        &token,
        "target",
        &["sh", "-c", "sleep 2; echo hello-from-the-dashboard"],
    );
    let row = state_in_row(&job);
    browser.wait_for(
        &format!("job {job} in the list"),
        WAIT,
        &format!("return ({row}) !== null"),
    );
    // Its page, reached with the keyboard: focus the link, press Enter.
    let link = browser.find(&format!("a[href=\"#/jobs/{job}\"]"));
    browser.keys(&link, ENTER);
    browser.wait_for(
        "the job page",
        WAIT,
        "return location.hash.startsWith('#/jobs/') && !!document.getElementById('log-stdout')",
    );
    browser.wait_for(
        "the job succeeded",
        WAIT,
        "var s = document.querySelector('#job-state [data-state]'); return !!s && s.dataset.state === 'succeeded' && s.textContent.includes('succeeded');",
    );
    browser.wait_for(
        "its output in the log tail",
        WAIT,
        "return document.getElementById('log-stdout').textContent.includes('hello-from-the-dashboard')",
    );
    browser.wait_for(
        "its events",
        WAIT,
        "return document.getElementById('job-events').textContent.includes('succeeded')",
    );
    browser.screenshot(&target_dir().join("dashboard-job.png"));

    // Back on the list, it reads succeeded there too.
    browser.eval("location.hash = '#/'; return true");
    browser.wait_for(
        "the job succeeded in the list",
        WAIT,
        &format!("return ({row}) === 'succeeded'"),
    );
    // With its bar on its host's row of the timeline.
    let bar = browser.eval(&format!(
        "var b = document.querySelector('#timeline [data-host=\"target\"] a[href=\"#/jobs/{job}\"]'); return b ? b.getAttribute('aria-label') : null"
    ));
    assert!(
        bar.as_str().is_some_and(|l| l.contains("succeeded")),
        "a labelled timeline bar: {bar}"
    );

    // A running job, cancelled with the page's button by keyboard.
    let long = s.submit(&token, "target", &["sleep", "300"]);
    let long_row = state_in_row(&long);
    browser.wait_for(
        "the long job running",
        WAIT,
        &format!("return ({long_row}) === 'running'"),
    );
    browser.screenshot(&target_dir().join("dashboard-jobs.png"));
    // At 200 % zoom the page still fits the window's width (wide tables
    // scroll inside their own box) and the jobs still read as text.
    let zoomed = browser.eval(
        "document.documentElement.style.zoom = '2'; \
         var fits = document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1; \
         var text = document.getElementById('jobs').innerText; \
         document.documentElement.style.zoom = ''; \
         return [fits, text.includes('running'), text.includes('succeeded')];",
    );
    assert_eq!(zoomed, json!([true, true, true]), "at 200 % zoom");
    browser.eval(&format!("location.hash = '#/jobs/{long}'; return true"));
    browser.wait_for(
        "the cancel button",
        WAIT,
        "return !!document.getElementById('cancel')",
    );
    let cancel = browser.find("#cancel");
    browser.keys(&cancel, ENTER);
    browser.wait_for(
        "the job cancelled",
        WAIT,
        "var s = document.querySelector('#job-state [data-state]'); return !!s && s.dataset.state === 'cancelled';",
    );
    assert_eq!(s.b.job(&long)["state"], "cancelled", "the store agrees");

    // A failed job held for debugging, released with the page's button.
    let held = s.submit_held(&token, "target", &["sh", "-c", "exit 3"], Some(600));
    browser.eval(&format!("location.hash = '#/jobs/{held}'; return true"));
    browser.wait_for(
        "the job held, with a release button",
        WAIT,
        "var s = document.querySelector('#job-state [data-state]'); return !!s && s.dataset.state === 'held' && !!document.getElementById('release');",
    );
    let release = browser.find("#release");
    browser.keys(&release, ENTER);
    browser.wait_for(
        "the released job failed with its code",
        WAIT,
        "var s = document.querySelector('#job-state [data-state]'); return !!s && s.dataset.state === 'failed' && document.getElementById('job-facts').textContent.includes('3');",
    );
    assert_eq!(
        browser.eval("return window.loadedOnce || null"),
        json!("yes"),
        "all of it without a reload"
    );
}

#[test]
fn a_users_dashboard_shows_only_its_jobs_and_changes_need_the_dashboard_header() {
    let s = serve();
    // `token create` prints the login URL on the listener it finds.
    let out = s.b.run(&["token", "create", "alice"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let alice = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let said = stderr_of(&out);
    let alice_url = format!("http://{}/?token={alice}", s.addr);
    assert!(said.contains(&format!("dashboard: {alice_url}")), "{said}");
    let bob = s.b.ok(&["token", "create", "bob"]).trim().to_string();
    let mine = s.submit(&alice, "local", &["sleep", "300"]);
    let theirs = s.submit(&bob, "local", &["sleep", "300"]);

    // Logging in by hand: a bad token is a 401 page, a good one a 303.
    let a = http(&s.addr, "GET", "/", &[], "");
    assert_eq!(a.status, 401);
    assert!(a.text().contains("needs a token"), "{}", a.text());
    assert_eq!(
        http(&s.addr, "GET", "/?token=belay_00", &[], "").status,
        401
    );
    let a = http(&s.addr, "GET", &format!("/?token={alice}"), &[], "");
    assert_eq!(a.status, 303);
    assert_eq!(a.header("location"), Some("/"));
    let set = a.header("set-cookie").expect("a cookie").to_string();
    for part in [
        format!("belay_token={alice}").as_str(),
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(set.contains(part), "{part} missing from {set}");
    }
    let cookie = format!("belay_token={alice}");
    let page = http(&s.addr, "GET", "/", &[("Cookie", &cookie)], "");
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    for (asset, kind) in [("app.js", "text/javascript"), ("style.css", "text/css")] {
        let a = http(&s.addr, "GET", &format!("/assets/{asset}"), &[], "");
        assert_eq!(a.status, 200);
        assert!(
            a.header("content-type").unwrap().starts_with(kind),
            "{asset}"
        );
    }

    // A change by cookie needs the dashboard's header; a bearer does not.
    let cancel = json!({"jobs": [mine]}).to_string();
    let json_type = ("Content-Type", "application/json");
    let a = http(
        &s.addr,
        "POST",
        "/v1/cancellations",
        &[("Cookie", &cookie), json_type],
        &cancel,
    );
    assert_eq!(a.status, 403, "{}", a.text());
    assert!(a.text().contains("x-belay-dashboard"), "{}", a.text());
    assert_eq!(s.b.job(&mine)["state"], "running", "nothing was cancelled");
    let reads = http(&s.addr, "GET", "/v1/jobs", &[("Cookie", &cookie)], "");
    assert_eq!(reads.status, 200, "reading by cookie needs no header");

    // The browser with alice's login sees her job, never bob's.
    let browser = Browser::start();
    browser.goto(&alice_url);
    browser.wait_for(
        "alice's job",
        WAIT,
        &format!("return ({}) === 'running'", state_in_row(&mine)),
    );
    assert_eq!(
        browser.eval(&format!("return {}", state_in_row(&theirs))),
        Value::Null,
        "bob's job is not shown"
    );
    let shown = browser.eval("return document.querySelectorAll('tr[data-job]').length");
    assert_eq!(shown, json!(1), "alice's only");

    let a = http(
        &s.addr,
        "POST",
        "/v1/cancellations",
        &[("Cookie", &cookie), ("X-Belay-Dashboard", "1"), json_type],
        &cancel,
    );
    assert_eq!(a.status, 200, "{}", a.text());
    browser.wait_for(
        "alice's job cancelled, live",
        WAIT,
        &format!("return ({}) === 'cancelled'", state_in_row(&mine)),
    );
    let auth = format!("Bearer {bob}");
    let theirs_cancel = json!({"jobs": [theirs]}).to_string();
    let a = http(
        &s.addr,
        "POST",
        "/v1/cancellations",
        &[("Authorization", &auth), json_type],
        &theirs_cancel,
    );
    assert_eq!(
        a.status,
        200,
        "a bearer token needs no dashboard header: {}",
        a.text()
    );
}

/// Opens `/v1/events` and reads up to its first event.
fn open_stream(addr: &str, token: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(
        stream,
        "GET /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .expect("send");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("\n\n")
        || !String::from_utf8_lossy(&seen).contains("event: snapshot")
    {
        let n = stream.read(&mut buf).expect("read events");
        assert!(
            n > 0,
            "the stream closed: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    (stream, String::from_utf8_lossy(&seen).into_owned())
}

#[test]
fn ten_live_streams_share_one_store_watcher() {
    let s = serve();
    let token = s.token();
    let job = s.submit(&token, "local", &["true"]);
    let streams: Vec<(TcpStream, String)> = (0..10).map(|_| open_stream(&s.addr, &token)).collect();
    let head = &streams[0].1;
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains(&job), "the snapshot holds the job: {head}");
    let info = s.daemon_info();
    assert_eq!(info["event_streams"], 10, "{info}");
    // One reading every 500 ms however many listen: over 3 s, about 6
    // (10 pollers would make 60).
    let before = info["watch_readings"].as_u64().unwrap();
    let started = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let after = s.daemon_info()["watch_readings"].as_u64().unwrap();
    let per_second = (after - before) as f64 / started.elapsed().as_secs_f64();
    eprintln!("store readings with 10 live streams: {per_second:.1}/s");
    assert!(per_second <= 3.0, "one poller serves all: {per_second}/s");
    drop(streams);
    let ok = poll(WAIT, || s.daemon_info()["event_streams"] == 0);
    assert!(ok, "closed streams are let go: {}", s.daemon_info());

    // The run's admin token went to the terminal only: not the log.
    let mut s = s;
    let _ = s.daemon.kill();
    let _ = s.daemon.wait();
    let mut logged = String::new();
    if let Some(mut err) = s.daemon.stderr.take() {
        let _ = err.read_to_string(&mut logged);
    }
    if let Ok(file) = std::fs::read_to_string(s.b.home.path().join("serve.log")) {
        logged.push_str(&file);
    }
    assert!(logged.contains("TCP"), "the daemon logged: {logged}");
    assert!(!logged.contains(&token), "the token was logged: {logged}");
}

/// An HTTP server on the `http` app's Unix socket, from Python's standard
/// library alone (only double quotes: it travels inside single ones); a
/// thread per connection, as a browser keeps idle ones open.
const SOCKET_SERVER: &str = r#"import http.server, os, socketserver
class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("app", 0)
class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from the app"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
Server(os.environ["BELAY_APP_SOCKET"], Page).serve_forever()
"#;

#[test]
fn a_job_page_links_to_its_app_through_the_daemons_forward() {
    let s = serve();
    // The app's forward lives in the daemon whatever the matrix mode.
    let app =
        s.b.cmd(["app", "run", "target", "http", "--json", "--"])
            .arg(format!("python3 -c '{SOCKET_SERVER}'"))
            .env("BELAY_NO_DAEMON", "")
            .deadline(Duration::from_secs(120))
            .json();
    let job = app["job"].as_str().expect("job").to_string();
    let local = app["local"].as_str().expect("local").to_string();
    let page = http(&local, "GET", "/", &[], "");
    assert_eq!(page.status, 200, "the forward itself: {}", page.text());

    let browser = Browser::start();
    browser.goto(&s.url);
    browser.goto(&format!("http://{}/#/jobs/{job}", s.addr));
    browser.wait_for(
        "the app link",
        WAIT,
        "return !!document.getElementById('app-link')",
    );
    let href = browser.eval("return document.getElementById('app-link').href");
    let href = href.as_str().expect("an href").to_string();
    assert!(
        href.starts_with(&format!("http://{local}/")),
        "{href} is not the forward {local}"
    );
    // Following the link reaches the app on its node.
    browser.goto(&href);
    browser.wait_for(
        "the app's page",
        WAIT,
        "return document.body && document.body.innerText.includes('hello from the app')",
    );
    s.b.cmd(["app", "stop", &job])
        .env("BELAY_NO_DAEMON", "")
        .ok();
}
