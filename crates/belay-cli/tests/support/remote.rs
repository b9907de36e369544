//! Remote test hosts for the CLI tests: a real sshd (belay-testbed) and an
//! OpenSSH config file that belay is pointed at with BELAY_SSH_CONFIG, the
//! way a user's ~/.ssh/config would be used.

use std::path::PathBuf;

use belay_testbed::{KeyKind, KeyPair, NetLab, Prerequisite, Sshd, SshdOptions, require};

use super::Belay;

pub fn prerequisites() {
    require(&[
        Prerequisite::Root,
        Prerequisite::OpenSsh,
        Prerequisite::IpRoute,
    ])
    .expect("integration tests need root, OpenSSH and iproute2 (scripts/test.sh installs them)");
}

/// `Host` block options every test host shares (belay-testbed's).
pub fn common_options(key: &KeyPair, known_hosts: &std::path::Path) -> String {
    belay_testbed::host_options(key, known_hosts)
}

/// One loopback sshd reachable as `target` (its key already trusted).
pub struct Loopback {
    pub dir: tempfile::TempDir,
    pub sshd: Sshd,
    pub key: KeyPair,
    pub config: PathBuf,
    pub known_hosts: PathBuf,
}

impl Loopback {
    pub fn start() -> Self {
        Self::start_with(Vec::new())
    }

    /// With extra sshd_config lines (e.g. `SetEnv`).
    pub fn start_with(extra_config: Vec<String>) -> Self {
        Self::start_options(SshdOptions {
            extra_config,
            ..SshdOptions::default()
        })
    }

    /// An sshd without the `Subsystem sftp` line: SFTP is refused.
    pub fn start_without_sftp() -> Self {
        Self::start_options(SshdOptions {
            sftp: false,
            ..SshdOptions::default()
        })
    }

    /// With these sshd options (the test key is added to `authorized_keys`).
    pub fn start_options(mut opts: SshdOptions) -> Self {
        prerequisites();
        let dir = tempfile::Builder::new()
            .prefix("belay-cli-remote.")
            .tempdir()
            .expect("tmp");
        let key = KeyPair::generate(dir.path(), "id", KeyKind::Ed25519).expect("keygen");
        opts.authorized_keys.push(key.public_line().expect("pub"));
        let sshd = Sshd::start(opts).expect("sshd");
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!("{}\n", sshd.known_hosts_line("127.0.0.1")),
        )
        .expect("known_hosts");
        let common = common_options(&key, &known_hosts);
        let port = sshd.port();
        let config = dir.path().join("ssh_config");
        std::fs::write(
            &config,
            format!(
                "Host target\n  HostName 127.0.0.1\n  Port {port}\n{common}\
                 Host closed\n  HostName 127.0.0.1\n  Port 1\n{common}"
            ),
        )
        .expect("config");
        Self {
            dir,
            sshd,
            key,
            config,
            known_hosts,
        }
    }

    /// A belay whose OpenSSH config is this host's.
    pub fn belay(&self) -> Belay {
        Belay::new().with_env("BELAY_SSH_CONFIG", self.config.to_str().expect("utf8"))
    }

    /// Run a command inside the sshd's private mount namespace (what every
    /// SSH session on this host sees: its `/root` is a tmpfs, and mounts made
    /// here are invisible outside). Panics unless it succeeds.
    pub fn in_namespace(&self, args: &[&str]) -> std::process::Output {
        let mut c = std::process::Command::new("nsenter");
        c.arg("-t")
            .arg(self.sshd.pid().to_string())
            .arg("-m")
            .arg("--")
            .args(args);
        let out = super::run_with_deadline(c, std::time::Duration::from_secs(30));
        assert!(
            out.status.success(),
            "nsenter {args:?}: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `path` (absolute) as the remote host's sessions see it, readable from
    /// the test (`/proc/PID/root` of the sshd, which follows its mounts).
    pub fn remote_view(&self, path: &std::path::Path) -> PathBuf {
        let rel = path.strip_prefix("/").expect("an absolute path");
        PathBuf::from(format!("/proc/{}/root", self.sshd.pid())).join(rel)
    }

    /// Wait (10 s) until no session process is left below the sshd: after
    /// a killed client, the remote side of its connection has finished.
    pub fn wait_sessions_gone(&self) {
        let ok = super::poll(std::time::Duration::from_secs(10), || {
            self.sshd.session_pids().is_empty()
        });
        assert!(
            ok,
            "sshd sessions still running: {:?}",
            self.sshd.session_pids()
        );
    }

    /// A `Host ALIAS` block for this sshd that logs in as `user` (a
    /// non-root account: what an ordinary user can and cannot read).
    pub fn add_user_host(&self, alias: &str, user: &belay_testbed::TestUser) {
        let common = common_options(&self.key, &self.known_hosts);
        self.add_hosts(&format!(
            "Host {alias}\n  HostName 127.0.0.1\n  Port {}\n  User {}\n{common}",
            self.sshd.port(),
            user.name()
        ));
    }

    /// Append `Host` blocks to the config.
    pub fn add_hosts(&self, blocks: &str) {
        let mut c = std::fs::read_to_string(&self.config).expect("config");
        c.push_str(blocks);
        std::fs::write(&self.config, c).expect("config");
    }
}

/// A jump host and two isolated nodes in network namespaces.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub lab: NetLab,
    pub config: PathBuf,
}

impl Lab {
    pub fn start() -> Self {
        prerequisites();
        let dir = tempfile::Builder::new()
            .prefix("belay-cli-netns.")
            .tempdir()
            .expect("tmp");
        let key = KeyPair::generate(dir.path(), "id", KeyKind::Ed25519).expect("keygen");
        let lab = NetLab::start(
            2,
            SshdOptions {
                authorized_keys: vec![key.public_line().expect("pub")],
                ..SshdOptions::default()
            },
        )
        .expect("netlab");
        let kh = dir.path().join("known_hosts");
        std::fs::write(&kh, lab.known_hosts_lines()).expect("known_hosts");
        let common = common_options(&key, &kh);
        let k = lab
            .node_subnet()
            .split('.')
            .nth(2)
            .unwrap_or("0")
            .to_string();
        let cfg = format!(
            "Host jump\n  HostName {j}\n{common}\
             Host deadjump\n  HostName 10.232.{k}.99\n{common}\
             Host node1\n  HostName {n1}\n  ProxyJump jump\n{common}\
             Host node1-direct\n  HostName {n1}\n{common}\
             Host node2\n  HostName {n2}\n  ProxyJump jump,node1\n{common}\
             Host node1-via-dead\n  HostName {n1}\n  ProxyJump deadjump\n{common}",
            j = lab.jump.addr,
            n1 = lab.nodes[0].addr,
            n2 = lab.nodes[1].addr,
        );
        let config = dir.path().join("ssh_config");
        std::fs::write(&config, cfg).expect("config");
        Self { dir, lab, config }
    }

    pub fn belay(&self) -> Belay {
        Belay::new().with_env("BELAY_SSH_CONFIG", self.config.to_str().expect("utf8"))
    }
}
