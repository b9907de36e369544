//! A doctor's findings: one [`Check`] per thing looked at, in the order
//! they were looked at, each with a [`Verdict`], what was seen and a
//! one-line remedy. Its JSON (`belay doctor --json`, the daemon's API) is
//! stable: `{host, verdict, failed_hop, total_ms, checks: [{section, hop,
//! check, verdict, seen, remedy, ms}]}`.

use std::time::Duration;

use serde::Serialize;

/// How one check came out. Ordered: the report's verdict is the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

/// The groups of checks, in the order the doctor runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    Resolution,
    Reachability,
    HostKey,
    Authentication,
    Capabilities,
    Shell,
    Host,
}

impl Section {
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Resolution => "resolution",
            Section::Reachability => "reachability",
            Section::HostKey => "host_key",
            Section::Authentication => "authentication",
            Section::Capabilities => "capabilities",
            Section::Shell => "shell",
            Section::Host => "host",
        }
    }

    /// The heading shown above the section's checks.
    pub fn title(self) -> &'static str {
        match self {
            Section::Resolution => "Resolution",
            Section::Reachability => "Reachability",
            Section::HostKey => "Host key",
            Section::Authentication => "Authentication",
            Section::Capabilities => "Server capabilities",
            Section::Shell => "Shell",
            Section::Host => "Host",
        }
    }
}

/// One thing looked at.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub section: Section,
    /// The hop this is about (an alias or hop spec as in the chain), or
    /// the host itself for checks on the target.
    pub hop: String,
    /// A short, stable name: `ssh -G`, `dns`, `tcp`, `banner`,
    /// `known_hosts`, `identity ~/.ssh/id_ed25519`, `sftp`, `workroot`…
    #[serde(rename = "check")]
    pub name: String,
    pub verdict: Verdict,
    /// What was seen, in one line (the real error text where there is one).
    pub seen: String,
    /// The fix, in one line, where there is one.
    pub remedy: Option<String>,
    /// How long the check took, where that is worth knowing.
    pub ms: Option<f64>,
}

impl Check {
    pub fn new(
        section: Section,
        hop: &str,
        name: &str,
        verdict: Verdict,
        seen: impl Into<String>,
    ) -> Check {
        Check {
            section,
            hop: hop.to_string(),
            name: name.to_string(),
            verdict,
            seen: seen.into(),
            remedy: None,
            ms: None,
        }
    }

    pub fn ok(section: Section, hop: &str, name: &str, seen: impl Into<String>) -> Check {
        Check::new(section, hop, name, Verdict::Ok, seen)
    }

    pub fn warn(section: Section, hop: &str, name: &str, seen: impl Into<String>) -> Check {
        Check::new(section, hop, name, Verdict::Warn, seen)
    }

    pub fn fail(section: Section, hop: &str, name: &str, seen: impl Into<String>) -> Check {
        Check::new(section, hop, name, Verdict::Fail, seen)
    }

    pub fn remedy(mut self, remedy: impl Into<String>) -> Check {
        self.remedy = Some(remedy.into());
        self
    }

    pub fn took(mut self, d: Duration) -> Check {
        self.ms = Some(d.as_secs_f64() * 1000.0);
        self
    }
}

/// Everything the doctor found about one host.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub host: String,
    /// The worst verdict of all checks (`ok` when there are none).
    pub verdict: Verdict,
    /// The first hop with a failing check: where the descent stopped.
    pub failed_hop: Option<String>,
    pub total_ms: f64,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(host: &str) -> Report {
        Report {
            host: host.to_string(),
            verdict: Verdict::Ok,
            failed_hop: None,
            total_ms: 0.0,
            checks: Vec::new(),
        }
    }

    /// Records a check; the first failing one names the failed hop.
    pub fn push(&mut self, check: Check) {
        if check.verdict == Verdict::Fail && self.failed_hop.is_none() {
            self.failed_hop = Some(check.hop.clone());
        }
        self.verdict = self.verdict.max(check.verdict);
        self.checks.push(check);
    }

    /// Has any check of `hop` failed so far?
    pub fn hop_failed(&self, hop: &str) -> bool {
        self.checks
            .iter()
            .any(|c| c.hop == hop && c.verdict == Verdict::Fail)
    }

    pub fn finish(&mut self, total: Duration) {
        self.total_ms = total.as_secs_f64() * 1000.0;
    }

    /// The checks with a given name (tests and renderers look them up).
    pub fn find(&self, name: &str) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(move |c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_verdict_wins_and_the_first_failure_names_the_hop() {
        let mut r = Report::new("node1");
        r.push(Check::ok(Section::Resolution, "node1", "ssh -G", "fine"));
        r.push(Check::warn(Section::Reachability, "jump", "tcp", "slow"));
        assert_eq!(r.verdict, Verdict::Warn);
        assert_eq!(r.failed_hop, None);
        r.push(Check::fail(
            Section::Reachability,
            "jump",
            "banner",
            "no banner",
        ));
        r.push(Check::fail(
            Section::Reachability,
            "node1",
            "tcp",
            "refused",
        ));
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(r.failed_hop.as_deref(), Some("jump"));
        assert!(r.hop_failed("jump") && !r.hop_failed("other"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["checks"][2]["check"], "banner");
        assert_eq!(json["checks"][2]["section"], "reachability");
        assert_eq!(json["verdict"], "fail");
    }
}
