//! The doctor's look at two host-wide settings that outlive any one job,
//! from the host facts: the clock (skew against this machine makes times
//! shown and hold ends wrong) and systemd-logind's `KillUserProcesses`
//! (which kills detached jobs when the user's last session ends).

use std::time::Duration;

use super::host_facts::HostFacts;
use super::report::{Check, Section};

/// More skew than this is a warning.
pub const SKEW: Duration = Duration::from_secs(2);

/// `remote_ms` (the host's clock when it answered) against this machine's
/// `received_ms`, less half the round trip `rtt` the answer took to come.
pub fn clock(host: &str, remote_ms: Option<i64>, received_ms: i64, rtt: Duration) -> Check {
    let Some(remote) = remote_ms else {
        return Check::warn(
            Section::Host,
            host,
            "clock",
            "could not read the host's clock (`date +%s%N`)",
        );
    };
    let skew = remote - (received_ms - rtt.as_millis() as i64 / 2);
    let secs = skew as f64 / 1000.0;
    if skew.unsigned_abs() as u128 > SKEW.as_millis() {
        Check::warn(
            Section::Host,
            host,
            "clock",
            format!(
                "the host's clock is {:.1} s {} this machine's",
                secs.abs(),
                if skew > 0 { "ahead of" } else { "behind" }
            ),
        )
        .remedy(
            "run time sync (chrony, systemd-timesyncd, ntpd) on the host and here: times, time left and hold ends belay shows are off by as much",
        )
    } else {
        Check::ok(
            Section::Host,
            host,
            "clock",
            format!("within {} ms of this machine's", skew.abs().max(0)),
        )
    }
}

/// systemd-logind's `KillUserProcesses` as it applies to the user.
pub fn logind(facts: &HostFacts, host: &str) -> Check {
    let user = facts.get("user").unwrap_or("USER");
    let settings = Logind::from_facts(facts);
    let Some(settings) = settings else {
        return Check::ok(
            Section::Host,
            host,
            "logind",
            "no systemd-logind settings (nothing kills detached jobs at logout)",
        );
    };
    let from = settings.kill_from.as_deref().unwrap_or("the default");
    if !settings.kill {
        return Check::ok(
            Section::Host,
            host,
            "logind",
            format!("KillUserProcesses is off ({from})"),
        );
    }
    if let Some(why) = settings.spared(user) {
        return Check::ok(
            Section::Host,
            host,
            "logind",
            format!("KillUserProcesses=yes ({from}), but {why}"),
        );
    }
    let linger = if settings.linger.as_deref() == Some("yes") {
        "; linger is on, which keeps only what runs under the user's systemd manager"
    } else {
        ""
    };
    Check::warn(
        Section::Host,
        host,
        "logind",
        format!(
            "KillUserProcesses=yes ({from}): {user}'s detached jobs are killed when their last session ends{linger}"
        ),
    )
    .remedy(format!(
        "`loginctl enable-linger {user}` (keeps {user}'s systemd manager after logout), and ask the admin for KillUserProcesses=no or KillExcludeUsers={user} in logind.conf"
    ))
}

#[derive(Debug, Default)]
struct Logind {
    kill: bool,
    kill_from: Option<String>,
    /// `None`: not set (logind's default, `root`).
    exclude: Option<String>,
    only: Option<String>,
    linger: Option<String>,
}

impl Logind {
    /// `None` when there is neither a running logind nor a file of it.
    fn from_facts(facts: &HostFacts) -> Option<Logind> {
        let mut l = Logind::default();
        if facts.get("logind_from") == Some("loginctl") {
            l.kill = truthy(facts.get("logind_kill").unwrap_or(""));
            l.kill_from = Some("the running systemd-logind".into());
            l.exclude = Some(facts.get("logind_exclude").unwrap_or("").to_string());
            l.only = facts.get("logind_only").map(str::to_string);
            l.linger = facts.get("linger").map(str::to_string);
            return Some(l);
        }
        facts.get("logind_file")?;
        // "KEY FILE VALUE", in the order logind reads them: the last wins.
        for set in facts.all("logind_set") {
            let mut parts = set.splitn(3, ' ');
            let (Some(key), Some(file)) = (parts.next(), parts.next()) else {
                continue;
            };
            let value = parts.next().unwrap_or("").trim().to_string();
            match key {
                "KillUserProcesses" => {
                    l.kill = truthy(&value);
                    l.kill_from = Some(file.to_string());
                }
                "KillExcludeUsers" => l.exclude = Some(value),
                "KillOnlyUsers" => l.only = Some(value),
                _ => {}
            }
        }
        Some(l)
    }

    /// Why `user` is spared, if it is.
    fn spared(&self, user: &str) -> Option<String> {
        let listed = |list: &str| list.split_whitespace().any(|u| u == user);
        match &self.exclude {
            None if user == "root" => return Some("root is excluded by default".into()),
            Some(list) if listed(list) => return Some(format!("KillExcludeUsers lists {user}")),
            _ => {}
        }
        match &self.only {
            Some(list) if !list.trim().is_empty() && !listed(list) => {
                Some(format!("KillOnlyUsers does not list {user}"))
            }
            _ => None,
        }
    }
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "yes" | "true" | "1" | "on" | "y" | "t"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Verdict;

    #[test]
    fn skew_is_judged_against_the_middle_of_the_round_trip() {
        let rtt = Duration::from_millis(200);
        assert_eq!(clock("h", Some(10_000), 10_100, rtt).verdict, Verdict::Ok);
        let c = clock("h", Some(13_000), 10_100, rtt);
        assert_eq!(c.verdict, Verdict::Warn);
        assert_eq!(c.seen, "the host's clock is 3.0 s ahead of this machine's");
        let c = clock("h", Some(5_000), 10_100, rtt);
        assert!(c.seen.contains("5.0 s behind"), "{}", c.seen);
        assert_eq!(clock("h", None, 0, rtt).verdict, Verdict::Warn);
    }

    #[test]
    fn the_last_file_wins_and_root_is_spared_by_default() {
        let facts = |user: &str, extra: &str| {
            HostFacts::parse(&format!(
                "user={user}\nlogind_file=/etc/systemd/logind.conf\nlogind_set=KillUserProcesses /etc/systemd/logind.conf no\nlogind_file=/etc/systemd/logind.conf.d/k.conf\nlogind_set=KillUserProcesses /etc/systemd/logind.conf.d/k.conf yes\n{extra}"
            ))
        };
        let c = logind(&facts("alice", ""), "h");
        assert_eq!(c.verdict, Verdict::Warn);
        assert!(c.seen.contains("k.conf"), "{}", c.seen);
        assert!(c.remedy.unwrap().contains("loginctl enable-linger alice"));
        assert_eq!(logind(&facts("root", ""), "h").verdict, Verdict::Ok);
        let c = logind(
            &facts(
                "root",
                "logind_set=KillExcludeUsers /etc/systemd/logind.conf.d/k.conf \n",
            ),
            "h",
        );
        assert_eq!(
            c.verdict,
            Verdict::Warn,
            "an empty KillExcludeUsers spares nobody"
        );
        let c = logind(
            &facts("alice", "logind_set=KillOnlyUsers /x bob carol\n"),
            "h",
        );
        assert_eq!(c.verdict, Verdict::Ok);
        let none = HostFacts::parse("user=alice\n");
        assert_eq!(logind(&none, "h").verdict, Verdict::Ok);
    }
}
