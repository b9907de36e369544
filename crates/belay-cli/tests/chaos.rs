//! Chaos: faults injected into real sshds, network namespaces and belay
//! itself. Each test asserts the promise (nothing lost, nothing launched
//! twice, no false `failed`/`lost`, nothing hangs) and prints one
//! `CHAOS|scenario|fault|detect_s|recover_s|lost|doubled|bytes_lost` line
//! with the figures it measured (RELIABILITY.md is written from them; run
//! with `--nocapture` to see them).

use std::io::Read;
use std::time::{Duration, Instant};

use crate::support::remote::{Lab, Loopback};
use crate::support::*;

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
        assert_killed_by_failpoint(&out, point);
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
    host.add_host(
        belay_testbed::HostBlock::new("hung")
            .option("ServerAliveInterval", 1)
            .option("ServerAliveCountMax", 2),
    );
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

/// Drop every packet in and out of a namespace (a partition) or let them
/// through again.
fn partition(lab: &Lab, ns: &str, cut: bool) {
    let script = if cut {
        "nft -f - <<'EOF'\ntable inet belay_chaos {\n  chain in { type filter hook input priority 0; policy drop; }\n  chain out { type filter hook output priority 0; policy drop; }\n}\nEOF\n"
    } else {
        "nft delete table inet belay_chaos 2>/dev/null; true\n"
    };
    lab.lab
        .exec_in(ns, script)
        .expect("nft in the node namespace");
}

fn keepalive_host(lab: &Lab, alias: &str, via: &str, addr: &str) {
    lab.add_host(
        belay_testbed::HostBlock::new(alias)
            .hostname(addr)
            .proxy_jump(via)
            .option("ServerAliveInterval", 1)
            .option("ServerAliveCountMax", 2),
    )
    .expect("config");
}

#[test]
fn s1_a_partition_mid_run_loses_nothing_and_heals_by_itself() {
    let lab = Lab::start();
    let node = lab.lab.nodes[0].netns.clone();
    keepalive_host(&lab, "n1", "jump", &lab.lab.nodes[0].addr);
    let b = lab.belay();
    let counter = b.scratch("counter");
    let cmd = format!(
        "echo x >> '{}'; for i in $(seq 1 40); do echo line $i; sleep 1; done",
        counter.display()
    );
    let id = b.submit(&["n1", "--", &cmd]);
    b.wait_state(&id, "running", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(3));
    partition(&lab, &node, true);
    let t = Instant::now();
    let ps = b.run(&["ps", "--json"]);
    let detect = t.elapsed();
    assert_eq!(ps.status.code(), Some(0));
    assert!(
        stderr_of(&ps).contains("n1"),
        "ps warns about the host: {}",
        stderr_of(&ps)
    );
    assert_eq!(
        b.job(&id)["state"],
        "running",
        "a partition never fails a job"
    );
    std::thread::sleep(Duration::from_secs(30).saturating_sub(t.elapsed()));
    partition(&lab, &node, false);
    let healed = Instant::now();
    let job = b.wait_state(&id, "succeeded", Duration::from_secs(60));
    let recover = healed.elapsed();
    let want: String = (1..=40).map(|i| format!("line {i}\n")).collect();
    let got = b.ok(&["logs", &id]);
    assert_eq!(got, want);
    assert_eq!(lines(&counter), 1);
    assert_eq!(job["exit_code"], 0);
    figures(
        "S1 partition 30 s",
        "node namespace drops all packets",
        Some(detect),
        Some(recover),
        0,
        0,
        want.len() - got.len(),
    );
}

#[test]
fn s9_two_hundred_jobs_through_a_flapping_link_match_the_host_exactly() {
    let lab = std::sync::Arc::new(Lab::start());
    let node = lab.lab.nodes[0].netns.clone();
    keepalive_host(&lab, "n1", "jump", &lab.lab.nodes[0].addr);
    let b = std::sync::Arc::new(lab.belay());
    let counter = b.scratch("counter");
    std::fs::write(&counter, "").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flapper = {
        let (lab, stop, node) = (lab.clone(), stop.clone(), node.clone());
        std::thread::spawn(move || {
            let mut flaps = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_secs(3));
                partition(&lab, &node, true);
                std::thread::sleep(Duration::from_secs(2));
                partition(&lab, &node, false);
                flaps += 1;
            }
            flaps
        })
    };
    let started = Instant::now();
    let total = 200;
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (b, counter) = (b.clone(), counter.clone());
            std::thread::spawn(move || {
                let mut refused = 0;
                for i in (w..total).step_by(4) {
                    let cmd = format!(
                        "echo $BELAY_JOB_ID >> '{}'; sleep $(( {i} % 4 )); exit $(( {i} % 3 ))",
                        counter.display()
                    );
                    let name = format!("j{i}");
                    // A submit the link refuses records nothing: try again.
                    loop {
                        let out = b.run(&["run", "-d", "--name", &name, "n1", "--", &cmd]);
                        if out.status.success() || stderr_of(&out).contains("is recorded") {
                            break;
                        }
                        refused += 1;
                    }
                }
                refused
            })
        })
        .collect();
    let refused: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    // Keep reconciling through the flapping until every job has ended.
    let all_ended = poll(Duration::from_secs(240), || {
        let out = b.run(&["ps", "--all", "--json"]);
        let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        jobs.as_array().is_some_and(|a| {
            a.len() == total
                && a.iter()
                    .all(|j| j["state"] == "succeeded" || j["state"] == "failed")
        })
    });
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let flaps = flapper.join().unwrap();
    partition(&lab, &node, false);
    assert!(
        all_ended,
        "jobs did not all end: {}",
        b.ok(&["ps", "--all"])
    );

    // The checker: every job in the store against the host's truth.
    let jobs: Vec<serde_json::Value> =
        serde_json::from_str(&b.ok(&["ps", "--all", "--json"])).unwrap();
    let launches = std::fs::read_to_string(&counter).unwrap();
    let mut doubled = 0;
    for j in &jobs {
        let id = j["id"].as_str().unwrap();
        let i: u32 = j["name"].as_str().unwrap()[1..].parse().unwrap();
        let want = (i % 3) as i64;
        assert_eq!(j["exit_code"].as_i64(), Some(want), "{id}: {j:#}");
        assert_eq!(j["state"], if want == 0 { "succeeded" } else { "failed" });
        let n = launches.lines().filter(|l| *l == id).count();
        assert_eq!(n, 1, "job {id} launched {n} times");
        doubled += n.saturating_sub(1);
    }
    assert_eq!(
        launches.lines().count(),
        total,
        "a launch the store does not know"
    );
    let names: std::collections::BTreeSet<_> = jobs
        .iter()
        .map(|j| j["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), total, "each job recorded exactly once");
    println!(
        "S9: {total} jobs, {flaps} flaps, {refused} submits refused and retried, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    figures(
        "S9 200 jobs, flapping link",
        "down 2 s every 5 s",
        None,
        Some(started.elapsed()),
        0,
        doubled,
        0,
    );
}

#[test]
fn s4_thirty_percent_packet_loss_for_a_two_minute_job() {
    let lab = Lab::start();
    let node = lab.lab.nodes[0].netns.clone();
    keepalive_host(&lab, "n1", "jump", &lab.lab.nodes[0].addr);
    let b = lab.belay();
    let id = b.submit(&["n1", "--", "for i in $(seq 1 120); do echo line $i; sleep 1; done; head -c 300000 /dev/zero | tr '\\0' x; exit 4"]);
    b.wait_state(&id, "running", Duration::from_secs(15));
    lab.lab
        .exec_in(
            &node,
            "nft -f - <<'EOF'\ntable inet belay_chaos {\n  chain in { type filter hook input priority 0; policy accept; numgen random mod 100 < 30 drop; }\n  chain out { type filter hook output priority 0; policy accept; numgen random mod 100 < 30 drop; }\n}\nEOF\n",
        )
        .unwrap();
    let t = Instant::now();
    let followed = run_with_deadline(b.command(&["logs", "-f", &id]), Duration::from_secs(400));
    let waited = b.run(&["wait", &id]);
    let took = t.elapsed();
    partition(&lab, &node, false);
    let mut want: String = (1..=120).map(|i| format!("line {i}\n")).collect();
    want.push_str(&"x".repeat(300_000));
    let got = String::from_utf8_lossy(&followed.stdout).into_owned();
    assert!(
        got == want,
        "output differs: {} bytes vs {}",
        got.len(),
        want.len()
    );
    assert_eq!(waited.status.code(), Some(4), "{}", stderr_of(&waited));
    assert_eq!(b.ok(&["logs", &id]), want, "re-read after healing");
    figures(
        "S4 30% loss both ways",
        "2-minute job followed with logs -f",
        None,
        Some(took),
        0,
        0,
        want.len().saturating_sub(got.len()),
    );
}

/// Scenario 10: the link is cut in the middle of a big push and of a big
/// pull. The same command reconnects and resumes from the verified partial
/// (it does not start over), and the copy is byte-identical.
#[test]
fn s10_transfer_cut_mid_file_resumes_in_the_same_command() {
    let host = Loopback::start();
    let b = host.belay();
    let size: usize = 256 << 20;
    let src = b.scratch("big.bin");
    let mut data = vec![0u8; size];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut data))
        .expect("random data");
    std::fs::write(&src, &data).expect("write source");

    for direction in ["push", "pull"] {
        let dir = b.scratch(&format!("{direction}-dest"));
        std::fs::create_dir_all(&dir).expect("dest dir");
        let (source, dest) = (src.display().to_string(), dir.display().to_string());
        let args: Vec<&str> = if direction == "push" {
            vec!["push", "target", &source, &dest, "--json"]
        } else {
            vec!["pull", "target", &source, &dest, "--json"]
        };
        let partial = dir.join(".big.bin.belay-part");
        let started = Instant::now();
        let child = b.spawn(&args);
        // Cut every connection once a quarter of the file has arrived.
        let reached = poll(Duration::from_secs(60), || {
            std::fs::metadata(&partial).is_ok_and(|m| m.len() >= (size / 4) as u64)
        });
        assert!(reached, "{direction}: the partial never reached a quarter");
        let cut_at = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        let cut = Instant::now();
        assert!(
            signal_connections(&host.sshd, libc::SIGKILL) > 0,
            "no connection to cut"
        );
        let out = child.wait_with_output().expect("belay ends");
        let recovered = cut.elapsed();
        assert!(
            out.status.success(),
            "{direction} did not survive the cut: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json summary");
        let copy = std::fs::read(dir.join("big.bin")).expect("copy exists");
        assert!(copy == data, "{direction}: copy differs from the source");
        assert!(!partial.exists(), "{direction}: partial left behind");
        let resumed = summary["bytes_resumed"].as_u64().unwrap();
        let sent = summary["bytes_sent"].as_u64().unwrap();
        assert!(resumed > 0, "{direction} started over: {summary}");
        // Sent = everything before the cut + the rest after it (the kept
        // partial counts in both `sent` and `resumed`); what went twice is
        // what was in flight when the link died.
        let resent = sent.saturating_sub(size as u64);
        assert!(
            resent <= 16 << 20,
            "{direction} re-sent {resent} bytes: {summary}"
        );
        println!(
            "CHAOS|10|{direction} cut at {} MiB of 256|-|{:.2}|0|0|0 (re-sent {:.1} MiB, total {:.2} s)",
            cut_at >> 20,
            recovered.as_secs_f64(),
            resent as f64 / (1 << 20) as f64,
            started.elapsed().as_secs_f64()
        );
    }
}
