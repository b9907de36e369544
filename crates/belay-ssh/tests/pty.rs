//! Interactive sessions ([`belay_ssh::Interactive`]) against a real sshd:
//! the pty's size and resizes, TERM, stdin forwarding, exit status, and a
//! command without a terminal.

use std::time::Duration;

use belay_ssh::{InteractiveOutput, PtySpec, SessionEvent, SessionRequest};
use belay_testbed::SshdOptions;

use crate::common::Env;

/// Reads output until `needle` appears, failing after `deadline`.
async fn read_until(out: &mut InteractiveOutput, needle: &str, deadline: Duration) -> String {
    let mut seen = String::new();
    let end = tokio::time::Instant::now() + deadline;
    while !seen.contains(needle) {
        let event = tokio::time::timeout_at(end, out.next())
            .await
            .unwrap_or_else(|_| {
                panic!("no {needle:?} within {deadline:?}; output so far: {seen:?}")
            })
            .expect("session event");
        match event {
            SessionEvent::Stdout(b) | SessionEvent::Stderr(b) => {
                seen.push_str(&String::from_utf8_lossy(&b))
            }
            SessionEvent::Ended(s) => panic!("ended ({s:?}) before {needle:?}; output: {seen:?}"),
        }
    }
    seen
}

async fn end_status(out: &mut InteractiveOutput) -> Option<i32> {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), out.next())
            .await
            .expect("the session ends")
            .expect("session event");
        if let SessionEvent::Ended(s) = event {
            return s;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pty_session_has_its_size_resizes_term_and_exit_status() {
    let env = Env::new(SshdOptions::default());
    let c = env.client("target");
    let session = c
        .open_interactive(&SessionRequest {
            pty: Some(PtySpec {
                term: "xterm-belay-test".into(),
                cols: 91,
                rows: 27,
                modes: vec![],
            }),
            command: Some("exec /bin/sh".into()),
        })
        .await
        .expect("open a pty session");
    let (mut out, input) = session.split();
    let d = Duration::from_secs(10);
    // The marker is built by the shell so the echo of the typed line
    // cannot match it.
    input
        .send(b"echo size-$(stty size)-term-$TERM-end\n")
        .await
        .expect("send");
    read_until(&mut out, "size-27 91-term-xterm-belay-test-end", d).await;
    input.resize(120, 40).await.expect("resize");
    input
        .send(b"echo size-$(stty size)-now\n")
        .await
        .expect("send");
    read_until(&mut out, "size-40 120-now", d).await;
    input.send(b"exit 7\n").await.expect("send");
    assert_eq!(end_status(&mut out).await, Some(7));
    // The next call still gets the status, not an error.
    assert_eq!(
        out.next().await.expect("again"),
        SessionEvent::Ended(Some(7))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_without_a_pty_keeps_stderr_apart_and_sees_stdin_end() {
    let env = Env::new(SshdOptions::default());
    let c = env.client("target");
    let session = c
        .open_interactive(&SessionRequest {
            pty: None,
            command: Some("tty >/dev/null || echo no-tty >&2; cat; exit 3".into()),
        })
        .await
        .expect("open a session");
    let (mut out, input) = session.split();
    input.send(b"through stdin\n").await.expect("send");
    input.close_stdin().await.expect("eof");
    let (mut stdout, mut stderr, mut status) = (Vec::new(), Vec::new(), None);
    while status.is_none() {
        match tokio::time::timeout(Duration::from_secs(10), out.next())
            .await
            .expect("in time")
            .expect("event")
        {
            SessionEvent::Stdout(b) => stdout.extend(b),
            SessionEvent::Stderr(b) => stderr.extend(b),
            SessionEvent::Ended(s) => status = Some(s),
        }
    }
    assert_eq!(String::from_utf8_lossy(&stdout), "through stdin\n");
    assert_eq!(String::from_utf8_lossy(&stderr), "no-tty\n");
    assert_eq!(status, Some(Some(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_command_reports_its_signal() {
    let env = Env::new(SshdOptions::default());
    let c = env.client("target");
    let session = c
        .open_interactive(&SessionRequest {
            pty: None,
            command: Some("kill -TERM $$".into()),
        })
        .await
        .expect("open a session");
    let (mut out, _input) = session.split();
    assert_eq!(end_status(&mut out).await, Some(128 + 15));
}
