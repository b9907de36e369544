//! Shared set-up for belay-ssh's integration tests: a real loopback sshd,
//! a client key, a known_hosts file and an ssh config file in a private
//! temporary directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use belay_ssh::{Client, ClientOptions};
use belay_testbed::{HostBlock, KeyKind, KeyPair, Prerequisite, Sshd, SshdOptions, require};

pub fn prereqs() {
    require(&[Prerequisite::Root, Prerequisite::OpenSsh]).expect("test prerequisites");
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub key: KeyPair,
    pub sshd: Sshd,
    pub known_hosts: PathBuf,
    pub config: PathBuf,
}

impl Env {
    /// A loopback sshd authorizing a fresh ed25519 key; known_hosts holds
    /// its key; config has `Host target` with strict checking.
    pub fn new(mut opts: SshdOptions) -> Env {
        prereqs();
        let dir = tempfile::Builder::new()
            .prefix("belay-ssh-test.")
            .tempdir()
            .expect("tempdir");
        let key = KeyPair::generate(dir.path(), "id_test", KeyKind::Ed25519).expect("keygen");
        opts.authorized_keys.push(key.public_line().expect("pub"));
        let sshd = Sshd::start(opts).expect("start sshd");
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!("{}\n", sshd.known_hosts_line("127.0.0.1")),
        )
        .expect("kh");
        let config = dir.path().join("ssh_config");
        let env = Env {
            dir,
            key,
            sshd,
            known_hosts,
            config,
        };
        env.write_config("");
        env
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The `Host target` block plus `extra` (more blocks or options for
    /// `Host *` at the end).
    pub fn host_block(&self, alias: &str, extra_opts: &str) -> String {
        let block = HostBlock::new(alias)
            .hostname("127.0.0.1")
            .port(self.sshd.port())
            .test_client(&self.key, &self.known_hosts)
            .without("ConnectTimeout");
        format!("{block}{extra_opts}")
    }

    pub fn write_config(&self, extra: &str) {
        let text = format!("{}{extra}", self.host_block("target", ""));
        std::fs::write(&self.config, text).expect("write config");
    }

    pub fn write_raw_config(&self, text: &str) {
        std::fs::write(&self.config, text).expect("write config");
    }

    pub fn options(&self) -> ClientOptions {
        ClientOptions {
            config_file: Some(self.config.clone()),
            ..ClientOptions::default()
        }
    }

    pub fn client(&self, alias: &str) -> Arc<Client> {
        Arc::new(Client::new(alias, self.options()))
    }
}

/// Polls `f` every 20 ms until true, failing the test after `deadline`.
pub async fn wait_for(what: &str, deadline: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !f() {
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The SHA256 fingerprint of a public key line, as `ssh-keygen -lf` prints it.
pub fn keygen_fingerprint(pub_line: &str, dir: &Path) -> String {
    let f = dir.join("fp.pub");
    std::fs::write(&f, format!("{pub_line}\n")).expect("write");
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&f)
        .output()
        .expect("ssh-keygen");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_string()
}
