//! Hosts as Linux network namespaces: one jump host reachable from the root
//! namespace and N isolated nodes on a bridge behind it, each with its own
//! real sshd on port 22.
//!
//! ```text
//!  root ns ──veth── <P>-jump (10.231.K.2 / bridge 10.232.K.1) ──bridge── <P>-n1 (10.232.K.11), <P>-n2 (.12) ...
//! ```
//!
//! Forwarding is off in every namespace, so nodes are reachable only *via*
//! the jump host. The root namespace gets `ip route add unreachable
//! 10.232.K.0/24` so a direct attempt fails fast instead of hitting the
//! sandbox's catch-all gateway. `K` is picked per lab (the unreachable route
//! doubles as the claim, so concurrent labs never share a subnet) and names
//! carry a per-run prefix. `Drop` kills the processes in our namespaces,
//! deletes them and the route.

use std::io;
use std::process::Command;

use crate::process::{run, sh, signal};
use crate::sshd::{Sshd, SshdOptions};

/// One namespace host with its sshd.
#[derive(Debug)]
pub struct NsHost {
    /// Namespace name (`<prefix>-jump`, `<prefix>-n1`, ...).
    pub netns: String,
    /// Address other hosts use to reach it (the jump's is the one the root
    /// namespace reaches).
    pub addr: String,
    /// Its sshd (port 22).
    pub sshd: Sshd,
}

/// A jump host and isolated nodes. See the module docs.
#[derive(Debug)]
pub struct NetLab {
    prefix: String,
    subnet: u8,
    /// The jump host (reachable from the root namespace).
    pub jump: NsHost,
    /// Isolated nodes (reachable only through the jump host).
    pub nodes: Vec<NsHost>,
}

/// Namespaces/route created so far, undone on drop even if setup fails.
struct Partial {
    prefix: String,
    subnet: Option<u8>,
    namespaces: Vec<String>,
}

impl Drop for Partial {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            destroy_ns(ns);
        }
        if let Some(k) = self.subnet {
            let _ = sh(&format!("ip route del unreachable 10.232.{k}.0/24"));
        }
        let _ = &self.prefix;
    }
}

fn destroy_ns(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(p) = pid.parse::<u32>() {
                signal(p, libc::SIGKILL);
            }
        }
    }
    let _ = Command::new("ip").args(["netns", "del", ns]).output();
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = io::Read::read_exact(&mut f, &mut b);
    }
    u32::from_ne_bytes(b) ^ std::process::id()
}

impl NetLab {
    /// Creates the lab with `nodes` isolated nodes. `sshd` is the template
    /// for every host's sshd (authorized keys, CA, home files); its
    /// `netns`/`listen`/`port` are set by the lab.
    pub fn start(nodes: usize, sshd: SshdOptions) -> io::Result<NetLab> {
        if nodes > 200 {
            return Err(io::Error::other("at most 200 nodes"));
        }
        let prefix = format!("b{:06x}", random_u32() & 0xff_ffff);
        let mut partial = Partial {
            prefix: prefix.clone(),
            subnet: None,
            namespaces: Vec::new(),
        };
        // Claim a subnet index K with the unreachable route (atomic).
        for _ in 0..64 {
            let k = (random_u32() % 254 + 1) as u8;
            let used = run(Command::new("ip").args([
                "-4",
                "addr",
                "show",
                "to",
                &format!("10.231.{k}.0/24"),
            ]))
            .map(|o| !o.stdout.is_empty())
            .unwrap_or(true);
            if used {
                continue;
            }
            if sh(&format!("ip route add unreachable 10.232.{k}.0/24")).is_ok() {
                partial.subnet = Some(k);
                break;
            }
        }
        let k = partial
            .subnet
            .ok_or_else(|| io::Error::other("no free 10.232.K.0/24 subnet for the lab"))?;
        let jump_ns = format!("{prefix}-jump");
        sh(&format!("ip netns add {jump_ns}"))?;
        partial.namespaces.push(jump_ns.clone());
        sh(&format!(
            "set -e\n\
             ip link add {prefix}j type veth peer name {prefix}jp\n\
             ip link set {prefix}jp netns {jump_ns}\n\
             ip addr add 10.231.{k}.1/24 dev {prefix}j\n\
             ip link set {prefix}j up\n\
             ip -n {jump_ns} link set lo up\n\
             ip -n {jump_ns} addr add 10.231.{k}.2/24 dev {prefix}jp\n\
             ip -n {jump_ns} link set {prefix}jp up\n\
             ip -n {jump_ns} link add br0 type bridge\n\
             ip -n {jump_ns} addr add 10.232.{k}.1/24 dev br0\n\
             ip -n {jump_ns} link set br0 up\n"
        ))?;
        let mut node_names = Vec::new();
        for i in 1..=nodes {
            let ns = format!("{prefix}-n{i}");
            sh(&format!("ip netns add {ns}"))?;
            partial.namespaces.push(ns.clone());
            let ip = 10 + i;
            sh(&format!(
                "set -e\n\
                 ip link add {prefix}n{i} type veth peer name {prefix}n{i}p\n\
                 ip link set {prefix}n{i} netns {jump_ns}\n\
                 ip link set {prefix}n{i}p netns {ns}\n\
                 ip -n {jump_ns} link set {prefix}n{i} master br0 up\n\
                 ip -n {ns} link set lo up\n\
                 ip -n {ns} addr add 10.232.{k}.{ip}/24 dev {prefix}n{i}p\n\
                 ip -n {ns} link set {prefix}n{i}p up\n"
            ))?;
            node_names.push((ns, format!("10.232.{k}.{ip}")));
        }
        let start_in = |ns: &str| {
            let mut o = sshd.clone();
            o.netns = Some(ns.to_string());
            o.listen = Some("0.0.0.0".into());
            o.port = Some(22);
            Sshd::start(o)
        };
        let jump = NsHost {
            netns: jump_ns.clone(),
            addr: format!("10.231.{k}.2"),
            sshd: start_in(&jump_ns)?,
        };
        let mut hosts = Vec::new();
        for (ns, addr) in node_names {
            let sshd = start_in(&ns)?;
            hosts.push(NsHost {
                netns: ns,
                addr,
                sshd,
            });
        }
        // Setup succeeded: hand cleanup over to NetLab's Drop.
        partial.namespaces.clear();
        partial.subnet = None;
        Ok(NetLab {
            prefix,
            subnet: k,
            jump,
            nodes: hosts,
        })
    }

    /// The per-run name prefix of namespaces and links.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The isolated subnet (`10.232.K.0/24`).
    pub fn node_subnet(&self) -> String {
        format!("10.232.{}.0/24", self.subnet)
    }

    /// Runs `sh -c script` inside namespace `ns` (e.g. to add nftables rules
    /// for packet loss or partitions) and returns its stdout.
    /// known_hosts lines for the jump host and every node, by address.
    pub fn known_hosts_lines(&self) -> String {
        std::iter::once(&self.jump)
            .chain(&self.nodes)
            .map(|h| format!("{}\n", h.sshd.known_hosts_line(&h.addr)))
            .collect()
    }

    pub fn exec_in(&self, ns: &str, script: &str) -> io::Result<String> {
        let out = run(Command::new("ip").args(["netns", "exec", ns, "/bin/sh", "-c", script]))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        self.jump.sshd.kill();
        for n in &self.nodes {
            n.sshd.kill();
            destroy_ns(&n.netns);
        }
        destroy_ns(&self.jump.netns);
        let _ = sh(&format!(
            "ip route del unreachable 10.232.{}.0/24",
            self.subnet
        ));
    }
}
