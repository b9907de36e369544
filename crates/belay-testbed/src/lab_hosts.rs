//! A [`NetLab`] as a client sees it: a key every host accepts, a
//! known_hosts that trusts them all, and an ssh_config naming them — the
//! set-up both the SSH engine's and the CLI's jump-chain tests start from.
//!
//! Aliases: `jump`; `node1` (via `jump`); `node1-direct` (no jump: must
//! fail, the node is isolated); `node2` (via `jump,node1`); `deadjump` (an
//! address nothing answers on) and `node1-via-dead` (via it).

use std::io;
use std::path::PathBuf;

use crate::{HostBlock, KeyKind, KeyPair, NetLab, SshdOptions};

/// See the module docs. Dropping it tears the lab down.
#[derive(Debug)]
pub struct LabHosts {
    pub lab: NetLab,
    pub key: KeyPair,
    pub known_hosts: PathBuf,
    /// The ssh_config file (for `ssh -G -F` / `BELAY_SSH_CONFIG`).
    pub config: PathBuf,
    pub dir: tempfile::TempDir,
}

impl LabHosts {
    /// A lab with two isolated nodes.
    pub fn start() -> io::Result<LabHosts> {
        let dir = tempfile::Builder::new().prefix("belay-lab.").tempdir()?;
        let key = KeyPair::generate(dir.path(), "id", KeyKind::Ed25519)?;
        let lab = NetLab::start(
            2,
            SshdOptions {
                authorized_keys: vec![key.public_line()?],
                ..SshdOptions::default()
            },
        )?;
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(&known_hosts, lab.known_hosts_lines())?;
        let k = lab
            .node_subnet()
            .split('.')
            .nth(2)
            .unwrap_or("0")
            .to_string();
        let (j, n1, n2) = (&lab.jump.addr, &lab.nodes[0].addr, &lab.nodes[1].addr);
        let dead = format!("10.232.{k}.99");
        let blocks = [
            HostBlock::new("jump").hostname(j),
            HostBlock::new("deadjump").hostname(&dead),
            HostBlock::new("node1").hostname(n1).proxy_jump("jump"),
            HostBlock::new("node1-direct").hostname(n1),
            HostBlock::new("node2")
                .hostname(n2)
                .proxy_jump("jump,node1"),
            HostBlock::new("node1-via-dead")
                .hostname(n1)
                .proxy_jump("deadjump"),
        ];
        let text: String = blocks
            .into_iter()
            .map(|b| b.test_client(&key, &known_hosts).to_string())
            .collect();
        let config = dir.path().join("ssh_config");
        std::fs::write(&config, text)?;
        Ok(LabHosts {
            lab,
            key,
            known_hosts,
            config,
            dir,
        })
    }

    /// A block for another alias on this lab, with the shared client
    /// options, appended to the config.
    pub fn add_host(&self, block: HostBlock) -> io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.config)?;
        f.write_all(
            block
                .test_client(&self.key, &self.known_hosts)
                .to_string()
                .as_bytes(),
        )
    }
}
