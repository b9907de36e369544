//! The doctor's look at the host's workroot (where job directories live),
//! from the host facts: can this account write there (else no job can be
//! staged: a failure, with the path), and does its filesystem have room —
//! free space and free inodes (a job's output fills a small quota or a
//! tiny tmpfs quickly; a full inode table fails `mkdir` with "no space").

use super::host_facts::HostFacts;
use super::report::{Check, Section};

/// Less free space than this in the workroot's filesystem is a warning.
pub const LOW_SPACE: u64 = 1 << 30;
/// Fewer free inodes than this is a warning.
pub const LOW_INODES: u64 = 10_000;

pub fn checks(facts: &HostFacts, host: &str) -> Vec<Check> {
    let mut out = Vec::new();
    let workroot = facts.get("workroot").unwrap_or("?");
    let dir = facts.get("workroot_dir").unwrap_or(workroot);
    let config_hint =
        format!("or set another in belay's config.toml: `[hosts.{host}] workroot = \"~/…\"`");
    match facts.get("workroot_writable") {
        Some("yes") if dir == workroot => out.push(Check::ok(
            Section::Host,
            host,
            "workroot",
            format!("{workroot} is writable"),
        )),
        Some("yes") => out.push(Check::ok(
            Section::Host,
            host,
            "workroot",
            format!("{workroot} does not exist yet; belay creates it in {dir}, which is writable"),
        )),
        _ => {
            let why = facts.get("workroot_error").unwrap_or("no answer");
            out.push(
                Check::fail(
                    Section::Host,
                    host,
                    "workroot",
                    format!("cannot write in {dir} (workroot {workroot}): {why}"),
                )
                .remedy(format!(
                    "make {dir} writable for {} on {host}, {config_hint}",
                    facts.get("user").unwrap_or("this account")
                )),
            );
        }
    }
    let Some(fs) = facts.get("fs").and_then(Fs::parse) else {
        out.push(Check::warn(
            Section::Host,
            host,
            "free space",
            format!("could not read the filesystem of {dir} (`stat -f`)"),
        ));
        return out;
    };
    let free = fs.block_size * fs.blocks_free;
    let total = fs.block_size * fs.blocks;
    let seen = format!(
        "{} free of {} in {dir} ({})",
        bytes(free),
        bytes(total),
        fs.kind
    );
    out.push(if free < LOW_SPACE {
        Check::warn(Section::Host, host, "free space", seen).remedy(format!(
            "job outputs may fill it: free space there, {config_hint} on a larger filesystem"
        ))
    } else {
        Check::ok(Section::Host, host, "free space", seen)
    });
    out.push(if fs.inodes == 0 {
        Check::ok(
            Section::Host,
            host,
            "free inodes",
            format!("{} does not count inodes", fs.kind),
        )
    } else if fs.inodes_free < LOW_INODES {
        Check::warn(
            Section::Host,
            host,
            "free inodes",
            format!(
                "{} inodes free of {} in {dir}",
                fs.inodes_free, fs.inodes
            ),
        )
        .remedy(format!(
            "each job needs a few files: remove old job directories (`belay` keeps its own under the workroot), {config_hint}"
        ))
    } else {
        Check::ok(
            Section::Host,
            host,
            "free inodes",
            format!("{} inodes free of {}", fs.inodes_free, fs.inodes),
        )
    });
    out
}

/// `stat -f -c '%S %b %a %c %d %T'`.
#[derive(Debug, PartialEq, Eq)]
struct Fs {
    block_size: u64,
    blocks: u64,
    blocks_free: u64,
    inodes: u64,
    inodes_free: u64,
    kind: String,
}

impl Fs {
    fn parse(text: &str) -> Option<Fs> {
        let mut f = text.split_whitespace();
        let mut n = || f.next()?.parse::<u64>().ok();
        let (block_size, blocks, blocks_free, inodes, inodes_free) = (n()?, n()?, n()?, n()?, n()?);
        Some(Fs {
            block_size,
            blocks,
            blocks_free,
            inodes,
            inodes_free,
            kind: f.collect::<Vec<_>>().join(" "),
        })
    }
}

/// A byte count for people (binary units).
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Verdict;

    #[test]
    fn a_tiny_tmpfs_is_low_on_space_and_a_full_inode_table_on_inodes() {
        let f = HostFacts::parse(
            "user=u\nworkroot=/w\nworkroot_dir=/w\nworkroot_writable=yes\nfs=4096 256 250 40 3 tmpfs\n",
        );
        let c = checks(&f, "h");
        assert_eq!(c[0].verdict, Verdict::Ok);
        assert_eq!(c[1].verdict, Verdict::Warn);
        assert_eq!(c[1].seen, "1000.0 KiB free of 1.0 MiB in /w (tmpfs)");
        assert_eq!(c[2].verdict, Verdict::Warn);
        assert!(c[2].seen.starts_with("3 inodes free of 40"));
    }

    #[test]
    fn an_unwritable_workroot_fails_with_its_path() {
        let f = HostFacts::parse(
            "user=u\nworkroot=/ro/jobs\nworkroot_dir=/ro\nworkroot_writable=no\nworkroot_error=mktemp: failed: Read-only file system\nfs=4096 1000000 900000 0 0 btrfs\n",
        );
        let c = checks(&f, "h");
        assert_eq!(c[0].verdict, Verdict::Fail);
        assert!(c[0].seen.contains("/ro") && c[0].seen.contains("Read-only"));
        assert!(c[0].remedy.as_ref().unwrap().contains("[hosts.h] workroot"));
        assert_eq!(c[2].seen, "btrfs does not count inodes");
    }
}
