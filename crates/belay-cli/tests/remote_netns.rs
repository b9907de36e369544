//! Jobs on isolated nodes behind jump hosts (network namespaces): the node
//! cannot be reached directly; belay goes through the chain exactly as
//! OpenSSH would, and through a fallback jump host when the first is down.

use std::time::Duration;

use crate::support::remote::Lab;
use crate::support::*;

#[test]
fn jobs_run_on_an_isolated_node_two_hops_away() {
    let lab = Lab::start();
    let b = lab.belay();
    // Directly, the node is unreachable (and it is a failure, not bad input;
    // `--no-queue`: a daemon would otherwise queue the job and wait).
    let out = b.run(&["run", "--no-queue", "node1-direct", "--", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));

    let out = b.run(&[
        "run",
        "node2",
        "--",
        "sh",
        "-c",
        "uname -n; echo oops >&2; exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("oops"));
    let show = b.ok(&["host", "show", "node2"]);
    assert!(
        show.contains("1. jump") && show.contains("2. node1"),
        "{show}"
    );

    // Cancel of the whole tree, on the far node.
    let id = b.submit(&["node2", "--", "sleep 300 & sleep 300 & wait"]);
    let job = b.wait_state(&id, "running", Duration::from_secs(15));
    let sid: u32 = job["scheduler_id"].as_str().unwrap().parse().unwrap();
    assert!(poll(Duration::from_secs(5), || session_members(sid).len() >= 3));
    b.ok(&["cancel", &id]);
    assert_eq!(b.job(&id)["state"], "cancelled");
    assert!(poll(Duration::from_secs(5), || session_members(sid).is_empty()));
}

#[test]
fn a_dead_first_jump_falls_back_and_says_which_hop_was_used() {
    let lab = Lab::start();
    let b = lab.belay();
    let out = b.run(&["run", "--no-queue", "node1-via-dead", "--", "true"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "without fallbacks: {}",
        stderr_of(&out)
    );
    std::fs::write(
        b.home.path().join("config.toml"),
        "[hosts.node1-via-dead]\njump_fallbacks = [\"jump\"]\n",
    )
    .unwrap();
    assert_eq!(
        b.ok(&["run", "node1-via-dead", "--", "echo through"]),
        "through\n"
    );
    let show = b.ok(&["host", "show", "node1-via-dead"]);
    assert!(show.contains("jump fallbacks  jump"), "{show}");
    assert!(show.contains("fallback"), "the hop used is visible: {show}");
}

#[test]
fn a_proxyjump_name_gets_its_own_parameters_as_in_openssh() {
    // Seed 000: `ProxyJump ela.example` while the config has `Host ela`.
    let lab = Lab::start();
    let mut cfg = std::fs::read_to_string(&lab.config).unwrap();
    cfg = format!(
        "Host ela\n  HostName {j}\n  User nobody-from-ela-block\n  Port 2222\n\
         Host seed\n  HostName {n1}\n  ProxyJump ela.example\n{rest}",
        j = lab.lab.jump.addr,
        n1 = lab.lab.nodes[0].addr,
        rest = cfg
    );
    std::fs::write(&lab.config, &cfg).unwrap();
    let b = lab.belay();
    let show = b.ok(&["host", "show", "--json", "seed"]);
    let v: serde_json::Value = serde_json::from_str(&show).unwrap();
    let hop = &v["jumps"][0];
    // What OpenSSH itself says for the hop name.
    let g = std::process::Command::new("ssh")
        .args(["-G", "-F", lab.config.to_str().unwrap(), "ela.example"])
        .output()
        .unwrap();
    let g = String::from_utf8_lossy(&g.stdout);
    let field = |k: &str| {
        g.lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")))
            .unwrap()
            .to_string()
    };
    assert_eq!(hop["hostname"], field("hostname"), "{show}");
    assert_eq!(hop["user"], field("user"));
    assert_eq!(hop["port"].to_string(), field("port"));
    assert_ne!(
        hop["user"], "nobody-from-ela-block",
        "Host ela must not apply"
    );
    // And it fails like ssh does (ela.example does not resolve), naming the hop.
    let out = b.run(&["run", "--no-queue", "seed", "--", "true"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr_of(&out).contains("ela.example"),
        "{}",
        stderr_of(&out)
    );
}
