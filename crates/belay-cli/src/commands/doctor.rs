//! `belay doctor HOST`: run the core's ordered checks (`belay_core::doctor`)
//! and show them by section, each with its verdict, what was seen and the
//! fix. Always in this process, never through the daemon: the doctor
//! diagnoses a fresh connection made exactly as `ssh` would make it now,
//! and a daemon's environment (agent, terminal) may not be the user's.

use anyhow::Result;
use belay_core::doctor::{self, Report, Verdict};
use belay_ssh::terminal_safe;

use super::Ctx;
use crate::cli::DoctorArgs;

pub fn doctor(ctx: &Ctx, args: DoctorArgs) -> Result<u8> {
    let engine = ctx.engine()?;
    let report = doctor::diagnose(engine.hosts(), engine.store(), &args.host);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(if report.verdict == Verdict::Fail {
        1
    } else {
        0
    })
}

/// The report as text: a heading per section, one line per check (and
/// one more for its fix), and a closing verdict naming the failed hop.
fn render(report: &Report) -> String {
    let mut out = String::new();
    let mut section = None;
    for c in &report.checks {
        if section != Some(c.section) {
            section = Some(c.section);
            out.push_str(&format!("{}\n", c.section.title()));
        }
        let mark = match c.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        };
        let took = c.ms.map(|ms| format!(" ({ms:.0} ms)")).unwrap_or_default();
        out.push_str(&format!(
            "  {mark} {} {}: {}{took}\n",
            terminal_safe(&c.hop),
            terminal_safe(&c.name),
            terminal_safe(&c.seen)
        ));
        if let Some(fix) = &c.remedy {
            out.push_str(&format!("       fix: {}\n", terminal_safe(fix)));
        }
    }
    let warnings = report
        .checks
        .iter()
        .filter(|c| c.verdict == Verdict::Warn)
        .count();
    out.push_str(&match (&report.failed_hop, report.verdict) {
        (Some(hop), _) => format!(
            "{}: FAILED at {} ({:.0} ms)\n",
            report.host, hop, report.total_ms
        ),
        (None, Verdict::Warn) => format!(
            "{}: ok with {warnings} warning{} ({:.0} ms)\n",
            report.host,
            if warnings == 1 { "" } else { "s" },
            report.total_ms
        ),
        _ => format!("{}: ok ({:.0} ms)\n", report.host, report.total_ms),
    });
    out
}
