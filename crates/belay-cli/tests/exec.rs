//! `belay exec`: untracked fan-out through real sshds. Hosts `node-a` and
//! `node-b` are one loopback sshd, `node-c` another whose home holds a file
//! `fail` (so one command can fail there alone, with code 3), `closed` a
//! port nothing listens on, and `silent` a port that accepts connections
//! but never speaks SSH. Covers patterns over the config's Host names,
//! prefixed and grouped output, the summary and exit codes, --json,
//! --timeout (unreachable and timeout told apart) and bad patterns.

use std::collections::HashSet;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use belay_testbed::{HostBlock, KeyKind, KeyPair, NetLab, Sshd, SshdOptions};
use serde_json::Value;

use crate::support::remote::Loopback;
use crate::support::*;

/// Prints `up`, or `bad` on stderr and exits 3 where the home has `fail`.
const CMD: &str = "if [ -e fail ]; then echo bad >&2; exit 3; fi; echo up";

struct Fleet {
    lb: Loopback,
    _other: Sshd,
    _silent: TcpListener,
}

impl Fleet {
    fn start() -> Fleet {
        let lb = Loopback::start();
        lb.add_host(HostBlock::new("node-a"));
        lb.add_host(HostBlock::new("node-b"));
        let other = Sshd::start(SshdOptions {
            authorized_keys: vec![lb.key.public_line().unwrap()],
            home_files: vec![("fail".into(), "\n".into())],
            ..SshdOptions::default()
        })
        .expect("sshd");
        let mut known = std::fs::read_to_string(&lb.known_hosts).unwrap();
        known.push_str(&format!("{}\n", other.known_hosts_line("127.0.0.1")));
        std::fs::write(&lb.known_hosts, known).unwrap();
        // Accepts (the kernel's backlog) and never answers.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        lb.add_hosts(&format!(
            "{}{}",
            HostBlock::new("node-c")
                .hostname("127.0.0.1")
                .port(other.port())
                .test_client(&lb.key, &lb.known_hosts),
            HostBlock::new("silent")
                .hostname("127.0.0.1")
                .port(silent.local_addr().unwrap().port())
                .test_client(&lb.key, &lb.known_hosts)
        ));
        Fleet {
            lb,
            _other: other,
            _silent: silent,
        }
    }

    fn belay(&self) -> Belay {
        self.lb.belay()
    }
}

fn lines(text: &str) -> HashSet<String> {
    text.lines().map(str::to_string).collect()
}

#[test]
fn a_pattern_runs_on_every_matching_host_with_each_line_prefixed() {
    let f = Fleet::start();
    let b = f.belay();
    let out = b.cmd(["exec", "node-?", "--", CMD]).output();
    assert_eq!(
        out.status.code(),
        Some(1),
        "node-c fails: {}",
        stderr_of(&out)
    );
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(
        lines(&stdout),
        lines("node-a: up\nnode-b: up\n"),
        "stdout: {stdout}"
    );
    let err = stderr_of(&out);
    assert!(err.contains("node-c: bad\n"), "{err}");
    assert!(
        err.contains("exec on 3 hosts: 2 ok, 1 failed")
            && err.contains("  node-c: failed with exit code 3"),
        "{err}"
    );
    // Every host succeeded: exit 0, and the summary names no host.
    let out = b
        .cmd(["exec", "node-a", "node-*", "--", "echo", "a b"])
        .output();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 3, "node-a once: {stdout}");
    assert!(stdout.contains("node-c: a b\n"), "an exact argv: {stdout}");
}

#[test]
fn many_lines_from_many_hosts_never_mix_within_a_line() {
    let f = Fleet::start();
    let out = f
        .belay()
        .cmd(["exec", "node-*", "target", "--", "seq 1 2000"])
        .ok();
    let mut next = std::collections::HashMap::new();
    for line in out.lines() {
        let (host, n) = line.split_once(": ").expect(line);
        let n: u32 = n.parse().unwrap_or_else(|_| panic!("mixed line: {line:?}"));
        let want = next.entry(host.to_string()).or_insert(1);
        assert_eq!(n, *want, "{host}'s lines in order");
        *want += 1;
    }
    assert_eq!(next.len(), 4);
    assert!(next.values().all(|n| *n == 2001), "{next:?}");
}

#[test]
fn group_prints_each_distinct_output_once_under_its_hosts() {
    let f = Fleet::start();
    let out = f
        .belay()
        .cmd([
            "exec",
            "--group",
            "node-*",
            "--",
            "echo same; if [ -e fail ]; then echo marked; fi",
        ])
        .ok();
    let want = "-----------------\nnode-a,node-b (2)\n-----------------\nsame\n\
                ---------------\nnode-c (1)\n---------------\nsame\nmarked\n";
    assert_eq!(out, want);
}

#[test]
fn an_unreachable_host_is_summarised_with_the_real_ssh_error() {
    let f = Fleet::start();
    let out = f
        .belay()
        .cmd(["exec", "node-a", "closed", "--", CMD])
        .output();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "node-a: up\n");
    let err = stderr_of(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("  closed: unreachable: "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains("refused"), "the OS's own words: {line}");
}

#[test]
fn json_is_one_document_with_every_host() {
    let f = Fleet::start();
    let out = f
        .belay()
        .cmd(["exec", "--json", "node-a", "node-c", "closed", "--", CMD])
        .output();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let hosts = v["hosts"].as_array().unwrap();
    let names: Vec<&str> = hosts.iter().map(|h| h["host"].as_str().unwrap()).collect();
    assert_eq!(names, ["node-a", "node-c", "closed"]);
    assert_eq!(hosts[0]["status"], "ok");
    assert_eq!(hosts[0]["exit_code"], 0);
    assert_eq!(hosts[0]["stdout"], "up\n");
    assert_eq!(hosts[0]["error"], Value::Null);
    assert_eq!(hosts[1]["status"], "failed");
    assert_eq!(hosts[1]["exit_code"], 3);
    assert_eq!(hosts[1]["stderr"], "bad\n");
    assert_eq!(hosts[2]["status"], "unreachable");
    assert_eq!(hosts[2]["exit_code"], Value::Null);
    assert!(hosts[2]["error"].as_str().unwrap().contains("refused"));
    assert!(hosts.iter().all(|h| h["ms"].is_u64()));
    assert_eq!((v["ok"].clone(), v["failed"].clone()), (1.into(), 1.into()));
    assert_eq!(v["unreachable"], 1);
}

#[test]
fn timeout_tells_a_silent_host_from_a_slow_command() {
    let f = Fleet::start();
    let t = Instant::now();
    let v: Value = {
        let out = f
            .belay()
            .cmd([
                "exec",
                "--json",
                "--timeout",
                "2",
                "node-a",
                "silent",
                "--",
                "sleep 30",
            ])
            .output();
        assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    let hosts = v["hosts"].as_array().unwrap();
    assert_eq!(hosts[0]["status"], "timeout", "{v}");
    assert!(hosts[0]["error"].as_str().unwrap().contains("after 2s"));
    assert_eq!(hosts[1]["status"], "unreachable", "{v}");
    assert!(
        hosts[1]["error"]
            .as_str()
            .unwrap()
            .contains("no connection within 2s")
    );
}

#[test]
fn a_pattern_matching_no_host_name_is_bad_input() {
    let f = Fleet::start();
    let b = f.belay();
    b.cmd(["exec", "node-a", "gpu-*", "--", "true"])
        .bad_input("gpu-*");
    b.cmd(["exec", "no-such-host.invalid", "--", "true"])
        .bad_input("no-such-host.invalid");
    b.cmd(["exec", "--parallel", "0", "node-a", "--", "true"])
        .bad_input("0");
}

#[test]
fn nodes_behind_one_jump_host_share_one_authentication_there() {
    crate::support::remote::prerequisites();
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(dir.path(), "id", KeyKind::Ed25519).unwrap();
    let lab = NetLab::start(
        12,
        SshdOptions {
            authorized_keys: vec![key.public_line().unwrap()],
            ..SshdOptions::default()
        },
    )
    .expect("netlab");
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, lab.known_hosts_lines()).unwrap();
    let mut config = HostBlock::new("jump")
        .hostname(&lab.jump.addr)
        .test_client(&key, &known_hosts)
        .to_string();
    for (i, node) in lab.nodes.iter().enumerate() {
        config.push_str(
            &HostBlock::new(&format!("n{:02}", i + 1))
                .hostname(&node.addr)
                .proxy_jump("jump")
                .test_client(&key, &known_hosts)
                .to_string(),
        );
    }
    let config_file = dir.path().join("ssh_config");
    std::fs::write(&config_file, config).unwrap();
    let b = Belay::new().with_env("BELAY_SSH_CONFIG", config_file.to_str().unwrap());
    let out = b.cmd(["exec", "n*", "--", "echo ok"]).ok();
    let want: HashSet<String> = (1..=12).map(|i| format!("n{i:02}: ok")).collect();
    assert_eq!(lines(&out), want);
    let accepted = |log: String| log.matches("Accepted publickey").count();
    assert_eq!(
        accepted(lab.jump.sshd.log()),
        1,
        "one authentication on the jump host for 12 nodes:\n{}",
        lab.jump.sshd.log()
    );
    for node in &lab.nodes {
        assert_eq!(accepted(node.sshd.log()), 1, "{}", node.sshd.log());
    }
}

#[test]
fn handshakes_with_one_sshd_are_paced_below_its_max_startups() {
    // This sshd drops every connection beyond 10 unauthenticated ones;
    // 24 aliases of it at --parallel 32 must all get through.
    let lb = Loopback::start_with(vec!["MaxStartups 10:100:10".into()]);
    for i in 1..=24 {
        lb.add_host(HostBlock::new(&format!("h{i:02}")));
    }
    let out = lb
        .belay()
        .cmd(["exec", "--parallel", "32", "h*", "--", "echo ok"])
        .ok();
    assert_eq!(
        out.lines().filter(|l| l.ends_with(": ok")).count(),
        24,
        "{out}"
    );
}

#[test]
fn host_check_of_many_hosts_checks_them_at_once() {
    // Four hosts that never answer (2 s connect timeout each: 8 s one
    // after another) and one that does.
    let f = Fleet::start();
    let silent_port = f._silent.local_addr().unwrap().port();
    for i in 1..=4 {
        f.lb.add_hosts(
            &HostBlock::new(&format!("mute{i}"))
                .hostname("127.0.0.1")
                .port(silent_port)
                .option("ConnectTimeout", 2)
                .test_client(&f.lb.key, &f.lb.known_hosts)
                .to_string(),
        );
    }
    let t = Instant::now();
    let out = f
        .belay()
        .cmd([
            "host", "check", "mute1", "mute2", "mute3", "mute4", "target",
        ])
        .output();
    let took = t.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", stderr_of(&out));
    assert!(stdout.contains("target: ok"), "{stdout}");
    for i in 1..=4 {
        assert!(stdout.contains(&format!("mute{i}: FAILED")), "{stdout}");
    }
    assert!(
        took < Duration::from_secs(6),
        "checked one after another: {took:?}"
    );
}
