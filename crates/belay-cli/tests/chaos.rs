//! Chaos: faults injected into real sshds, network namespaces and belay
//! itself. Each test asserts the promise (nothing lost, nothing launched
//! twice, no false `failed`/`lost`, nothing hangs) and prints one
//! `CHAOS|scenario|fault|detect_s|recover_s|lost|doubled|bytes_lost` line
//! with the figures it measured (RELIABILITY.md is written from them; run
//! with `--nocapture` to see them).

mod support;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use support::remote::{Lab, Loopback};
use support::*;

fn figures(
    scenario: &str,
    fault: &str,
    detect: Option<Duration>,
    recover: Option<Duration>,
    lost: usize,
    doubled: usize,
    bytes_lost: usize,
) {
    let s = |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.2}", d.as_secs_f64()));
    println!(
        "CHAOS|{scenario}|{fault}|{}|{}|{lost}|{doubled}|{bytes_lost}",
        s(detect),
        s(recover)
    );
}

/// Kill or stop the per-connection sshd processes of a host (a cut link or
/// a hung peer), leaving its listener and any detached job alone.
fn signal_connections(sshd: &belay_testbed::Sshd, sig: i32) -> usize {
    let mut n = 0;
    for pid in sshd.session_pids() {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "sshd" && pid != sshd.pid() {
            // SAFETY: signalling processes of the test's own sshd.
            unsafe { libc::kill(pid as i32, sig) };
            n += 1;
        }
    }
    n
}

fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

#[test]
fn s2_submit_cut_between_steps_is_adopted_never_launched_twice() {
    let host = Loopback::start();
    for point in ["after-record", "after-stage", "after-launch"] {
        let b = host.belay();
        let counter = b.scratch("counter");
        let cmd = format!("echo x >> '{}'; sleep 0.5", counter.display());
        let name = format!("cut-{point}");
        let out = b.run_env(
            &["run", "-d", "--name", &name, "target", "--", &cmd],
            "BELAY_FAILPOINT",
            point,
        );
        assert_eq!(out.status.signal(), Some(9), "{point}");
        let t = Instant::now();
        let waited = b.run(&["wait", &name]);
        assert_eq!(
            waited.status.code(),
            Some(0),
            "{point}: {}",
            stderr_of(&waited)
        );
        let recover = t.elapsed();
        b.ok(&["ps"]);
        let n = lines(&counter);
        assert_eq!(n, 1, "{point}: launched {n} times");
        figures(
            "S2 cut during submit",
            point,
            None,
            Some(recover),
            0,
            n - 1,
            0,
        );
    }
}

#[test]
fn s6_belay_killed_while_attached_loses_nothing() {
    let host = Loopback::start();
    let b = host.belay();
    let counter = b.scratch("counter");
    let script = format!(
        "echo x >> '{}'; for i in $(seq 1 20); do echo line $i; sleep 0.1; done; exit 3",
        counter.display()
    );
    let mut child = b.spawn(&["run", "--name", "attached", "target", "--", &script]);
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 7];
    stdout.read_exact(&mut first).unwrap();
    child.kill().unwrap(); // SIGKILL, mid-stream
    child.wait().unwrap();
    let t = Instant::now();
    let followed = b.run(&["logs", "-f", "attached"]);
    let want: String = (1..=20).map(|i| format!("line {i}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&followed.stdout), want);
    assert_eq!(b.run(&["wait", "attached"]).status.code(), Some(3));
    assert_eq!(lines(&counter), 1);
    figures(
        "S6 belay SIGKILLed",
        "while attached",
        None,
        Some(t.elapsed()),
        0,
        0,
        0,
    );
}

#[test]
fn s7_a_rebooted_node_makes_its_jobs_lost_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("boot_id");
    std::fs::write(&boot, "boot-before\n").unwrap();
    let host = Loopback::start_with(vec![format!(
        "SetEnv BELAY_BOOT_ID_FILE={}",
        boot.display()
    )]);
    let b = host.belay();
    let id = b.submit(&["target", "--", "sleep 300"]);
    let job = b.wait_state(&id, "running", Duration::from_secs(10));
    let sid: u32 = job["scheduler_id"].as_str().unwrap().parse().unwrap();
    // The "reboot": every job process dies and the boot id changes.
    kill_session(sid);
    std::fs::write(&boot, "boot-after\n").unwrap();
    let t = Instant::now();
    let job = b.wait_state(&id, "lost", Duration::from_secs(10));
    let reason = job["reason"].as_str().unwrap();
    assert!(reason.contains("rebooted"), "{reason}");
    figures(
        "S7 node rebooted",
        "processes killed, boot id changed",
        Some(t.elapsed()),
        None,
        0,
        0,
        0,
    );
}

#[test]
fn s8_a_hung_sshd_is_detected_within_the_keepalive_bound() {
    let host = Loopback::start();
    host.add_hosts(&format!(
        "Host hung\n  HostName 127.0.0.1\n  Port {}\n  ServerAliveInterval 1\n  ServerAliveCountMax 2\n{}",
        host.sshd.port(),
        support::remote::common_options(&host.key, &host.known_hosts)
    ));
    let b = host.belay();
    let id = b.submit(&[
        "hung",
        "--",
        "for i in $(seq 1 40); do echo line $i; sleep 0.1; done",
    ]);
    let mut child = b.spawn(&["logs", "-f", &id]);
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 64];
    while !String::from_utf8_lossy(&seen).contains("line 3\n") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0);
        seen.extend_from_slice(&buf[..n]);
    }
    let t = Instant::now();
    assert!(signal_connections(&host.sshd, libc::SIGSTOP) > 0);
    // The follower must notice within interval x (count + 1) + 2 s = 5 s.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut err = Vec::new();
        let mut b = [0u8; 256];
        loop {
            match stderr.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    err.extend_from_slice(&b[..n]);
                    if String::from_utf8_lossy(&err).contains("not responding") {
                        let _ = tx.send(String::from_utf8_lossy(&err).into_owned());
                    }
                }
            }
        }
    });
    let warning = rx
        .recv_timeout(Duration::from_secs(8))
        .expect("no 'not responding' within 8 s");
    let detect = t.elapsed();
    assert!(
        detect <= Duration::from_secs(5),
        "detected after {detect:?}: {warning}"
    );
    signal_connections(&host.sshd, libc::SIGCONT);
    stdout.read_to_end(&mut seen).unwrap();
    assert!(child.wait().unwrap().success());
    let want: String = (1..=40).map(|i| format!("line {i}\n")).collect();
    assert_eq!(
        String::from_utf8_lossy(&seen),
        want,
        "every byte exactly once"
    );
    let recover = t.elapsed();

    // A command started while the listener itself is hung fails within
    // ConnectTimeout (5 s in the test config, plus slack) instead of hanging.
    // SAFETY: stopping and resuming the test's own sshd listener.
    unsafe { libc::kill(host.sshd.pid() as i32, libc::SIGSTOP) };
    let t2 = Instant::now();
    let check = b.run(&["host", "check", "hung"]);
    let fresh_detect = t2.elapsed();
    unsafe { libc::kill(host.sshd.pid() as i32, libc::SIGCONT) };
    assert_eq!(
        check.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(
        fresh_detect <= Duration::from_secs(7),
        "a new connection hung {fresh_detect:?}"
    );
    figures(
        "S8 sshd SIGSTOPped",
        "listener stopped, new command",
        Some(fresh_detect),
        None,
        0,
        0,
        0,
    );
    figures(
        "S8 sshd SIGSTOPped",
        "connections stopped under logs -f",
        Some(detect),
        Some(recover),
        0,
        0,
        0,
    );
}

#[test]
fn s5_a_dead_jump_host_leaves_jobs_unreachable_not_failed_and_they_resume() {
    let mut lab = Lab::start();
    let b = lab.belay();
    let id = b.submit(&["node1", "--", "sleep 3; echo done"]);
    b.wait_state(&id, "running", Duration::from_secs(15));
    lab.lab.jump.sshd.kill();
    let t = Instant::now();
    let ps = b.run(&["ps", "--json"]);
    let detect = t.elapsed();
    assert_eq!(ps.status.code(), Some(0), "{}", stderr_of(&ps));
    assert!(stderr_of(&ps).contains("unreachable"), "{}", stderr_of(&ps));
    let job = b.job(&id);
    assert_eq!(
        job["state"], "running",
        "a dead link never makes a job failed or lost"
    );
    let hosts = b.ok(&["host", "list", "--json"]);
    assert!(hosts.contains("unreachable"), "{hosts}");
    std::thread::sleep(Duration::from_secs(3)); // the job ends while the jump host is down
    let t = Instant::now();
    lab.lab.jump.sshd.restart().unwrap();
    let job = b.wait_state(&id, "succeeded", Duration::from_secs(30));
    let recover = t.elapsed();
    assert_eq!(b.ok(&["logs", &id]), "done\n");
    assert_eq!(job["exit_code"], 0);
    figures(
        "S5 jump host down",
        "jump sshd killed, no fallback",
        Some(detect),
        Some(recover),
        0,
        0,
        0,
    );
}
