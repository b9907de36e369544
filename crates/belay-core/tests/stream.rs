//! `Engine::stream_output` as the daemon uses it: engines on several
//! threads sharing one `Hosts` (one SSH connection to a real loopback
//! sshd), each following a job. A stream its caller stops (the HTTP client
//! went away) ends its follower on the host although the connection lives
//! on; a stream followed to the end gets every byte and the final state.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use belay_core::engine::{Engine, Offsets, Piece, StreamEnd};
use belay_core::home::BelayHome;
use belay_core::hosts::{Hosts, HostsOptions};
use belay_core::job::{JobSpec, JobState};
use belay_testbed::wait_until as poll;
use belay_testbed::{HostBlock, KeyKind, KeyPair, Sshd, SshdOptions, processes_matching};

const BOTH: Offsets = Offsets {
    stdout: Some(0),
    stderr: Some(0),
};

#[test]
fn engines_sharing_a_connection_stream_and_stop_without_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(dir.path(), "id", KeyKind::Ed25519).unwrap();
    let sshd = Sshd::start(SshdOptions {
        authorized_keys: vec![key.public_line().unwrap()],
        ..SshdOptions::default()
    })
    .expect("sshd (the tests run as root with OpenSSH installed)");
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!("{}\n", sshd.known_hosts_line("127.0.0.1")),
    )
    .unwrap();
    let config = dir.path().join("ssh_config");
    std::fs::write(
        &config,
        HostBlock::new("target")
            .hostname("127.0.0.1")
            .port(sshd.port())
            .test_client(&key, &known_hosts)
            .to_string(),
    )
    .unwrap();
    let home = BelayHome::at(dir.path().join("home"));
    let hosts = Arc::new(
        Hosts::new(
            &home,
            HostsOptions {
                ssh_config: Some(config),
                ..HostsOptions::default()
            },
        )
        .unwrap(),
    );
    let mut engine = Engine::with_hosts(&home, hosts.clone()).unwrap();
    let spec = |cmd: &str| JobSpec::new("target", None, vec![cmd.into()], None, &[]).unwrap();
    let endless = engine.submit(&spec("echo start; sleep 60")).unwrap();
    let counted = engine
        .submit(&spec(
            "for i in $(seq 1 20); do echo line $i; echo e$i >&2; sleep 0.05; done; exit 3",
        ))
        .unwrap();
    let endless_dir = PathBuf::from(engine.store().get(&endless.id).unwrap().remote_dir.unwrap());

    // A client that goes away after the first piece.
    let stopper = {
        let (home, hosts, job) = (home.clone(), hosts.clone(), endless.clone());
        std::thread::spawn(move || {
            let mut engine = Engine::with_hosts(&home, hosts).unwrap();
            let mut got = Vec::new();
            let mut sink = |p: Piece| {
                if let Piece::Stdout(d) = p {
                    got.extend(d);
                }
                ControlFlow::Break(())
            };
            let end = engine
                .stream_output(&job, BOTH, &mut sink, &|| false)
                .unwrap();
            (matches!(end, StreamEnd::Stopped(_)), got)
        })
    };
    // A client that follows to the end.
    let follower = {
        let (home, hosts, job) = (home.clone(), hosts.clone(), counted.clone());
        std::thread::spawn(move || {
            let mut engine = Engine::with_hosts(&home, hosts).unwrap();
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let mut sink = |p: Piece| {
                match p {
                    Piece::Stdout(d) => out.extend(d),
                    Piece::Stderr(d) => err.extend(d),
                    Piece::Retrying(why) => panic!("retrying on a healthy link: {why}"),
                }
                ControlFlow::Continue(())
            };
            let end = engine
                .stream_output(&job, BOTH, &mut sink, &|| false)
                .unwrap();
            (end, out, err)
        })
    };
    let (stopped, got) = stopper.join().unwrap();
    assert!(stopped, "the sink's Break stops the stream");
    assert_eq!(got, b"start\n");
    let (end, out, err) = follower.join().unwrap();
    let StreamEnd::Ended(job) = end else {
        panic!("the stream ended without the job: {end:?}")
    };
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.exit_status(), Some(3));
    let want_out: String = (1..=20).map(|i| format!("line {i}\n")).collect();
    let want_err: String = (1..=20).map(|i| format!("e{i}\n")).collect();
    assert_eq!(String::from_utf8(out).unwrap(), want_out);
    assert_eq!(String::from_utf8(err).unwrap(), want_err);

    // The connection lives on (the daemon keeps it), yet the stopped
    // stream's follower has ended on the host: its watcher is gone.
    let watcher = format!("inotifywait .*{}", endless_dir.display());
    if !poll(Duration::from_secs(3), || {
        processes_matching(&watcher).is_empty()
    }) {
        let left = processes_matching(&watcher);
        // Cut the connection first: its channel would never close, and
        // dropping the client would wait for it.
        sshd.kill_sessions();
        panic!("the stopped follower's watcher lives on: {left:?}");
    }
    assert!(
        !sshd.session_pids().is_empty(),
        "the shared connection closed"
    );
    let cancelled = engine.cancel(&endless, 1).unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
}
