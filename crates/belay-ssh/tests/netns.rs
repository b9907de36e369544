//! Jump chains through real sshds in network namespaces: a jump host and
//! isolated nodes that the root namespace cannot reach directly.

use std::time::{Duration, Instant};

use belay_ssh::{Client, ClientOptions, SshError};
use belay_testbed::{HostBlock, LabHosts, Prerequisite, require};

/// The lab and its client side (aliases: see `belay_testbed::LabHosts`).
fn lab() -> LabHosts {
    require(&[
        Prerequisite::Root,
        Prerequisite::OpenSsh,
        Prerequisite::IpRoute,
    ])
    .expect("prerequisites");
    LabHosts::start().expect("netlab")
}

fn client(l: &LabHosts, alias: &str, fallbacks: &[&str]) -> Client {
    Client::new(
        alias,
        ClientOptions {
            config_file: Some(l.config.clone()),
            jump_fallbacks: fallbacks.iter().map(|s| s.to_string()).collect(),
            ..ClientOptions::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jump_chains_reach_isolated_nodes() {
    let l = lab();
    // The node is isolated: a direct attempt fails fast.
    let t = Instant::now();
    let err = client(&l, "node1-direct", &[])
        .connect_info()
        .await
        .expect_err("isolated");
    assert!(
        matches!(&err, SshError::Unreachable { hop, .. } if hop == "node1-direct"),
        "{err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "unreachable took {:?}",
        t.elapsed()
    );

    // One jump.
    let c = client(&l, "node1", &[]);
    let info = c.connect_info().await.expect("via jump");
    eprintln!(
        "node via jump: total {:?}; hops {:?}",
        info.total,
        info.hops
            .iter()
            .map(|h| (h.alias.clone(), h.stream, h.kex, h.auth))
            .collect::<Vec<_>>()
    );
    assert_eq!(info.first_hop.as_deref(), Some("jump"));
    let out = c
        .run_script("cat /proc/sys/kernel/hostname >/dev/null; ip -4 -o addr show | grep -c 10.232")
        .await
        .expect("run");
    assert_eq!(out.status, 0, "{out:?}");

    // Two jumps: jump, then node1, then node2.
    let c = client(&l, "node2", &[]);
    let info = c.connect_info().await.expect("two jumps");
    let names: Vec<_> = info.hops.iter().map(|h| h.alias.as_str()).collect();
    assert_eq!(names, ["jump", "node1", "node2"]);
    let out = c.run_script("ip -4 -o addr show").await.expect("run");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&l.lab.nodes[1].addr),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jump_fallbacks_are_tried_when_the_first_hop_is_down() {
    let l = lab();
    let err = client(&l, "node1-via-dead", &[])
        .connect_info()
        .await
        .expect_err("dead jump");
    assert!(
        matches!(&err, SshError::Unreachable { hop, .. } if hop == "deadjump"),
        "{err}"
    );
    let c = client(&l, "node1-via-dead", &["jump"]);
    let info = c.connect_info().await.expect("fallback");
    assert_eq!(info.fallback_used.as_deref(), Some("jump"));
    assert_eq!(info.first_hop.as_deref(), Some("jump"));
    let out = c.run_script("echo ok").await.expect("run");
    assert_eq!(out.stdout, b"ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_jump_host_gives_host_not_responding() {
    let l = lab();
    let cfg = std::fs::read_to_string(&l.config).expect("cfg");
    std::fs::write(
        &l.config,
        format!(
            "{}{cfg}",
            HostBlock::new("*")
                .option("ServerAliveInterval", 1)
                .option("ServerAliveCountMax", 2)
        ),
    )
    .expect("cfg");
    let c = std::sync::Arc::new(client(&l, "node1", &[]));
    c.run_script("true").await.expect("first");
    let c2 = c.clone();
    let inflight = tokio::spawn(async move { c2.run_script("sleep 30").await });
    crate::common::wait_for("the sleep to start", Duration::from_secs(5), || {
        l.lab.nodes[0].sshd.runs("sleep")
    })
    .await;
    let stopped = l.lab.jump.sshd.stop_sessions();
    let budget = Duration::from_secs(3 + 2);
    let r = tokio::time::timeout(budget, inflight).await;
    l.lab.jump.sshd.continue_sessions(&stopped);
    let err = r
        .expect("error within budget")
        .expect("join")
        .expect_err("must fail");
    eprintln!("jump stopped: {err}");
    assert!(matches!(err, SshError::HostNotResponding { .. }), "{err}");
}
