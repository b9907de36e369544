//! `belay doctor HOST`, the on-host half: server capabilities (SFTP,
//! forwarding, MaxSessions), the login shell (noise, cost) and the host
//! (workroot, space, inodes, logind, tools, Slurm commands, jobs running
//! elsewhere). Each fault is really set up — an sshd_config line, a noisy
//! or slow `.bashrc` in the sshd user's home, a tiny or read-only tmpfs
//! mounted as the workroot, a logind.conf on the host, a PATH without
//! Slurm, another hostname — and each verdict and remedy is read from
//! `belay doctor HOST --json`.

use std::time::Duration;

use serde_json::Value;

use crate::support::remote::{Lab, Loopback};
use crate::support::slurm::{Cluster, NoSbatch};
use crate::support::*;

/// The one check named `name` on `hop` (the report must have it).
fn check<'a>(report: &'a Value, hop: &str, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["check"] == name && c["hop"] == hop)
        .unwrap_or_else(|| panic!("no check '{name}' on {hop}: {report:#}"))
}

fn verdict<'a>(report: &'a Value, hop: &str, name: &str) -> &'a str {
    check(report, hop, name)["verdict"]
        .as_str()
        .expect("verdict")
}

fn seen(report: &Value, hop: &str, name: &str) -> String {
    check(report, hop, name)["seen"]
        .as_str()
        .expect("seen")
        .to_string()
}

fn remedy(report: &Value, hop: &str, name: &str) -> String {
    check(report, hop, name)["remedy"]
        .as_str()
        .unwrap_or_else(|| panic!("'{name}' has no remedy: {report:#}"))
        .to_string()
}

/// `doctor HOST --json` whatever its exit status (1 when a check failed).
fn doctor(b: &Belay, host: &str) -> (Option<i32>, Value) {
    let out = b.cmd(["doctor", host, "--json"]).output();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor {host}: not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr_of(&out)
        )
    });
    (out.status.code(), v)
}

const ON_HOST: [&str; 15] = [
    "sftp",
    "tcp forwarding",
    "stream-local forwarding",
    "MaxSessions",
    "shell",
    "start-up output",
    "login shell",
    "workroot",
    "free space",
    "free inodes",
    "clock",
    "logind",
    "tmux",
    "python3",
    "jobs elsewhere",
];

#[test]
fn a_healthy_host_passes_every_on_host_check_within_five_seconds() {
    let host = Loopback::start();
    let b = host.belay();
    let report = b.cmd(["doctor", "target", "--json"]).json();
    for name in ON_HOST {
        assert_eq!(verdict(&report, "target", name), "ok", "{name}: {report:#}");
    }
    assert!(seen(&report, "target", "stream-local forwarding").contains("test socket"));
    assert!(seen(&report, "target", "tcp forwarding").contains("not 'prohibited'"));
    assert_eq!(
        seen(&report, "target", "MaxSessions"),
        "at least 10 sessions per connection"
    );
    assert!(seen(&report, "target", "clock").starts_with("within "));
    let total = report["total_ms"].as_f64().unwrap();
    eprintln!("doctor of a healthy loopback host: {total:.0} ms");
    assert!(
        total <= 5000.0,
        "a healthy host takes at most 5 s: {report:#}"
    );
    // The test socket's listener was stopped: no process is left in the
    // host's mount namespace that runs it.
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    let host_ns = ns(&host.sshd.pid().to_string());
    let listeners = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
            .filter(|p| ns(p) == host_ns)
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.contains("socket.AF_UNIX"))
            })
            .count()
    };
    assert!(
        poll(Duration::from_secs(5), || listeners() == 0),
        "the doctor left its test listener running"
    );
}

#[test]
fn sftp_absent_is_a_warning_that_belay_still_copies_through_the_shell() {
    let host = Loopback::start_without_sftp();
    let report = host.belay().cmd(["doctor", "target", "--json"]).json();
    assert_eq!(report["verdict"], "warn");
    assert_eq!(verdict(&report, "target", "sftp"), "warn");
    assert!(seen(&report, "target", "sftp").contains("sftp"));
    assert!(remedy(&report, "target", "sftp").contains("belay still copies through the shell"));
}

#[test]
fn forwarding_refused_by_the_target_is_named_with_its_setting() {
    let host = Loopback::start_with(vec![
        "AllowTcpForwarding no".into(),
        "AllowStreamLocalForwarding no".into(),
    ]);
    let report = host.belay().cmd(["doctor", "target", "--json"]).json();
    assert_eq!(verdict(&report, "target", "tcp forwarding"), "warn");
    assert!(seen(&report, "target", "tcp forwarding").contains("AllowTcpForwarding"));
    assert!(remedy(&report, "target", "tcp forwarding").contains("AllowTcpForwarding yes"));
    assert_eq!(
        verdict(&report, "target", "stream-local forwarding"),
        "warn"
    );
    assert!(
        seen(&report, "target", "stream-local forwarding").contains("AllowStreamLocalForwarding")
    );
    assert!(remedy(&report, "target", "stream-local forwarding").contains("belay app"));
}

#[test]
fn a_jump_hop_that_carries_the_chain_forwards_tcp() {
    let lab = Lab::start();
    let report = lab.belay().cmd(["doctor", "node1", "--json"]).json();
    assert_eq!(verdict(&report, "jump", "tcp forwarding"), "ok");
    assert!(seen(&report, "jump", "tcp forwarding").contains("node1"));
    assert_eq!(verdict(&report, "node1", "tcp forwarding"), "ok");
}

#[test]
fn a_low_max_sessions_is_a_warning_saying_what_belay_does() {
    let host = Loopback::start_with(vec!["MaxSessions 2".into()]);
    let report = host.belay().cmd(["doctor", "target", "--json"]).json();
    assert_eq!(verdict(&report, "target", "MaxSessions"), "warn");
    assert!(
        seen(&report, "target", "MaxSessions").contains("with 2 open"),
        "{report:#}"
    );
    let fix = remedy(&report, "target", "MaxSessions");
    assert!(fix.contains("belay keeps below it") && fix.contains("MaxSessions"));
    // The other checks still ran within the limit.
    assert_eq!(verdict(&report, "target", "shell"), "ok");
    assert_eq!(verdict(&report, "target", "sftp"), "ok");
}

fn with_bashrc(bashrc: &str) -> Loopback {
    Loopback::start_options(belay_testbed::SshdOptions {
        home_files: vec![(".bashrc".into(), bashrc.into())],
        ..Default::default()
    })
}

#[test]
fn a_noisy_bashrc_is_named_and_belay_is_immune_to_it() {
    let host = with_bashrc("echo 'Welcome to the cluster'\n");
    let report = host.belay().cmd(["doctor", "target", "--json"]).json();
    assert_eq!(verdict(&report, "target", "start-up output"), "warn");
    assert!(
        seen(&report, "target", "start-up output").contains("'Welcome to the cluster'"),
        "{report:#}"
    );
    let fix = remedy(&report, "target", "start-up output");
    assert!(fix.contains("~/.bashrc"), "{fix}");
    assert!(
        fix.contains("breaks scp/rsync/sftp for other tools"),
        "{fix}"
    );
    assert!(fix.contains("belay is immune"), "{fix}");
    // sshd starts sftp-server through that shell too: the doctor says why
    // SFTP fails.
    assert_eq!(verdict(&report, "target", "sftp"), "warn");
    assert!(remedy(&report, "target", "sftp").contains("start-up output"));
    // Immune indeed: belay's scripts ran through that shell.
    assert_eq!(verdict(&report, "target", "shell"), "ok");
    assert_eq!(verdict(&report, "target", "workroot"), "ok");
}

#[test]
fn a_slow_bashrc_is_timed_and_named() {
    let host = with_bashrc("sleep 0.7\n");
    let report = host.belay().cmd(["doctor", "target", "--json"]).json();
    let c = check(&report, "target", "login shell");
    assert_eq!(c["verdict"], "warn", "{report:#}");
    assert!(c["ms"].as_f64().unwrap() >= 700.0, "{c:#}");
    assert!(c["seen"].as_str().unwrap().contains("starts slowly"));
    assert!(remedy(&report, "target", "login shell").contains("~/.bashrc"));
    assert_eq!(verdict(&report, "target", "start-up output"), "ok");
}

/// A belay whose config puts `target`'s workroot at `path`.
fn with_workroot(host: &Loopback, path: &str) -> Belay {
    let b = host.belay();
    std::fs::write(
        b.home.path().join("config.toml"),
        format!("[hosts.target]\nworkroot = \"{path}\"\n"),
    )
    .unwrap();
    b
}

#[test]
fn a_tiny_tmpfs_workroot_is_low_on_space_and_inodes() {
    let host = Loopback::start();
    let d = tempfile::Builder::new()
        .prefix("belay-tiny.")
        .tempdir()
        .unwrap();
    let path = d.path().to_str().unwrap();
    host.in_namespace(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=1m,nr_inodes=64",
        "tmpfs",
        path,
    ]);
    let b = with_workroot(&host, path);
    let report = b.cmd(["doctor", "target", "--json"]).json();
    assert_eq!(verdict(&report, "target", "workroot"), "ok");
    assert_eq!(verdict(&report, "target", "free space"), "warn");
    assert!(
        seen(&report, "target", "free space").contains(&format!("of 1.0 MiB in {path} (tmpfs)")),
        "{report:#}"
    );
    assert!(remedy(&report, "target", "free space").contains("[hosts.target] workroot"));
    assert_eq!(verdict(&report, "target", "free inodes"), "warn");
    assert!(seen(&report, "target", "free inodes").contains("inodes free of 64"));
}

#[test]
fn a_read_only_workroot_fails_with_its_path() {
    let host = Loopback::start();
    let d = tempfile::Builder::new()
        .prefix("belay-ro.")
        .tempdir()
        .unwrap();
    let path = d.path().to_str().unwrap();
    host.in_namespace(&["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", path]);
    let b = with_workroot(&host, &format!("{path}/jobs"));
    let (code, report) = doctor(&b, "target");
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["verdict"], "fail");
    assert_eq!(report["failed_hop"], "target");
    assert_eq!(verdict(&report, "target", "workroot"), "fail");
    let s = seen(&report, "target", "workroot");
    assert!(s.contains(path) && s.contains("Read-only"), "{s}");
    assert!(remedy(&report, "target", "workroot").contains(path));
}

#[test]
fn kill_user_processes_in_logind_conf_is_a_warning_with_the_remedy() {
    // This host runs no systemd-logind (loginctl cannot answer), so the
    // doctor reads logind.conf: a real file on the host, written into an
    // overlay of /etc in the sshd's mount namespace (the machine's own
    // /etc is untouched).
    let host = Loopback::start();
    let layers = tempfile::tempdir().unwrap();
    let (upper, work) = (layers.path().join("u"), layers.path().join("w"));
    std::fs::create_dir_all(&upper).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    host.in_namespace(&[
        "mount",
        "-t",
        "overlay",
        "overlay",
        "-o",
        &format!(
            "lowerdir=/etc,upperdir={},workdir={}",
            upper.display(),
            work.display()
        ),
        "/etc",
    ]);
    let write = |conf: &str| {
        host.in_namespace(&[
            "sh",
            "-c",
            &format!(
                "mkdir -p /etc/systemd/logind.conf.d && rm -f /etc/systemd/logind.conf && printf '%s' '{conf}' > /etc/systemd/logind.conf.d/50-site.conf"
            ),
        ]);
    };
    // logind spares root unless told otherwise.
    write("[Login]\nKillUserProcesses=yes\n");
    let b = host.belay();
    let report = b.cmd(["doctor", "target", "--json"]).json();
    assert_eq!(verdict(&report, "target", "logind"), "ok", "{report:#}");
    assert!(seen(&report, "target", "logind").contains("root is excluded by default"));

    write("[Login]\nKillUserProcesses=yes\nKillExcludeUsers=\n");
    let report = b.cmd(["doctor", "target", "--json"]).json();
    assert_eq!(verdict(&report, "target", "logind"), "warn", "{report:#}");
    let s = seen(&report, "target", "logind");
    assert!(
        s.contains("KillUserProcesses=yes (/etc/systemd/logind.conf.d/50-site.conf)"),
        "{s}"
    );
    assert!(remedy(&report, "target", "logind").contains("loginctl enable-linger root"));
}

#[test]
fn a_slurm_host_has_its_commands_checked() {
    let cluster = Cluster::start();
    let report = cluster.belay().cmd(["doctor", "cluster", "--json"]).json();
    assert_eq!(
        verdict(&report, "cluster", "slurm commands"),
        "ok",
        "{report:#}"
    );
    assert!(
        seen(&report, "cluster", "slurm commands").starts_with("sbatch, squeue, scontrol, scancel")
    );

    let bare = NoSbatch::start();
    let (code, report) = doctor(&bare.belay(), "nosbatch");
    assert_eq!(code, Some(1));
    assert_eq!(verdict(&report, "nosbatch", "slurm commands"), "fail");
    assert_eq!(
        seen(&report, "nosbatch", "slurm commands"),
        "sbatch, squeue, scontrol, scancel not on the PATH belay's commands get"
    );
    assert!(remedy(&report, "nosbatch", "slurm commands").contains("module load slurm"));
    // A host with the direct scheduler is not asked for them.
    let host = Loopback::start();
    let report = host.belay().cmd(["doctor", "target", "--json"]).json();
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["check"] != "slurm commands")
    );
}

#[test]
fn local_gets_the_shell_and_host_checks_and_no_ssh() {
    let b = Belay::new();
    let report = b.cmd(["doctor", "local", "--json"]).json();
    assert_eq!(verdict(&report, "local", "ssh"), "ok");
    assert!(seen(&report, "local", "ssh").contains("no SSH"));
    for name in ["sftp", "tcp forwarding", "MaxSessions"] {
        assert!(
            report["checks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["check"] != name),
            "{name} on local: {report:#}"
        );
    }
    for name in &ON_HOST[4..] {
        assert_eq!(verdict(&report, "local", name), "ok", "{name}: {report:#}");
    }
}

#[test]
fn jobs_running_on_another_node_are_named_with_how_to_reach_them() {
    // A shared home behind a round-robin alias: the doctor's connection
    // lands on another node (here another UTS namespace, another hostname)
    // than the one the job runs on.
    let b = Belay::new();
    let id = b.submit(&["local", "--name", "train", "--", "sleep 300"]);
    let job = b.wait_state(&id, "running", Duration::from_secs(10));
    let sid: u32 = job["scheduler_id"].as_str().unwrap().parse().unwrap();
    let here = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let here = here.trim();

    let report = b.cmd(["doctor", "local", "--json"]).json();
    assert_eq!(verdict(&report, "local", "jobs elsewhere"), "ok");
    assert!(seen(&report, "local", "jobs elsewhere").contains("the 1 running job"));

    let mut c = std::process::Command::new("unshare");
    c.args([
        "-u",
        "sh",
        "-c",
        "hostname belay-other-node && exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_belay"),
        "doctor",
        "local",
        "--json",
    ])
    .env("BELAY_HOME", b.home.path())
    .env("BELAY_NO_DAEMON", "1")
    .env("HOME", b.scratch("home"));
    let out = run_with_deadline(c, Duration::from_secs(60));
    assert!(out.status.success(), "{}", stderr_of(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        verdict(&report, "local", "jobs elsewhere"),
        "warn",
        "{report:#}"
    );
    assert_eq!(
        seen(&report, "local", "jobs elsewhere"),
        format!("1 of 1 running: {id} (train) runs on {here}")
    );
    let fix = remedy(&report, "local", "jobs elsewhere");
    assert!(
        fix.contains("reached belay-other-node") && fix.contains(&format!("reach {here} directly")),
        "{fix}"
    );
    assert_eq!(b.job(&id)["state"], "running", "the doctor only looks");
    b.ok(&["cancel", "--grace", "1", &id]);
    assert!(poll(Duration::from_secs(5), || session_members(sid).is_empty()));
}

#[test]
fn a_host_clock_half_a_minute_ahead_is_a_warning() {
    // The host's `date` (first on the PATH its shells get) reads a clock
    // 30 s ahead of this machine's.
    let host = Loopback::start_options(belay_testbed::SshdOptions {
        home_files: vec![
            (".bashrc".into(), "PATH=$HOME/bin:$PATH\n".into()),
            (
                "bin/date".into(),
                "#!/bin/sh\nexec /bin/date -d \"@$(( $(/bin/date +%s) + 30 ))\" \"$@\"\n".into(),
            ),
        ],
        ..Default::default()
    });
    host.in_namespace(&["chmod", "755", "/root/bin/date"]);
    let report = host.belay().cmd(["doctor", "target", "--json"]).json();
    assert_eq!(verdict(&report, "target", "clock"), "warn", "{report:#}");
    let s = seen(&report, "target", "clock");
    let secs: f64 = s
        .strip_prefix("the host's clock is ")
        .and_then(|r| r.strip_suffix(" s ahead of this machine's"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{s}"));
    assert!((28.0..=31.0).contains(&secs), "{s}");
    assert!(remedy(&report, "target", "clock").contains("time sync"));
}
