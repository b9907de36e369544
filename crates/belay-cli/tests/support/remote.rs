//! Remote test hosts for the CLI tests: a real sshd (belay-testbed) and an
//! OpenSSH config file that belay is pointed at with BELAY_SSH_CONFIG, the
//! way a user's ~/.ssh/config would be used.

use std::path::PathBuf;

use belay_testbed::{
    HostBlock, KeyKind, KeyPair, LabHosts, Prerequisite, Sshd, SshdOptions, require,
};

use super::Belay;

pub fn prerequisites() {
    require(&[
        Prerequisite::Root,
        Prerequisite::OpenSsh,
        Prerequisite::IpRoute,
    ])
    .expect("integration tests need root, OpenSSH and iproute2 (scripts/test.sh installs them)");
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
        let port = sshd.port();
        let config = dir.path().join("ssh_config");
        std::fs::write(
            &config,
            format!(
                "{}{}",
                HostBlock::new("target")
                    .hostname("127.0.0.1")
                    .port(port)
                    .test_client(&key, &known_hosts),
                HostBlock::new("closed")
                    .hostname("127.0.0.1")
                    .port(1)
                    .test_client(&key, &known_hosts)
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

    /// A 1 MiB tmpfs at a fresh directory, mounted in the sshd's namespace
    /// only (a disk that fills up, for this host alone).
    pub fn small_disk(&self) -> tempfile::TempDir {
        let d = tempfile::Builder::new()
            .prefix("belay-small.")
            .tempdir()
            .expect("tempdir");
        let path = d.path().to_str().expect("utf8");
        self.in_namespace(&["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", path]);
        let fs = self.in_namespace(&["stat", "-f", "-c", "%T", path]);
        assert_eq!(String::from_utf8_lossy(&fs.stdout).trim(), "tmpfs");
        let out = std::process::Command::new("stat")
            .args(["-f", "-c", "%T", path])
            .output()
            .unwrap();
        assert_ne!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "tmpfs",
            "the mount must stay inside the sshd's namespace"
        );
        d
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

    /// A `Host ALIAS` block for this sshd with the shared client options,
    /// as `block` has them otherwise (user, extra options).
    pub fn add_host(&self, block: HostBlock) {
        self.add_hosts(
            &block
                .hostname("127.0.0.1")
                .port(self.sshd.port())
                .test_client(&self.key, &self.known_hosts)
                .to_string(),
        );
    }

    /// A `Host ALIAS` block for this sshd that logs in as `user` (a
    /// non-root account: what an ordinary user can and cannot read).
    pub fn add_user_host(&self, alias: &str, user: &belay_testbed::TestUser) {
        // The block's own `User` comes first, so it wins over the shared root.
        self.add_host(HostBlock::new(alias).user(user.name()));
    }

    /// Another sshd (with `options`, `key` authorized) reached as `alias`
    /// with `key` and no BatchMode — like a user's interactive config, where
    /// a passphrase or a second factor may be asked; its host key is
    /// added to the shared known_hosts.
    pub fn add_interactive_host(&self, alias: &str, key: &KeyPair, options: SshdOptions) -> Sshd {
        let mut options = options;
        options.authorized_keys.push(key.public_line().unwrap());
        let sshd = Sshd::start(options).unwrap();
        let mut known = std::fs::read_to_string(&self.known_hosts).unwrap();
        known.push_str(&format!("{}\n", sshd.known_hosts_line("127.0.0.1")));
        std::fs::write(&self.known_hosts, known).unwrap();
        self.add_hosts(
            &HostBlock::new(alias)
                .hostname("127.0.0.1")
                .port(sshd.port())
                .test_client(key, &self.known_hosts)
                .without("BatchMode")
                .to_string(),
        );
        sshd
    }

    /// Append `Host` blocks to the config.
    pub fn add_hosts(&self, blocks: &str) {
        let mut c = std::fs::read_to_string(&self.config).expect("config");
        c.push_str(blocks);
        std::fs::write(&self.config, c).expect("config");
    }
}

/// A jump host and two isolated nodes in network namespaces, with the
/// client side (belay-testbed's [`LabHosts`]: aliases `jump`, `node1`,
/// `node2`, `node1-direct`, `deadjump`, `node1-via-dead`).
pub struct Lab(LabHosts);

impl std::ops::Deref for Lab {
    type Target = LabHosts;
    fn deref(&self) -> &LabHosts {
        &self.0
    }
}

impl std::ops::DerefMut for Lab {
    fn deref_mut(&mut self) -> &mut LabHosts {
        &mut self.0
    }
}

impl Lab {
    pub fn start() -> Self {
        prerequisites();
        Lab(LabHosts::start().expect("netlab"))
    }

    pub fn belay(&self) -> Belay {
        Belay::new().with_env("BELAY_SSH_CONFIG", self.config.to_str().expect("utf8"))
    }
}

/// A host that is known but away: an ssh_config alias `later` pointing at a
/// closed port, rewritten to point at a real sshd when it
/// [`Away::comes_back`].
pub struct Away {
    pub host: Loopback,
    pub config: PathBuf,
}

impl Away {
    pub fn start() -> Self {
        let host = Loopback::start();
        let config = host.dir.path().join("ssh_config_later");
        let away = Self { host, config };
        away.point_at(1);
        away
    }

    /// `later` at `port`; `stranger` at the sshd, whose key it does not know.
    pub fn point_at(&self, port: u16) {
        let block = HostBlock::new("later")
            .hostname("127.0.0.1")
            .port(port)
            .test_client(&self.host.key, &self.host.known_hosts);
        let empty = self.host.dir.path().join("known_hosts_empty");
        std::fs::write(&empty, "").expect("known_hosts");
        let stranger = HostBlock::new("stranger")
            .hostname("127.0.0.1")
            .port(self.host.sshd.port())
            .test_client(&self.host.key, &empty);
        std::fs::write(&self.config, format!("{block}{stranger}")).expect("config");
    }

    pub fn comes_back(&self) {
        self.point_at(self.host.sshd.port());
    }

    pub fn belay(&self) -> Belay {
        Belay::new()
            .with_env("BELAY_SSH_CONFIG", self.config.to_str().expect("utf8"))
            .with_env("BELAY_TEST_QUEUE", "1")
    }
}
