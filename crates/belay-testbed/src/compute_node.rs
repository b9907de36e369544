//! A Slurm compute node apart from the login node: a network namespace of
//! its own (hostname `node1`, its own loopback, reachable only over a veth
//! pair from the root namespace) whose slurmd shares the login node's
//! mount namespace — the shared home of a real cluster. What runs there
//! sees the login node's files but not its ports: a port a job opens on
//! the node's loopback is out of reach of the login node's `direct-tcpip`,
//! as on a cluster whose compute nodes are isolated.
//!
//! The subnet `10.233.K.0/24` is claimed with an `unreachable` route in the
//! root namespace (concurrent clusters pick another K); the veth pair
//! carries `10.233.K.1/30` (root side, where slurmctld is reached) and
//! `10.233.K.2/30` (the node). `Drop` kills what runs in the namespace,
//! deletes it, the veth pair and the claim.

use std::io;
use std::process::Command;

use crate::process::{sh, signal};

/// The node's name (`NodeName`, and its hostname in its UTS namespace).
pub const NODE_NAME: &str = "node1";

#[derive(Debug)]
pub struct ComputeNet {
    /// The network namespace (`/run/netns/<netns>`).
    pub netns: String,
    /// The root namespace's end of the veth pair.
    veth: String,
    subnet: u8,
}

impl ComputeNet {
    /// Claims a subnet, creates the namespace and the veth pair.
    pub fn create() -> io::Result<ComputeNet> {
        let tag = format!("{:06x}", random_u32() & 0xff_ffff);
        let mut subnet = None;
        for i in 0..250u32 {
            let k = ((random_u32() + i) % 250 + 1) as u8;
            if sh(&format!("ip route add unreachable 10.233.{k}.0/24")).is_ok() {
                subnet = Some(k);
                break;
            }
        }
        let k = subnet.ok_or_else(|| io::Error::other("no free 10.233.K.0/24 subnet"))?;
        let net = ComputeNet {
            netns: format!("bsn{tag}"),
            veth: format!("bsv{tag}"),
            subnet: k,
        };
        sh(&format!(
            "set -e\n\
             ip netns add {ns}\n\
             ip link add {v}a type veth peer name {v}b\n\
             ip link set {v}b netns {ns}\n\
             ip addr add 10.233.{k}.1/30 dev {v}a\n\
             ip link set {v}a up\n\
             ip -n {ns} addr add 10.233.{k}.2/30 dev {v}b\n\
             ip -n {ns} link set {v}b up\n\
             ip -n {ns} link set lo up\n",
            ns = net.netns,
            v = net.veth,
        ))?;
        Ok(net)
    }

    /// Where the node reaches the root namespace (slurmctld).
    pub fn controller_addr(&self) -> String {
        format!("10.233.{}.1", self.subnet)
    }

    /// The node's address (`NodeAddr`).
    pub fn node_addr(&self) -> String {
        format!("10.233.{}.2", self.subnet)
    }

    /// Pids of the processes in the node's network namespace.
    pub fn pids(&self) -> Vec<u32> {
        Command::new("ip")
            .args(["netns", "pids", &self.netns])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for ComputeNet {
    fn drop(&mut self) {
        for pid in self.pids() {
            signal(pid, libc::SIGKILL);
        }
        let _ = sh(&format!("ip netns del {}", self.netns));
        let _ = sh(&format!("ip link del {}a", self.veth));
        let _ = sh(&format!(
            "ip route del unreachable 10.233.{}.0/24",
            self.subnet
        ));
    }
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = io::Read::read_exact(&mut f, &mut b);
    }
    u32::from_le_bytes(b)
}
