//! The doctor's GPU inventory: when the host has `nvidia-smi`, the lines of
//! `nvidia-smi --query-gpu=index,name,memory.used,memory.total,
//! utilization.gpu --format=csv,noheader,nounits` (from the host facts),
//! listed one GPU each. A driver that does not answer is a warning (jobs
//! that need the GPUs will fail there); no `nvidia-smi` is simply no GPUs.

use super::host_facts::HostFacts;
use super::report::{Check, Section};

/// One GPU as nvidia-smi lists it. A field it reports as `[N/A]` (or
/// `[Not Supported]`, e.g. MIG, some mobile parts) is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpu {
    pub index: String,
    pub name: String,
    /// MiB.
    pub memory_used: Option<u64>,
    /// MiB.
    pub memory_total: Option<u64>,
    /// Percent.
    pub utilization: Option<u64>,
}

/// Parses one `--format=csv,noheader,nounits` line of the query above.
/// The name may itself hold ", " (it is the only free-text field), so the
/// fields are taken from both ends.
pub fn parse_line(line: &str) -> Option<Gpu> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() < 5 {
        return None;
    }
    let n = fields.len();
    let index = fields[0];
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = |s: &str| s.parse::<f64>().ok().map(|v| v.round() as u64);
    Some(Gpu {
        index: index.to_string(),
        name: fields[1..n - 3].join(", "),
        memory_used: number(fields[n - 3]),
        memory_total: number(fields[n - 2]),
        utilization: number(fields[n - 1]),
    })
}

pub fn check(facts: &HostFacts, host: &str) -> Check {
    if facts.command("nvidia-smi").is_none() {
        return Check::ok(
            Section::Host,
            host,
            "gpus",
            "no nvidia-smi (no NVIDIA GPUs)",
        );
    }
    let lines: Vec<&str> = facts.all("gpu").filter(|l| !l.trim().is_empty()).collect();
    let gpus: Vec<Gpu> = lines.iter().filter_map(|l| parse_line(l)).collect();
    let status = facts.number("gpu_status").unwrap_or(0);
    if status != 0 || gpus.is_empty() {
        let said = lines.first().copied().unwrap_or("nothing");
        return Check::warn(
            Section::Host,
            host,
            "gpus",
            format!("nvidia-smi exited with status {status}: {said}"),
        )
        .remedy(format!(
            "run `nvidia-smi` on {host}: the NVIDIA driver does not answer, so jobs that need a GPU will fail there"
        ));
    }
    let listed = gpus
        .iter()
        .map(|g| {
            let gib =
                |m: Option<u64>| m.map_or("?".to_string(), |m| format!("{:.1}", m as f64 / 1024.0));
            let busy = g.utilization.map_or("? %".to_string(), |u| format!("{u}%"));
            format!(
                "{} {} ({}/{} GiB used, {busy} busy)",
                g.index,
                g.name,
                gib(g.memory_used),
                gib(g.memory_total)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
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

    // Lines of the exact query as nvidia-smi prints them (the shapes seen
    // in public logs of A100 and H100 nodes; `[N/A]` where a field is not
    // supported, as under MIG).
    const A100X2: &str =
        "0, NVIDIA A100-SXM4-80GB, 67542, 81920, 96\n1, NVIDIA A100-SXM4-80GB, 3, 81920, 0\n";
    const H100_NA: &str = "0, NVIDIA H100 80GB HBM3, 0, 81559, [N/A]\n";

    #[test]
    fn inventory_lines_parse_with_units_and_na() {
        let g: Vec<Gpu> = A100X2.lines().filter_map(parse_line).collect();
        assert_eq!(g.len(), 2);
        assert_eq!(
            g[0],
            Gpu {
                index: "0".into(),
                name: "NVIDIA A100-SXM4-80GB".into(),
                memory_used: Some(67542),
                memory_total: Some(81920),
                utilization: Some(96),
            }
        );
        let h = parse_line(H100_NA.trim()).unwrap();
        assert_eq!(h.utilization, None);
        assert_eq!(h.memory_total, Some(81559));
        let odd = parse_line("3, Some, Vendor GPU, 1, 2, 3").unwrap();
        assert_eq!(odd.name, "Some, Vendor GPU");
        assert!(
            parse_line(
                "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
            )
            .is_none()
        );
    }

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
            "2 GPUs: 0 NVIDIA A100-SXM4-80GB (66.0/80.0 GiB used, 96% busy); 1 NVIDIA A100-SXM4-80GB (0.0/80.0 GiB used, 0% busy)"
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
