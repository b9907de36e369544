//! The doctor's look at the commands belay relies on, as found on the PATH
//! that belay's own commands get on the host (from the host facts): tmux
//! (persistent `belay shell` sessions), python3 (apps), and on a host whose
//! scheduler is Slurm the Slurm commands (`sbatch`, `squeue`, `scontrol`,
//! `scancel`; `sacct` is optional).

use super::host_facts::HostFacts;
use super::report::{Check, Section};

/// The Slurm commands without which belay cannot submit, watch or cancel.
pub const SLURM_REQUIRED: [&str; 4] = ["sbatch", "squeue", "scontrol", "scancel"];

pub fn tmux(facts: &HostFacts, host: &str) -> Check {
    match facts.command("tmux") {
        Some(path) => Check::ok(
            Section::Host,
            host,
            "tmux",
            format!("{} ({path})", facts.get("tmux_version").unwrap_or("tmux")),
        ),
        None => Check::warn(Section::Host, host, "tmux", "no tmux on the PATH").remedy(format!(
            "install tmux on {host}: without it `belay shell` sessions end when the link drops (they won't persist)"
        )),
    }
}

pub fn python3(facts: &HostFacts, host: &str) -> Check {
    match facts.command("python3") {
        Some(path) => Check::ok(
            Section::Host,
            host,
            "python3",
            format!(
                "{} ({path})",
                facts.get("python3_version").unwrap_or("python3")
            ),
        ),
        None => {
            Check::warn(Section::Host, host, "python3", "no python3 on the PATH").remedy(format!(
                "install python3 on {host} (or put it on the PATH): `belay app` needs it there"
            ))
        }
    }
}

/// The Slurm commands (a host whose scheduler is `slurm`).
pub fn slurm(facts: &HostFacts, host: &str) -> Check {
    let missing: Vec<&str> = SLURM_REQUIRED
        .iter()
        .copied()
        .filter(|c| facts.command(c).is_none())
        .collect();
    let path = facts
        .command("sbatch")
        .map(|p| p.rsplit_once('/').map_or(p, |(d, _)| d))
        .unwrap_or("");
    if !missing.is_empty() {
        return Check::fail(
            Section::Host,
            host,
            "slurm commands",
            format!(
                "{} not on the PATH belay's commands get",
                missing.join(", ")
            ),
        )
        .remedy(format!(
            "make Slurm's commands reachable without a terminal (e.g. `module load slurm` in ~/.bashrc, before any interactive-only return), or set scheduler = \"direct\" in [hosts.{host}]"
        ));
    }
    let sacct = if facts.command("sacct").is_some() {
        ", sacct"
    } else {
        " (no sacct: optional, belay reads squeue and scontrol)"
    };
    Check::ok(
        Section::Host,
        host,
        "slurm commands",
        format!("{} in {path}{sacct}", SLURM_REQUIRED.join(", ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Verdict;

    #[test]
    fn missing_slurm_commands_fail_and_sacct_is_optional() {
        let all = HostFacts::parse(
            "cmd=sbatch /usr/bin/sbatch\ncmd=squeue /usr/bin/squeue\ncmd=scontrol /usr/bin/scontrol\ncmd=scancel /usr/bin/scancel\n",
        );
        let c = slurm(&all, "c");
        assert_eq!(c.verdict, Verdict::Ok);
        assert!(c.seen.contains("no sacct"), "{}", c.seen);
        let none = HostFacts::parse("cmd=tmux /usr/bin/tmux\n");
        let c = slurm(&none, "c");
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.seen.starts_with("sbatch, squeue, scontrol, scancel"));
        assert_eq!(tmux(&none, "c").verdict, Verdict::Ok);
        assert_eq!(python3(&none, "c").verdict, Verdict::Warn);
    }
}
