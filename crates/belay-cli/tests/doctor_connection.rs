//! `belay doctor HOST`, the connection half, through real sshds with each
//! fault really set up: a hop name that matches no Host block (seed 000),
//! a closed port, a jump host that refuses to forward and one whose sshd
//! is stopped, unknown / changed / revoked host keys, and authentication
//! failures (a key others may read, an encrypted key with no agent,
//! certificates expired or for other principals, an agent with more keys
//! than MaxAuthTries). Each asserts the verdict, the hop named and the fix.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::remote::Loopback;
use crate::support::*;
use belay_testbed::{HostBlock, KeyKind, KeyPair, SshAgent, Sshd, SshdOptions, UserCa};

/// `belay doctor HOST --json`: the report and the exit status.
fn doctor(b: &Belay, host: &str) -> (Value, i32) {
    let out = b.cmd(["doctor", host, "--json"]).output();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor {host}: not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr_of(&out)
        )
    });
    (v, out.status.code().unwrap_or(-1))
}

/// The checks of `report` named `name` (on `hop`, when given).
fn checks<'a>(report: &'a Value, name: &str, hop: Option<&str>) -> Vec<&'a Value> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["check"] == name && hop.is_none_or(|h| c["hop"] == h))
        .collect()
}

/// The one check `name` on `hop`.
fn check<'a>(report: &'a Value, name: &str, hop: &str) -> &'a Value {
    let found = checks(report, name, Some(hop));
    assert_eq!(found.len(), 1, "one '{name}' check on {hop}: {report:#}");
    found[0]
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// A second loopback sshd (with `extra` sshd_config lines) as `jump`, and
/// `behind`: the first host reached through it.
fn with_jump(host: &Loopback, extra: &[&str], jump_options: &[(&str, &str)]) -> Sshd {
    let sshd = Sshd::start(SshdOptions {
        authorized_keys: vec![host.key.public_line().unwrap()],
        extra_config: extra.iter().map(|s| s.to_string()).collect(),
        ..SshdOptions::default()
    })
    .unwrap();
    let mut known = std::fs::read_to_string(&host.known_hosts).unwrap();
    known.push_str(&format!("{}\n", sshd.known_hosts_line("127.0.0.1")));
    std::fs::write(&host.known_hosts, known).unwrap();
    let mut jump = HostBlock::new("jump")
        .hostname("127.0.0.1")
        .port(sshd.port());
    for (k, v) in jump_options {
        jump = jump.option(k, v);
    }
    host.add_hosts(&jump.test_client(&host.key, &host.known_hosts).to_string());
    host.add_host(HostBlock::new("behind").proxy_jump("jump"));
    sshd
}

#[test]
fn a_healthy_chain_is_ok_hop_by_hop_within_five_seconds() {
    let host = Loopback::start();
    let _jump = with_jump(&host, &[], &[]);
    let b = host.belay();
    let t = Instant::now();
    let (r, code) = doctor(&b, "behind");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(code, 0, "{r:#}");
    assert_ne!(r["verdict"], "fail", "{r:#}");
    assert!(r["failed_hop"].is_null());
    assert!(r["total_ms"].as_f64().unwrap() < 5000.0);
    for hop in ["jump", "behind"] {
        assert_eq!(check(&r, "ssh -G", hop)["verdict"], "ok");
        assert!(text(&check(&r, "banner", hop)["seen"]).starts_with("SSH-2.0-OpenSSH"));
        let kh = check(&r, "known_hosts", hop);
        assert_eq!(kh["verdict"], "ok");
        assert!(
            text(&kh["seen"]).contains(&format!("{}:", host.known_hosts.display())),
            "{kh}"
        );
        let auth = check(&r, "auth", hop);
        assert_eq!(auth["verdict"], "ok");
        assert!(text(&auth["seen"]).contains("as root by key"), "{auth}");
        assert!(auth["ms"].as_f64().is_some());
    }
    // The first hop by DNS and TCP, the second through the first.
    assert_eq!(check(&r, "tcp", "jump")["verdict"], "ok");
    assert!(checks(&r, "tcp", Some("behind")).is_empty());
    let ch = check(&r, "channel", "behind");
    assert_eq!(ch["verdict"], "ok");
    assert!(text(&ch["seen"]).starts_with("jump → 127.0.0.1:"), "{ch}");
    assert!(text(&check(&r, "ssh -G", "behind")["seen"]).contains("via jump"));
    // In the order a connection is made.
    let order: Vec<(String, String)> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (text(&c["hop"]).to_string(), text(&c["check"]).to_string()))
        .collect();
    let at = |hop: &str, name: &str| {
        order
            .iter()
            .position(|(h, n)| h == hop && n == name)
            .unwrap()
    };
    assert!(at("jump", "auth") < at("behind", "channel"));
    assert!(at("behind", "channel") < at("behind", "banner"));
    assert!(at("behind", "banner") < at("behind", "known_hosts"));
}

#[test]
fn a_closed_port_fails_at_tcp_with_the_fix_in_json_and_in_words() {
    let host = Loopback::start();
    let b = host.belay();
    let (r, code) = doctor(&b, "closed");
    assert_eq!(code, 1);
    assert_eq!(r["verdict"], "fail");
    assert_eq!(r["failed_hop"], "closed");
    let tcp = check(&r, "tcp", "closed");
    assert_eq!(tcp["verdict"], "fail");
    assert!(text(&tcp["seen"]).contains("connection refused"), "{tcp}");
    assert!(text(&tcp["remedy"]).contains("sshd running"), "{tcp}");
    assert!(
        checks(&r, "auth", None).is_empty(),
        "stops at the failing hop"
    );

    let out = b.cmd(["doctor", "closed"]).output();
    assert_eq!(out.status.code(), Some(1));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("Resolution\n"), "{s}");
    assert!(s.contains("Reachability\n"), "{s}");
    assert!(s.contains("  FAIL closed tcp: connection refused"), "{s}");
    assert!(s.contains("       fix: is sshd running on 'closed'"), "{s}");
    assert!(
        s.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("closed: FAILED at closed ("),
        "{s}"
    );
}

#[test]
fn a_jump_name_that_matches_no_host_block_is_named_with_the_block_it_missed() {
    // Seed 000: the key and the user are in `Host ela`; the chain says
    // `ProxyJump localhost:PORT`, a name no block matches.
    let host = Loopback::start();
    let jump = Sshd::start(SshdOptions {
        authorized_keys: vec![host.key.public_line().unwrap()],
        ..SshdOptions::default()
    })
    .unwrap();
    let mut known = std::fs::read_to_string(&host.known_hosts).unwrap();
    known.push_str(&format!("{}\n", jump.known_hosts_line("localhost")));
    std::fs::write(&host.known_hosts, known).unwrap();
    let cfg = format!(
        "Host ela\n  HostName localhost\n  Port {p}\n  User root\n  IdentityFile {key}\n\
         Host seed\n  HostName 127.0.0.1\n  Port {tp}\n  User root\n  IdentityFile {key}\n  ProxyJump localhost:{p}\n\
         Host *\n  IdentitiesOnly yes\n  IdentityAgent none\n  BatchMode yes\n  UserKnownHostsFile {kh}\n  \
         GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  ConnectTimeout 5\n",
        p = jump.port(),
        tp = host.sshd.port(),
        key = host.key.private.display(),
        kh = host.known_hosts.display(),
    );
    std::fs::write(&host.config, cfg).unwrap();
    let b = host.belay();
    let (r, code) = doctor(&b, "seed");
    assert_eq!(code, 1, "{r:#}");
    let w = check(&r, "host block", "localhost");
    assert_eq!(w["verdict"], "warn");
    assert!(text(&w["seen"]).contains("`Host ela`"), "{w}");
    assert!(text(&w["seen"]).contains("identityfile"), "{w}");
    assert_eq!(
        text(&w["remedy"]),
        "name both in that block: `Host ela localhost` (or write `ProxyJump ela`)"
    );
    // And it is where the chain stops: the hop got no key.
    assert_eq!(r["failed_hop"], "localhost", "{r:#}");
    let auth = check(&r, "auth", "localhost");
    assert_eq!(auth["verdict"], "fail");
    assert!(
        text(&auth["remedy"]).contains("`Host ela localhost`"),
        "{auth}"
    );
    // The target itself matches its block: no such warning there.
    assert!(checks(&r, "host block", Some("seed")).is_empty());
}

#[test]
fn a_jump_that_refuses_to_forward_is_named_with_the_setting() {
    let host = Loopback::start();
    let _jump = with_jump(&host, &["AllowTcpForwarding no"], &[]);
    let (r, code) = doctor(&host.belay(), "behind");
    assert_eq!(code, 1);
    assert_eq!(r["failed_hop"], "jump", "{r:#}");
    assert_eq!(check(&r, "auth", "jump")["verdict"], "ok");
    let ch = check(&r, "channel", "jump");
    assert_eq!(ch["verdict"], "fail");
    let seen = text(&ch["seen"]);
    assert!(seen.contains("jump refuses to forward"), "{seen}");
    assert!(
        seen.contains("'behind'") && seen.contains("AllowTcpForwarding no"),
        "{seen}"
    );
    assert!(
        text(&ch["remedy"]).contains("AllowTcpForwarding yes"),
        "{ch}"
    );
}

#[test]
fn a_stopped_jump_fails_at_the_jump_within_connect_timeout_and_two_seconds() {
    let host = Loopback::start();
    let jump = with_jump(&host, &[], &[("ConnectTimeout", "2")]);
    // The daemon stops: the kernel still accepts the TCP connection, but
    // no banner ever comes.
    let st = std::process::Command::new("kill")
        .args(["-STOP", &jump.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let b = host.belay();
    let t = Instant::now();
    let (r, code) = doctor(&b, "behind");
    let took = t.elapsed();
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &jump.pid().to_string()])
        .status();
    assert_eq!(code, 1);
    assert_eq!(r["failed_hop"], "jump", "{r:#}");
    assert_eq!(check(&r, "tcp", "jump")["verdict"], "ok");
    let banner = check(&r, "banner", "jump");
    assert_eq!(banner["verdict"], "fail");
    assert!(
        text(&banner["seen"]).contains("no SSH banner within 2s"),
        "{banner}"
    );
    assert!(
        text(&banner["remedy"]).contains("hung or stopped"),
        "{banner}"
    );
    assert!(checks(&r, "banner", Some("behind")).is_empty());
    assert!(
        took <= Duration::from_secs(4),
        "ConnectTimeout 2 s + 2 s: {took:?}"
    );
}

#[test]
fn unknown_changed_and_revoked_host_keys_each_get_their_fix() {
    let host = Loopback::start();
    let kh = host.dir.path().join("known_hosts_other");
    host.add_host(HostBlock::new("other").option("UserKnownHostsFile", kh.display()));
    let b = host.belay();
    let name = format!("[127.0.0.1]:{}", host.sshd.port());

    std::fs::write(&kh, "").unwrap();
    let (r, _) = doctor(&b, "other");
    assert_eq!(r["failed_hop"], "other");
    let c = check(&r, "known_hosts", "other");
    assert_eq!(c["section"], "host_key");
    assert!(
        text(&c["seen"]).contains("unknown host key ssh-ed25519 SHA256:"),
        "{c}"
    );
    assert!(
        text(&c["remedy"]).contains("`belay host trust other`"),
        "{c}"
    );

    let stranger = KeyPair::generate(host.dir.path(), "stranger", KeyKind::Ed25519).unwrap();
    let line = stranger.public_line().unwrap();
    std::fs::write(&kh, format!("# a comment\n{name} {line}\n")).unwrap();
    let (r, _) = doctor(&b, "other");
    let c = check(&r, "known_hosts", "other");
    assert!(text(&c["seen"]).contains("host key changed"), "{c}");
    assert!(
        text(&c["seen"]).contains(&format!("{}:2", kh.display())),
        "{c}"
    );
    assert!(
        text(&c["remedy"]).contains("`belay host forget other`"),
        "{c}"
    );

    std::fs::write(
        &kh,
        format!("@revoked {name} {}\n", host.sshd.host_key_line()),
    )
    .unwrap();
    let (r, _) = doctor(&b, "other");
    let c = check(&r, "known_hosts", "other");
    assert_eq!(c["verdict"], "fail");
    assert!(text(&c["seen"]).contains("revoked"), "{c}");
    assert!(
        text(&c["seen"]).contains(&format!("{}:1", kh.display())),
        "{c}"
    );
    assert!(checks(&r, "auth", None).is_empty());
}

#[test]
fn key_files_others_may_read_and_encrypted_keys_without_an_agent_get_their_command() {
    let host = Loopback::start();
    let open = host.dir.path().join("open_key");
    std::fs::copy(&host.key.private, &open).unwrap();
    std::fs::copy(&host.key.public, host.dir.path().join("open_key.pub")).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    host.add_host(HostBlock::new("openkey").option("IdentityFile", open.display()));
    let locked =
        KeyPair::generate_with_passphrase(host.dir.path(), "locked", KeyKind::Ed25519, "pw")
            .unwrap();
    host.add_host(HostBlock::new("locked").option("IdentityFile", locked.private.display()));
    let b = host.belay();

    let (r, code) = doctor(&b, "openkey");
    assert_eq!(code, 1);
    assert_eq!(r["failed_hop"], "openkey");
    let id = check(&r, "identity", "openkey");
    assert_eq!(id["verdict"], "fail");
    assert!(text(&id["seen"]).contains("permissions 0644"), "{id}");
    assert!(
        text(&id["remedy"]).contains(&format!("`chmod 600 {}`", open.display())),
        "{id}"
    );
    assert_eq!(
        check(&r, "methods", "openkey")["seen"],
        "server accepts: publickey"
    );

    let (r, _) = doctor(&b, "locked");
    let id = check(&r, "identity", "locked");
    assert!(text(&id["seen"]).contains("encrypted"), "{id}");
    assert!(
        text(&id["remedy"]).contains(&format!("`ssh-add {}`", locked.private.display())),
        "{id}"
    );
}

#[test]
fn certificates_expired_not_yet_valid_or_for_other_principals_show_their_window_and_fix() {
    let cadir = tempfile::tempdir().unwrap();
    let ca = UserCa::new(cadir.path()).unwrap();
    let key = KeyPair::generate(cadir.path(), "k", KeyKind::Ed25519).unwrap();
    let host = Loopback::start_options(SshdOptions {
        trusted_user_ca: Some(ca.public().to_path_buf()),
        ..Default::default()
    });
    host.add_host(HostBlock::new("certonly").option("IdentityFile", key.private.display()));
    let b = host.belay();

    ca.sign(&key, &["root"], "-3h:-2h").unwrap();
    let (r, code) = doctor(&b, "certonly");
    assert_eq!(code, 1);
    let certs: Vec<_> = checks(&r, "identity", Some("certonly"))
        .into_iter()
        .filter(|c| text(&c["seen"]).starts_with("certificate "))
        .collect();
    assert_eq!(certs.len(), 1, "{r:#}");
    let seen = text(&certs[0]["seen"]);
    assert!(seen.contains("expired 2 h ago"), "{seen}");
    assert!(
        seen.contains("(valid ") && seen.contains(" UTC → "),
        "{seen}"
    );
    assert!(
        text(&certs[0]["remedy"]).contains("new certificate"),
        "{}",
        certs[0]
    );

    // Not valid yet (a clock behind, or a certificate for later).
    ca.sign(&key, &["root"], "+1h:+2h").unwrap();
    let (r, code) = doctor(&b, "certonly");
    assert_eq!(code, 1);
    let c = checks(&r, "identity", Some("certonly"))
        .into_iter()
        .find(|c| text(&c["seen"]).starts_with("certificate "))
        .unwrap();
    assert!(
        text(&c["seen"]).contains("(valid ") && text(&c["seen"]).contains(" UTC → "),
        "{c}"
    );
    assert!(text(&c["remedy"]).contains("is not valid yet"), "{c}");

    ca.sign(&key, &["alice"], "-5m:+1h").unwrap();
    let (r, _) = doctor(&b, "certonly");
    let c = checks(&r, "identity", Some("certonly"))
        .into_iter()
        .find(|c| text(&c["seen"]).starts_with("certificate "))
        .unwrap();
    assert!(
        text(&c["seen"]).contains("it is for principals alice, not 'root'"),
        "{c}"
    );
    assert!(text(&c["remedy"]).contains("`User alice`"), "{c}");
}

#[test]
fn an_agent_with_more_keys_than_max_auth_tries_gets_identities_only() {
    let host = Loopback::start_with(vec!["MaxAuthTries 3".into()]);
    let agent = SshAgent::start().unwrap();
    for i in 0..6 {
        let k = KeyPair::generate(host.dir.path(), &format!("extra{i}"), KeyKind::Ed25519).unwrap();
        agent.add(&k).unwrap();
    }
    host.add_host(
        HostBlock::new("crowded")
            .option("IdentityAgent", agent.socket().display())
            .option("IdentitiesOnly", "no"),
    );
    let (r, code) = doctor(&host.belay(), "crowded");
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["failed_hop"], "crowded");
    let auth = check(&r, "auth", "crowded");
    assert!(
        text(&auth["seen"]).contains("too many authentication failures"),
        "{auth}"
    );
    let fix = text(&auth["remedy"]);
    assert!(fix.contains("`IdentitiesOnly yes`"), "{fix}");
    assert!(
        fix.contains(&format!("`IdentityFile {}`", host.key.private.display())),
        "{fix}"
    );
    assert!(checks(&r, "identity", Some("crowded")).len() >= 2, "{r:#}");
    assert!(
        checks(&r, "methods", None).is_empty(),
        "not a method problem: {r:#}"
    );
}

#[test]
fn connection_errors_of_other_commands_point_to_the_doctor() {
    let host = Loopback::start();
    let b = host.belay();
    // (Not queued: the daemon would queue a run for an unreachable host.)
    let out = b.run(&["run", "--no-queue", "closed", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(err.contains("Connection refused"), "{err}");
    assert!(
        err.trim_end().ends_with("run `belay doctor closed`"),
        "{err}"
    );
    // Authentication refused: the same pointer.
    let stranger = KeyPair::generate(host.dir.path(), "stranger", KeyKind::Ed25519).unwrap();
    host.add_hosts(
        &HostBlock::new("wrongkey")
            .hostname("127.0.0.1")
            .port(host.sshd.port())
            .test_client(&stranger, &host.known_hosts)
            .to_string(),
    );
    let out = b.run(&["run", "wrongkey", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(err.contains("rejected by server"), "{err}");
    assert!(
        err.trim_end().ends_with("run `belay doctor wrongkey`"),
        "{err}"
    );
    // Bad input is not a connection problem: no pointer.
    let out = b.run(&["run", "no-such-host-belay.invalid", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !stderr_of(&out).contains("belay doctor"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn a_name_that_does_not_resolve_fails_at_dns_and_a_proxycommand_is_shown_expanded() {
    let host = Loopback::start();
    host.add_hosts(
        &HostBlock::new("nowhere")
            .hostname("no-such-host.belay.invalid")
            .test_client(&host.key, &host.known_hosts)
            .to_string(),
    );
    host.add_hosts(
        &HostBlock::new("proxied")
            .hostname("127.0.0.1")
            .port(host.sshd.port())
            .option("HostKeyAlias", format!("[127.0.0.1]:{}", host.sshd.port()))
            .option(
                "ProxyCommand",
                "bash -c 'exec 3<>/dev/tcp/%h/%p; cat <&3 & exec cat >&3'",
            )
            .test_client(&host.key, &host.known_hosts)
            .to_string(),
    );
    let b = host.belay();
    let (r, code) = doctor(&b, "nowhere");
    assert_eq!(code, 1);
    assert_eq!(r["failed_hop"], "nowhere");
    let dns = check(&r, "dns", "nowhere");
    assert_eq!(dns["verdict"], "fail");
    assert!(
        text(&dns["seen"]).contains("cannot resolve no-such-host.belay.invalid"),
        "{dns}"
    );
    assert!(
        text(&dns["remedy"]).contains("HostName of 'nowhere'"),
        "{dns}"
    );
    assert!(checks(&r, "tcp", None).is_empty());

    let (r, code) = doctor(&b, "proxied");
    assert_eq!(code, 0, "{r:#}");
    let expanded = format!("exec 3<>/dev/tcp/127.0.0.1/{}", host.sshd.port());
    let g = check(&r, "ssh -G", "proxied");
    assert!(text(&g["seen"]).contains(&expanded), "{g}");
    let pc = check(&r, "proxycommand", "proxied");
    assert_eq!(pc["verdict"], "ok");
    assert!(text(&pc["seen"]).contains(&expanded), "{pc}");
    assert!(checks(&r, "tcp", None).is_empty(), "no TCP of belay's own");
    assert_eq!(check(&r, "auth", "proxied")["verdict"], "ok");
}

/// An isolated node tried directly has no route from here; a jump host
/// whose firewall drops packets gives no answer within ConnectTimeout.
/// Each is its own verdict with its own fix (network namespaces: the
/// root namespace has an `unreachable` route to the nodes' subnet).
#[test]
fn no_route_and_a_silent_firewall_are_told_apart() {
    let lab = crate::support::remote::Lab::start();
    let b = lab.belay();
    let (r, code) = doctor(&b, "node1-direct");
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["failed_hop"], "node1-direct");
    let tcp = check(&r, "tcp", "node1-direct");
    assert_eq!(tcp["verdict"], "fail");
    assert!(text(&tcp["seen"]).starts_with("no route: "), "{tcp}");
    assert!(text(&tcp["remedy"]).contains("ProxyJump"), "{tcp}");

    // The jump's namespace drops every packet to its sshd.
    lab.lab
        .exec_in(
            &lab.lab.jump.netns,
            "nft add table inet belaydrop && \
             nft add chain inet belaydrop in '{ type filter hook input priority 0; policy accept; }' && \
             nft add rule inet belaydrop in tcp dport 22 drop",
        )
        .expect("nft in the jump's namespace");
    let started = std::time::Instant::now();
    let (r, code) = doctor(&b, "jump");
    let took = started.elapsed();
    assert_eq!(code, 1, "{r:#}");
    let tcp = check(&r, "tcp", "jump");
    assert_eq!(tcp["verdict"], "fail");
    assert!(text(&tcp["seen"]).starts_with("no answer after "), "{tcp}");
    assert!(text(&tcp["remedy"]).contains("firewall"), "{tcp}");
    // ConnectTimeout (5 s in the lab's config) + 2 s.
    assert!(took.as_secs_f64() < 7.0, "{took:?}");
}
