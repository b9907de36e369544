//! belay-ssh against a real OpenSSH sshd on loopback: authentication,
//! host keys, configuration resolution, the persistent shell, and link
//! faults. No part of the SSH layer is mocked.

use std::time::{Duration, Instant};

use crate::common::{Env, keygen_fingerprint, wait_for};
use belay_ssh::{
    Client, ClientOptions, ShellFraming, SshError, resolve, scan_host_key, trust_host_key,
};
use belay_testbed::{KeyKind, KeyPair, SshAgent, SshdOptions, UserCa};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_file_auth_and_run_script_round_trip() {
    let env = Env::new(SshdOptions::default());
    let c = env.client("target");
    let info = c.connect_info().await.expect("connect");
    assert!(
        info.hops[0].auth_method.contains("id_test"),
        "{:?}",
        info.hops[0]
    );
    eprintln!(
        "connect timings: stream {:?} kex {:?} auth {:?} first rtt {:?} total {:?}",
        info.hops[0].stream, info.hops[0].kex, info.hops[0].auth, info.first_round_trip, info.total
    );

    scripts_round_trip(&c).await;
    // Words (the module header): this host's /bin/sh is dash, which reads
    // its input in blocks, so no script was written to a file for `head`.
    let out = c
        .run_script("[ -e \"$__belay_d/s\" ] && echo head || echo words")
        .await
        .expect("framing");
    assert_eq!(out.stdout, b"words\n");

    // The same scripts, framed for a shell that reads a byte at a time
    // (bash as /bin/sh), on a connection of their own.
    let head = std::sync::Arc::new(Client::new(
        "target",
        ClientOptions {
            shell_framing: ShellFraming::Head,
            ..env.options()
        },
    ));
    scripts_round_trip(&head).await;
    let out = head
        .run_script("[ -e \"$__belay_d/s\" ] && echo head || echo words")
        .await
        .expect("framing");
    assert_eq!(out.stdout, b"head\n");
    let mut s = head
        .exec_stream("cat; echo done >&2; exit 7", Duration::from_secs(30))
        .await
        .expect("stream");
    s.write_all(b"through head").await.expect("write");
    s.close_input().await.expect("eof");
    let mut back = Vec::new();
    while let Some(c) = s.read().await.expect("read") {
        back.extend_from_slice(&c);
    }
    assert_eq!(back, b"through head");
    assert_eq!(s.finish().await.expect("finish").status, 7);

    // Concurrent calls are safe.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let o = c
                .run_script(&format!("sleep 0.1; echo {i}"))
                .await
                .expect("concurrent");
            assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{i}\n"));
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }

    // Warm round trip.
    let n = 20;
    let t = Instant::now();
    for _ in 0..n {
        c.run_script("true").await.expect("true");
    }
    eprintln!("run_script warm round trip: {:?}", t.elapsed() / n);

    // The loop's records of its pid namespace and of the boot time, for
    // requests to read with a builtin: one line each, what the host says.
    for (file, truth) in [
        ("pidns", "stat -L -c %i /proc/$$/ns/pid"),
        ("btime", "sed -n 's/^btime //p' /proc/stat"),
    ] {
        let out = c
            .run_script(&format!(
                "read -r n < \"$__belay_d/{file}\" && echo \"$n\"; {truth}"
            ))
            .await
            .expect(file);
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.len() == 2
                && lines[0] == lines[1]
                && lines[0].parse::<u64>().is_ok_and(|n| n > 0),
            "{file}: {text:?}"
        );
    }

    let out = c
        .exec("cat; echo $0 >&2; exit 4", b"from stdin")
        .await
        .expect("exec");
    assert_eq!(out.status, 4);
    assert_eq!(out.stdout, b"from stdin");
    assert_eq!(c.connect_count(), 1, "one connection for all of that");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bashrc_is_paid_by_exec_but_not_by_run_script() {
    let env = Env::new(SshdOptions {
        home_files: vec![(".bashrc".into(), "sleep 0.5\n".into())],
        ..SshdOptions::default()
    });
    let c = env.client("target");
    c.run_script("true").await.expect("warm up");
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let t = Instant::now();
        c.run_script("echo x").await.expect("run");
        worst = worst.max(t.elapsed());
    }
    let t = Instant::now();
    c.exec("true", b"").await.expect("exec");
    let exec_time = t.elapsed();
    eprintln!("with a 0.5 s .bashrc: run_script worst {worst:?}, exec {exec_time:?}");
    assert!(
        exec_time >= Duration::from_millis(500),
        "the .bashrc did not run? {exec_time:?}"
    );
    assert!(
        worst < Duration::from_millis(100),
        "run_script paid the login shell: {worst:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_auth_with_real_ssh_agent() {
    let env = Env::new(SshdOptions::default());
    let agent = SshAgent::start().expect("agent");
    agent.add(&env.key).expect("ssh-add");
    // No usable identity file: only the agent can authenticate.
    let block = env.host_block("viaagent", "").replace(
        &format!("IdentityFile {}", env.key.private.display()),
        "IdentityFile /nonexistent/key",
    );
    let block = block
        .replace("IdentitiesOnly yes", "IdentitiesOnly no")
        .replace(
            "IdentityAgent none",
            &format!("IdentityAgent {}", agent.socket().display()),
        );
    env.write_raw_config(&block);
    let info = env
        .client("viaagent")
        .connect_info()
        .await
        .expect("agent auth");
    assert!(
        info.hops[0].auth_method.starts_with("agent key"),
        "{:?}",
        info.hops[0].auth_method
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_agent_keys_with_identities_only_pick_the_right_one() {
    let env = Env::new(SshdOptions {
        extra_config: vec!["MaxAuthTries 3".into()],
        ..SshdOptions::default()
    });
    let agent = SshAgent::start().expect("agent");
    for i in 0..6 {
        let k =
            KeyPair::generate(env.path(), &format!("other{i}"), KeyKind::Ed25519).expect("keygen");
        agent.add(&k).expect("add");
    }
    agent.add(&env.key).expect("add right key last");
    let block = env.host_block("t", "").replace(
        "IdentityAgent none",
        &format!("IdentityAgent {}", agent.socket().display()),
    );
    env.write_raw_config(&block);
    let info = env
        .client("t")
        .connect_info()
        .await
        .expect("IdentitiesOnly auth");
    assert!(
        info.hops[0].auth_method.contains("(agent)"),
        "{}",
        info.hops[0].auth_method
    );

    // Without IdentitiesOnly and without an IdentityFile matching, the six
    // wrong agent keys exhaust MaxAuthTries: the error lists every attempt.
    let block = env
        .host_block("t", "")
        .replace(
            "IdentityAgent none",
            &format!("IdentityAgent {}", agent.socket().display()),
        )
        .replace("IdentitiesOnly yes", "IdentitiesOnly no")
        .replace(
            &format!("IdentityFile {}", env.key.private.display()),
            "IdentityFile /nonexistent",
        );
    env.write_raw_config(&block);
    // Put the right key's slot out of reach by removing it from the agent.
    let _ = std::process::Command::new("ssh-add")
        .arg("-d")
        .arg(&env.key.private)
        .env("SSH_AUTH_SOCK", agent.socket())
        .output();
    let err = env.client("t").connect_info().await.expect_err("must fail");
    let msg = err.to_string();
    assert!(matches!(err, SshError::Auth(_)), "{msg}");
    assert!(
        msg.contains("agent key ED25519") || msg.contains("agent key ssh-ed25519"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_auth_and_expired_certificate_message() {
    prereq_dir_ca_test(false).await;
    prereq_dir_ca_test(true).await;
}

async fn prereq_dir_ca_test(expired: bool) {
    crate::common::prereqs();
    let cadir = tempfile::tempdir().expect("tmp");
    let ca = UserCa::new(cadir.path()).expect("ca");
    // No authorized_keys entry for the user key: only the certificate works.
    let env_dir = tempfile::tempdir().expect("tmp");
    let user_key = KeyPair::generate(env_dir.path(), "k", KeyKind::Ed25519).expect("keygen");
    let validity = if expired { "-3h:-2h" } else { "-5m:+1h" };
    let cert = ca.sign(&user_key, &["root"], validity).expect("sign");
    let env = Env::new(SshdOptions {
        trusted_user_ca: Some(ca.public().to_path_buf()),
        ..SshdOptions::default()
    });
    let block = env.host_block("c", "").replace(
        &env.key.private.display().to_string(),
        &user_key.private.display().to_string(),
    );
    env.write_raw_config(&block);
    let r = env.client("c").connect_info().await;
    if expired {
        let err = r.expect_err("expired certificate must fail");
        let msg = err.to_string();
        assert!(matches!(err, SshError::Auth(_)), "{msg}");
        let expect = format!("certificate {} expired 2 h ago", cert.display());
        assert!(msg.contains(&expect), "wanted '{expect}' in: {msg}");
    } else {
        let info = r.expect("certificate auth");
        assert!(
            info.hops[0].auth_method.starts_with("certificate"),
            "{}",
            info.hops[0].auth_method
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_key_refused_then_trust_then_forget() {
    let env = Env::new(SshdOptions::default());
    std::fs::write(&env.known_hosts, "").expect("empty known_hosts");
    let err = env
        .client("target")
        .connect_info()
        .await
        .expect_err("unknown key");
    let fp = keygen_fingerprint(env.sshd.host_key_line(), env.path());
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            SshError::HostKey(belay_ssh::HostKeyError::Unknown { .. })
        ),
        "{msg}"
    );
    assert!(msg.contains(&fp), "fingerprint {fp} missing: {msg}");
    assert!(msg.contains("belay host trust target"), "{msg}");

    // `ask` without a terminal: refused with the remedy, never accepted.
    env.write_raw_config(
        &env.host_block("target", "")
            .replace("StrictHostKeyChecking yes", "StrictHostKeyChecking ask"),
    );
    let err = env
        .client("target")
        .connect_info()
        .await
        .expect_err("ask, no tty");
    assert!(err.to_string().contains("belay host trust target"), "{err}");
    assert_eq!(std::fs::read_to_string(&env.known_hosts).expect("kh"), "");

    // host trust: scan, show fingerprint, record.
    let (chain, key) = scan_host_key("target", &env.options()).await.expect("scan");
    assert_eq!(belay_ssh::fingerprint(&key), fp);
    let (file, line) = trust_host_key(&chain.target, &key).expect("trust");
    assert_eq!((file.as_path(), line), (env.known_hosts.as_path(), 1));
    let kh = std::fs::read_to_string(&env.known_hosts).expect("kh");
    assert!(
        kh.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", env.sshd.port())),
        "{kh}"
    );
    env.client("target")
        .connect_info()
        .await
        .expect("trusted now");

    // forget removes it again.
    let removed = belay_ssh::forget_host_key(&chain.target).expect("forget");
    assert_eq!(removed.len(), 1);
    assert!(env.client("target").connect_info().await.is_err());

    // accept-new records the key and says so.
    env.write_raw_config(&env.host_block("target", "").replace(
        "StrictHostKeyChecking yes",
        "StrictHostKeyChecking accept-new",
    ));
    let info = env
        .client("target")
        .connect_info()
        .await
        .expect("accept-new");
    assert!(matches!(
        info.hops[0].host_key,
        belay_ssh::HostKeyAccepted::Added { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_host_key_refused_with_file_and_line() {
    let env = Env::new(SshdOptions::default());
    let other = KeyPair::generate(env.path(), "otherhost", KeyKind::Ed25519).expect("keygen");
    let other_line = other.public_line().expect("pub");
    let other_key: Vec<&str> = other_line.split_whitespace().take(2).collect();
    std::fs::write(
        &env.known_hosts,
        format!(
            "# comment\n[127.0.0.1]:{} {}\n",
            env.sshd.port(),
            other_key.join(" ")
        ),
    )
    .expect("kh");
    let err = env
        .client("target")
        .connect_info()
        .await
        .expect_err("changed key");
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            SshError::HostKey(belay_ssh::HostKeyError::Changed { line: 2, .. })
        ),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("{}:2", env.known_hosts.display())),
        "{msg}"
    );
    // StrictHostKeyChecking no does not make belay accept a changed key.
    env.write_raw_config(
        &env.host_block("target", "")
            .replace("StrictHostKeyChecking yes", "StrictHostKeyChecking no"),
    );
    assert!(env.client("target").connect_info().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_known_hosts_entry_accepted() {
    let env = Env::new(SshdOptions::default());
    let out = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&env.known_hosts)
        .output()
        .expect("ssh-keygen -H");
    assert!(out.status.success());
    let kh = std::fs::read_to_string(&env.known_hosts).expect("kh");
    assert!(kh.starts_with("|1|"), "not hashed: {kh}");
    env.client("target")
        .connect_info()
        .await
        .expect("hashed entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_key_alias_is_honoured() {
    let env = Env::new(SshdOptions::default());
    std::fs::write(
        &env.known_hosts,
        format!("myalias {}\n", env.sshd.host_key_line()),
    )
    .expect("kh");
    env.write_raw_config(&env.host_block("target", "  HostKeyAlias myalias\n"));
    env.client("target")
        .connect_info()
        .await
        .expect("HostKeyAlias");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_command_is_run_with_sh() {
    let env = Env::new(SshdOptions::default());
    let cfg = format!(
        "{}{}",
        env.host_block(
            "viaproxy",
            &format!(
                "  ProxyCommand ssh -F {} -W %h:%p target\n",
                env.config.display()
            )
        ),
        env.host_block("target", "")
    );
    env.write_raw_config(&cfg);
    let info = env
        .client("viaproxy")
        .connect_info()
        .await
        .expect("proxycommand");
    assert_eq!(info.hops[0].via, "proxycommand");
    let out = env
        .client("viaproxy")
        .run_script("echo through")
        .await
        .expect("run");
    assert_eq!(out.stdout, b"through\n");

    // A failing ProxyCommand: Unreachable with its stderr.
    env.write_raw_config(&env.host_block("bad", "  ProxyCommand echo nope >&2; exit 1\n"));
    let err = env
        .client("bad")
        .connect_info()
        .await
        .expect_err("bad proxy");
    assert!(matches!(err, SshError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_and_include_are_honoured() {
    let env = Env::new(SshdOptions::default());
    let inc = env.path().join("included.conf");
    std::fs::write(&inc, env.host_block("included", "")).expect("include");
    let cfg = format!(
        "Include {}\n\nMatch originalhost matched\n  HostName 127.0.0.1\n  Port {}\n  User root\n  \
         IdentityFile {}\n  IdentitiesOnly yes\n  IdentityAgent none\n  UserKnownHostsFile {}\n  \
         StrictHostKeyChecking yes\n  ServerAliveInterval 7\n",
        inc.display(),
        env.sshd.port(),
        env.key.private.display(),
        env.known_hosts.display()
    );
    env.write_raw_config(&cfg);
    let chain = resolve("matched", Some(&env.config))
        .await
        .expect("resolve");
    assert_eq!(chain.target.port, env.sshd.port());
    assert_eq!(
        chain.target.server_alive_interval,
        Some(Duration::from_secs(7))
    );
    env.client("matched").connect_info().await.expect("Match");
    env.client("included")
        .connect_info()
        .await
        .expect("Include");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_000_hop_named_by_hostname_gets_its_own_parameters() {
    let env = Env::new(SshdOptions::default());
    // The story: `Host ela` exists, but the ProxyJump names `ela.example`.
    let ela = env.host_block("ela", "");
    let cfg = format!(
        "{ela}{}",
        env.host_block("alps", "  ProxyJump ela.example\n")
    );
    env.write_raw_config(&cfg);
    let chain = resolve("alps", Some(&env.config)).await.expect("resolve");
    let hop = &chain.jumps[0];
    // Same parameters as `ssh -G ela.example`: not ela's.
    let out = std::process::Command::new("ssh")
        .arg("-G")
        .arg("-F")
        .arg(&env.config)
        .arg("ela.example")
        .output()
        .expect("ssh -G");
    let g = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| {
        g.lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")).map(str::to_string))
            .unwrap_or_default()
    };
    assert_eq!(hop.hostname, field("hostname"));
    assert_eq!(hop.user, field("user"));
    assert_eq!(hop.port.to_string(), field("port"));
    assert_eq!(
        hop.hostname, "ela.example",
        "hop must not borrow Host ela's HostName"
    );
    let err = env
        .client("alps")
        .connect_info()
        .await
        .expect_err("ela.example does not resolve");
    assert!(
        matches!(&err, SshError::Unreachable { hop, .. } if hop == "ela.example"),
        "{err}"
    );

    // The fix from the story: `Host ela ela.example`.
    let cfg = format!(
        "{}{}",
        env.host_block("ela ela.example", ""),
        env.host_block("alps", "  ProxyJump ela.example\n")
    );
    env.write_raw_config(&cfg);
    let info = env
        .client("alps")
        .connect_info()
        .await
        .expect("via ela.example");
    assert_eq!(info.first_hop.as_deref(), Some("ela.example"));
    assert_eq!(info.hops.len(), 2);
    assert!(
        info.hops[1].via.starts_with("via ela.example"),
        "{:?}",
        info.hops[1].via
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_is_a_resolve_error_with_ssh_stderr() {
    let env = Env::new(SshdOptions::default());
    env.write_raw_config("Host x\n  NoSuchOption yes\n");
    let err = resolve("x", Some(&env.config))
        .await
        .expect_err("bad config");
    assert!(matches!(err, SshError::Resolve { .. }), "{err}");
    assert!(
        err.to_string().contains("NoSuchOption") || err.to_string().contains("Bad configuration"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_sshd_gives_link_lost_and_the_client_reconnects() {
    let mut env = Env::new(SshdOptions::default());
    let c = env.client("target");
    c.run_script("true").await.expect("first");
    let c2 = c.clone();
    let inflight = tokio::spawn(async move { c2.run_script("sleep 20").await });
    wait_for("the sleep to start", Duration::from_secs(5), || {
        env.sshd.runs("sleep")
    })
    .await;
    env.sshd.kill();
    let t = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(10), inflight)
        .await
        .expect("in-flight call must fail promptly")
        .expect("join");
    let err = r.expect_err("link lost");
    assert!(matches!(err, SshError::LinkLost { .. }), "{err}");
    eprintln!("LinkLost after {:?}: {err}", t.elapsed());
    env.sshd.restart().expect("restart");
    let out = c.run_script("echo back").await.expect("reconnected");
    assert_eq!(out.stdout, b"back\n");
    assert_eq!(c.connect_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_sshd_gives_host_not_responding_within_keepalive_budget() {
    let env = Env::new(SshdOptions::default());
    env.write_config("  ServerAliveInterval 1\n  ServerAliveCountMax 2\n");
    let c = env.client("target");
    c.run_script("true").await.expect("first");
    let c2 = c.clone();
    let inflight = tokio::spawn(async move { c2.run_script("sleep 30").await });
    wait_for("the sleep to start", Duration::from_secs(5), || {
        env.sshd.runs("sleep")
    })
    .await;
    let stopped = env.sshd.stop_sessions();
    let t = Instant::now();
    // ServerAliveInterval × (CountMax + 1) + 2 s
    let (interval, count_max) = (1, 2);
    let budget = Duration::from_secs(interval * (count_max + 1) + 2);
    let r = tokio::time::timeout(budget, inflight).await;
    env.sshd.continue_sessions(&stopped);
    let err = r
        .unwrap_or_else(|_| panic!("no error within {budget:?}"))
        .expect("join")
        .expect_err("must fail");
    eprintln!("HostNotResponding after {:?}: {err}", t.elapsed());
    assert!(matches!(err, SshError::HostNotResponding { .. }), "{err}");
}

/// With no ServerAliveInterval (keepalives every 15 s × 3), an operation
/// on a connection that went silent still fails within the operation's
/// own liveness bound (a few seconds of silence, then a keepalive that is
/// not answered), and the next operation connects afresh at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_on_a_silently_dead_connection_fails_within_the_liveness_bound() {
    let env = Env::new(SshdOptions::default());
    env.write_config("");
    let c = env.client("target");
    c.run_script("true").await.expect("first");
    let stopped = env.sshd.stop_sessions();
    let t = Instant::now();
    let budget = belay_ssh::OP_SILENCE * 2 + Duration::from_secs(3);
    let r = tokio::time::timeout(budget, c.run_script("echo late")).await;
    let waited = t.elapsed();
    let err = r
        .unwrap_or_else(|_| panic!("no error within {budget:?} (waited {waited:?})"))
        .expect_err("must fail");
    eprintln!("failed after {waited:?}: {err}");
    assert!(matches!(err, SshError::HostNotResponding { .. }), "{err}");
    // The old connection is abandoned (its sessions still stopped); a new
    // one answers at once.
    let t = Instant::now();
    let out = c.run_script("echo fresh").await.expect("reconnected");
    env.sshd.continue_sessions(&stopped);
    assert_eq!(out.stdout, b"fresh\n");
    assert_eq!(c.connect_count(), 2);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

/// The liveness bound is on silence, not on how long a script runs: a
/// script that takes several bounds to finish on a live connection ends
/// normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_script_on_a_live_connection_outlives_the_liveness_bound() {
    let env = Env::new(SshdOptions::default());
    env.write_config("");
    let c = env.client("target");
    let secs = belay_ssh::OP_SILENCE.as_secs() * 3;
    let out = c
        .run_script(&format!("sleep {secs}; echo slept"))
        .await
        .expect("a long script on a live link");
    assert_eq!(out.stdout, b"slept\n");
    assert_eq!(c.connect_count(), 1);
}

/// An sshd with `MaxSessions 2`: four streams held open at once, and
/// scripts beside them, all work — the channels beyond the server's limit
/// go over more connections (at most `MAX_CONNECTIONS`), never an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_beyond_max_sessions_go_over_more_connections() {
    let env = Env::new(SshdOptions {
        extra_config: vec!["MaxSessions 2".into()],
        ..SshdOptions::default()
    });
    let c = env.client("target");
    c.run_script("true").await.expect("warm up");
    let idle = Duration::from_secs(30);
    let mut streams = Vec::new();
    for i in 0..4 {
        let s = c
            .exec_stream(&format!("cat; echo {i}"), idle)
            .await
            .unwrap_or_else(|e| panic!("stream {i}: {e}"));
        streams.push(s);
    }
    let out = c.run_script("echo beside").await.expect("a script beside");
    assert_eq!(out.stdout, b"beside\n");
    let connections = c.connections().await;
    assert!(
        (2..=belay_ssh::MAX_CONNECTIONS).contains(&connections),
        "{connections} connections"
    );
    for (i, mut s) in streams.into_iter().enumerate() {
        s.write_all(b"x").await.expect("write");
        s.close_input().await.expect("eof");
        let mut back = Vec::new();
        while let Some(chunk) = s.read().await.expect("read") {
            back.extend_from_slice(&chunk);
        }
        assert_eq!(String::from_utf8_lossy(&back), format!("x{i}\n"));
        assert_eq!(s.finish().await.expect("finish").status, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_gives_one_client_per_host() {
    let env = Env::new(SshdOptions::default());
    let pool = belay_ssh::Pool::new(env.options());
    let a = pool.client("target");
    let b = pool.client("target");
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    a.run_script("true").await.expect("a");
    b.run_script("true").await.expect("b");
    assert_eq!(a.connect_count(), 1);
    let _ = Client::new("x", ClientOptions::default());
}

/// Measures belay against OpenSSH on the same sshd in the same run and
/// prints the figures (the project's benchmark owns the targets; this test
/// only guards against gross regressions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timings_against_openssh() {
    let env = Env::new(SshdOptions::default());
    let ssh = |args: &[&str]| {
        let st = std::process::Command::new("ssh")
            .arg("-F")
            .arg(&env.config)
            .args(args)
            .stdin(std::process::Stdio::null())
            .status()
            .expect("ssh");
        assert!(st.success(), "ssh {args:?} failed");
    };
    let n = 10u32;
    // Cold: new connection + `true`.
    let t = Instant::now();
    for _ in 0..n {
        ssh(&["target", "true"]);
    }
    let ssh_cold = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..n {
        let c = env.client("target");
        c.run_script("true").await.expect("cold");
    }
    let belay_cold = t.elapsed() / n;
    // Warm: ControlMaster vs the persistent shell.
    let ctl = env.path().join("ctl");
    let ctl_s = ctl.display().to_string();
    ssh(&[
        "-o",
        "ControlMaster=yes",
        "-o",
        &format!("ControlPath={ctl_s}"),
        "-o",
        "ControlPersist=60",
        "-fN",
        "target",
    ]);
    ssh(&["-S", &ctl_s, "target", "true"]);
    let t = Instant::now();
    for _ in 0..n {
        ssh(&["-S", &ctl_s, "target", "true"]);
    }
    let ssh_warm = t.elapsed() / n;
    ssh(&["-S", &ctl_s, "-O", "exit", "target"]);
    let c = env.client("target");
    c.run_script("true").await.expect("warm up");
    let t = Instant::now();
    for _ in 0..n {
        c.run_script("true").await.expect("warm");
    }
    let belay_warm = t.elapsed() / n;
    eprintln!(
        "cold: ssh {ssh_cold:?} belay {belay_cold:?} ({:.2}x); warm: ssh -S ctl {ssh_warm:?} belay run_script {belay_warm:?} ({:.2}x)",
        belay_cold.as_secs_f64() / ssh_cold.as_secs_f64(),
        belay_warm.as_secs_f64() / ssh_warm.as_secs_f64()
    );
    assert!(
        belay_warm < ssh_warm,
        "persistent shell slower than ControlMaster"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_certificate_accepted_via_cert_authority_line() {
    crate::common::prereqs();
    let cadir = tempfile::tempdir().expect("tmp");
    let host_ca = KeyPair::generate(cadir.path(), "host_ca", KeyKind::Ed25519).expect("keygen");
    let env = Env::new(SshdOptions {
        host_ca: Some(host_ca.private.clone()),
        ..SshdOptions::default()
    });
    // No plain entry for the host: only the CA line can vouch for it.
    std::fs::write(
        &env.known_hosts,
        format!(
            "@cert-authority * {}\n",
            host_ca.public_line().expect("pub")
        ),
    )
    .expect("kh");
    let info = env
        .client("target")
        .connect_info()
        .await
        .expect("host certificate");
    assert!(matches!(
        info.hops[0].host_key,
        belay_ssh::HostKeyAccepted::Known { line: 1, .. }
    ));
    // A CA line that does not match the signer: refused as unknown.
    let other = KeyPair::generate(cadir.path(), "other_ca", KeyKind::Ed25519).expect("keygen");
    std::fs::write(
        &env.known_hosts,
        format!("@cert-authority * {}\n", other.public_line().expect("pub")),
    )
    .expect("kh");
    let err = env
        .client("target")
        .connect_info()
        .await
        .expect_err("wrong CA");
    assert!(matches!(err, SshError::HostKey(_)), "{err}");
}

/// Scripts of every shape come back whole, each in its own subshell.
async fn scripts_round_trip(c: &Client) {
    let out = c
        .run_script("echo hi; echo err >&2; exit 3")
        .await
        .expect("run");
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout, b"hi\n");
    assert_eq!(out.stderr, b"err\n");

    // Heredocs, quotes, no trailing newline, `cd`/`set -e`/`exit` isolation.
    let script =
        "cd /tmp\nset -e\ncat <<'EOF'\n'quoted' \"double\" $HOME `x`\nEOF\nprintf 'no newline'";
    let out = c.run_script(script).await.expect("heredoc");
    assert_eq!(out.status, 0, "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "'quoted' \"double\" $HOME `x`\nno newline"
    );
    let out = c
        .run_script("pwd; false; echo after")
        .await
        .expect("isolation");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "/root\nafter\n",
        "cd/set -e leaked"
    );
    // stdin of a script is not the protocol stream.
    let out = c.run_script("cat; echo done").await.expect("stdin");
    assert_eq!(out.stdout, b"done\n");

    // A syntax error is the script's own: the shell goes on.
    let out = c.run_script("if then fi (").await.expect("syntax error");
    assert_ne!(out.status, 0);
    assert!(!out.stderr.is_empty(), "{out:?}");
    let out = c.run_script("echo alive").await.expect("after");
    assert_eq!(out.stdout, b"alive\n");
    // Quotes of every kind and a script ending inside a comment.
    let out = c
        .run_script("printf '%s\\n' \"it's\" 'a '\\''b'\\'' c'\n# last ' line")
        .await
        .expect("quotes");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "it's\na 'b' c\n");
}

/// A client with a warm persistent shell, on a host whose login shell
/// takes a second (`.bashrc` sleeps): a test sees whether a step paid it.
async fn warm_client_with_a_slow_login() -> (Env, std::sync::Arc<Client>) {
    let env = Env::new(SshdOptions {
        home_files: vec![(".bashrc".into(), "sleep 1\n".into())],
        ..SshdOptions::default()
    });
    let c = env.client("target");
    c.run_script("true").await.expect("warm up");
    (env, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_stream_carries_bulk_data_both_ways_without_a_login_shell() {
    let (_env, c) = warm_client_with_a_slow_login().await;
    let idle = Duration::from_secs(30);

    // 8 MiB echoed back while it is still being written: the script's
    // output is set aside during writes, so neither side stalls.
    let data: Vec<u8> = (0..8u32 << 20).map(|i| (i * 31 % 251) as u8).collect();
    let t = Instant::now();
    let mut s = c
        .exec_stream("cat; echo done >&2; exit 7", idle)
        .await
        .expect("stream");
    let started = t.elapsed();
    for chunk in data.chunks(100_000) {
        s.write_all(chunk).await.expect("write");
    }
    s.close_input().await.expect("eof");
    let mut back = Vec::new();
    while let Some(c) = s.read().await.expect("read") {
        back.extend_from_slice(&c);
    }
    let end = s.finish().await.expect("finish");
    assert_eq!(back.len(), data.len());
    assert!(back == data, "echoed data differs");
    assert_eq!(end.status, 7);
    assert_eq!(String::from_utf8_lossy(&end.stderr).trim(), "done");
    // The stream took over the warm persistent shell: no 1 s .bashrc.
    assert!(
        started < Duration::from_millis(800),
        "exec_stream paid the login shell: {started:?}"
    );

    // The client replaced the shell in the background; scripts still work.
    let out = c.run_script("echo still").await.expect("run after stream");
    assert_eq!(out.stdout, b"still\n");
}

/// A streamed request's output arrives as the script writes it, and once
/// the caller has read to the end it knows and released the stream, the
/// same shell serves the next script (no login shell paid: `.bashrc`
/// sleeps a second). A script that ends early shows the end marker line
/// with its status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_script_streams_as_it_comes_and_gives_its_shell_back() {
    let (_env, c) = warm_client_with_a_slow_login().await;
    let idle = Duration::from_secs(30);
    let mut s = c
        .stream_script(
            "echo \"$__belay_d\"; for i in 0 1 2; do echo line$i; sleep 0.03; done; echo END",
            idle,
        )
        .await
        .expect("stream");
    let mut got = Vec::new();
    let mut reads = 0;
    let end = loop {
        got.extend(s.read().await.expect("read"));
        reads += 1;
        if let Some(p) = got.windows(4).position(|w| w == b"END\n") {
            break p + 4;
        }
        assert!(reads < 1000, "no END: {:?}", String::from_utf8_lossy(&got));
    };
    let text = String::from_utf8_lossy(&got[..end]).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1..], ["line0", "line1", "line2", "END"], "{text:?}");
    assert!(reads >= 2, "all of it came at once, at the end: {text:?}");
    assert!(text.starts_with('/'), "{text:?}");
    let shell_dir = lines[0].to_string();
    assert!(
        s.release(got[end..].to_vec()).await.expect("release"),
        "the stream's shell did not go back to the pool"
    );
    // Back in the pool (the only shell there: a replacement would take a
    // second to open): the next script runs in that same shell, at once.
    let t = Instant::now();
    let out = c.run_script("echo \"$__belay_d\"").await.expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), shell_dir);
    assert!(
        t.elapsed() < Duration::from_millis(800),
        "paid a login shell"
    );

    // A script that ends before the end its caller knows: the marker line,
    // then the status and the stderr's length.
    let mut s = c
        .stream_script("echo one; echo oops >&2; exit 3", idle)
        .await
        .expect("stream");
    let marker = s.end_marker().to_string();
    let mut got = Vec::new();
    let at = loop {
        got.extend(s.read().await.expect("read"));
        if let Some(p) = got
            .windows(marker.len())
            .position(|w| w == marker.as_bytes())
            && got[p..].contains(&b'\n')
        {
            break p;
        }
    };
    assert_eq!(&got[..at], b"one\n");
    let line = String::from_utf8_lossy(&got[at + marker.len()..]).into_owned();
    assert!(line.starts_with(" 3 5\n"), "{line:?}");
    assert!(s.release(got[at..].to_vec()).await.expect("release"));
    let out = c.run_script("echo after").await.expect("run after");
    assert_eq!(out.stdout, b"after\n");
    assert_eq!(c.connect_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ciphers_from_the_config_are_honoured() {
    // The server speaks only aes128-gcm, which russh's own default list
    // lacks but OpenSSH's (printed by `ssh -G`) has: belay connects, as
    // `ssh` does.
    let env = Env::new(SshdOptions {
        extra_config: vec!["Ciphers aes128-gcm@openssh.com".into()],
        ..SshdOptions::default()
    });
    let c = env.client("target");
    let out = c
        .run_script("echo gcm")
        .await
        .expect("aes128-gcm from ssh -G");
    assert_eq!(out.stdout, b"gcm\n");

    // A user who allows only chacha20 gets no connection here, as with
    // `ssh`: their restriction is honoured, not widened.
    env.write_config("  Ciphers chacha20-poly1305@openssh.com\n");
    let c = env.client("target");
    let refused = c.run_script("true").await;
    assert!(
        refused.is_err(),
        "connected with a cipher the config excludes"
    );
    let ssh = std::process::Command::new("ssh")
        .args(["-F", env.config.to_str().unwrap(), "target", "true"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("ssh");
    assert!(
        !ssh.status.success(),
        "ssh itself connected: the test is wrong"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_host_ca_and_revoked_host_keys_are_refused() {
    crate::common::prereqs();
    let cadir = tempfile::tempdir().expect("tmp");
    let host_ca = KeyPair::generate(cadir.path(), "host_ca", KeyKind::Ed25519).expect("keygen");
    let env = Env::new(SshdOptions {
        host_ca: Some(host_ca.private.clone()),
        ..SshdOptions::default()
    });
    let ca_line = host_ca.public_line().expect("pub");
    // @revoked on the CA that signed the host certificate: refused, as ssh
    // refuses it, even though a @cert-authority line vouches for it.
    std::fs::write(
        &env.known_hosts,
        format!("@cert-authority * {ca_line}\n@revoked * {ca_line}\n"),
    )
    .expect("kh");
    let err = env
        .client("target")
        .connect_info()
        .await
        .expect_err("a revoked CA must be refused");
    assert!(
        matches!(
            err,
            SshError::HostKey(belay_ssh::HostKeyError::Revoked { line: 2, .. })
        ),
        "{err}"
    );

    // RevokedHostKeys, text form: the CA listed there is refused too.
    std::fs::write(&env.known_hosts, format!("@cert-authority * {ca_line}\n")).expect("kh");
    let list = env.path().join("revoked_keys");
    std::fs::write(&list, format!("# retired\n{ca_line}\n")).expect("list");
    env.write_config(&format!("  RevokedHostKeys {}\n", list.display()));
    let err = env
        .client("target")
        .connect_info()
        .await
        .expect_err("RevokedHostKeys must be honoured");
    assert!(
        matches!(
            err,
            SshError::HostKey(belay_ssh::HostKeyError::RevokedByList { line: 2, .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("CA key"), "{err}");

    // A binary KRL belay cannot read: refused (never silently ignored).
    let krl = env.path().join("revoked.krl");
    let st = std::process::Command::new("ssh-keygen")
        .arg("-q")
        .arg("-k")
        .arg("-f")
        .arg(&krl)
        .arg(&host_ca.public)
        .status()
        .expect("ssh-keygen -k");
    assert!(st.success());
    env.write_config(&format!("  RevokedHostKeys {}\n", krl.display()));
    let err = env
        .client("target")
        .connect_info()
        .await
        .expect_err("an unreadable revocation list must refuse");
    assert!(
        matches!(
            err,
            SshError::HostKey(belay_ssh::HostKeyError::RevocationUnchecked { .. })
        ),
        "{err}"
    );

    // An empty list revokes nothing: connected.
    std::fs::write(&list, "").expect("list");
    env.write_config(&format!("  RevokedHostKeys {}\n", list.display()));
    env.client("target")
        .connect_info()
        .await
        .expect("nothing revoked");
}

fn small_limits(env: &Env) -> ClientOptions {
    ClientOptions {
        reply_limits: belay_ssh::ReplyLimits {
            stdout: 1024 * 1024,
            stderr: 1024 * 1024,
        },
        op_timeout: Duration::from_secs(15),
        ..env.options()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_beyond_the_bound_are_a_protocol_error_naming_the_host() {
    let env = Env::new(SshdOptions::default());
    let c = Client::new("target", small_limits(&env));
    let ok = c
        .run_script("head -c 1000000 /dev/zero")
        .await
        .expect("under the bound");
    assert_eq!(ok.stdout.len(), 1_000_000);
    for (script, what) in [
        ("head -c 3000000 /dev/zero", "stdout"),
        ("head -c 3000000 /dev/zero >&2", "stderr"),
    ] {
        let err = c.run_script(script).await.expect_err(what);
        assert!(
            matches!(&err, SshError::Protocol { host, .. } if host == "target"),
            "{what}: {err}"
        );
        let text = err.to_string();
        assert!(text.contains("1 MiB") && text.contains(what), "{text}");
    }
    // The shell that overflowed is discarded; the next script gets a new one.
    let out = c.run_script("echo fine").await.expect("after");
    assert_eq!(out.stdout, b"fine\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_flooding_before_the_shell_starts_is_cut_off() {
    // A hostile account: whatever is asked, it floods 3 MB and then hangs.
    let env = Env::new(SshdOptions {
        extra_config: vec!["ForceCommand head -c 3000000 /dev/zero; sleep 30".into()],
        ..SshdOptions::default()
    });
    let c = Client::new("target", small_limits(&env));
    let t = Instant::now();
    let err = c.run_script("true").await.expect_err("flood");
    assert!(
        matches!(&err, SshError::Protocol { host, .. } if host == "target"),
        "{err}"
    );
    assert!(
        err.to_string().contains("before the shell started"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_script_that_floods_without_reading_is_cut_off() {
    let env = Env::new(SshdOptions::default());
    let c = Client::new("target", small_limits(&env));
    let mut s = c
        .exec_stream(
            "head -c 3000000 /dev/zero; sleep 10",
            Duration::from_secs(15),
        )
        .await
        .expect("stream");
    let data = vec![7u8; 100_000];
    let t = Instant::now();
    let mut err = None;
    for _ in 0..80 {
        if let Err(e) = s.write_all(&data).await {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("8 MB into a script that does not read");
    assert!(
        matches!(&err, SshError::Protocol { host, .. } if host == "target"),
        "{err}"
    );
    assert!(err.to_string().contains("without reading"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
}
