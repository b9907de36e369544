//! The doctor's GPU inventory: when the host has `nvidia-smi`, the lines of
//! [`crate::hosts::gpus::QUERY_GPUS`] (from the host facts), read by the
//! shared parser and listed one GPU each. A driver that does not answer is
//! a warning (jobs that need the GPUs will fail there); no `nvidia-smi` is
//! simply no GPUs.

use super::host_facts::HostFacts;
use super::report::{Check, Section};
use crate::hosts::gpus::{Inventory, describe, parse_inventory};

pub fn check(facts: &HostFacts, host: &str) -> Check {
    if facts.command("nvidia-smi").is_none() {
        return Check::ok(
            Section::Host,
            host,
            "gpus",
            "no nvidia-smi (no NVIDIA GPUs)",
        );
    }
    let lines: Vec<&str> = facts.all("gpu").collect();
    let status = facts.number("gpu_status").unwrap_or(0) as i32;
    let gpus = match parse_inventory(status, &lines.join("\n")) {
        Inventory::Gpus(g) if !g.is_empty() => g,
        Inventory::Failed(e) => {
            return Check::warn(Section::Host, host, "gpus", e).remedy(format!(
                "run `nvidia-smi` on {host}: the NVIDIA driver does not answer, so jobs that need a GPU will fail there"
            ));
        }
        _ => {
            return Check::warn(Section::Host, host, "gpus", "nvidia-smi lists no GPU").remedy(
                format!("run `nvidia-smi` on {host}: it is installed but sees no GPU"),
            );
        }
    };
    let listed = gpus.iter().map(describe).collect::<Vec<_>>().join("; ");
    Check::ok(
        Section::Host,
        host,
        "gpus",
        format!(
            "{} GPU{}: {listed}",
            gpus.len(),
            if gpus.len() == 1 { "" } else { "s" }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Verdict;

    // The published shape of the query's lines on A100 nodes (made-up
    // UUIDs; not captured on a device here).
    const A100X2: &str = "0, GPU-aaaaaaaa-0000-0000-0000-000000000000, NVIDIA A100-SXM4-80GB, 67542, 81920, 96\n\
        1, GPU-bbbbbbbb-0000-0000-0000-000000000000, NVIDIA A100-SXM4-80GB, 3, 81920, 0\n";

    #[test]
    fn the_check_lists_them_or_warns_when_the_driver_does_not_answer() {
        let mut text = String::from("cmd=nvidia-smi /usr/bin/nvidia-smi\ngpu_status=0\n");
        for l in A100X2.lines() {
            text.push_str(&format!("gpu={l}\n"));
        }
        let c = check(&HostFacts::parse(&text), "g");
        assert_eq!(c.verdict, Verdict::Ok);
        assert_eq!(
            c.seen,
            "2 GPUs: 0 NVIDIA A100-SXM4-80GB (66.0/80.0 GiB, 96% busy); 1 NVIDIA A100-SXM4-80GB (0.0/80.0 GiB, 0% busy)"
        );
        let broken = HostFacts::parse(
            "cmd=nvidia-smi /usr/bin/nvidia-smi\ngpu_status=9\ngpu=NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n",
        );
        let c = check(&broken, "g");
        assert_eq!(c.verdict, Verdict::Warn);
        assert!(c.seen.contains("couldn't communicate"), "{}", c.seen);
        assert_eq!(check(&HostFacts::parse(""), "g").verdict, Verdict::Ok);
    }
}
