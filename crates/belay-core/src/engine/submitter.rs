//! Who is submitting a job. A submit is several steps; if the process doing
//! it dies half-way, another belay process must finish it, but must not race
//! a submitter that is alive and working.
//!
//! The token is `pid:start_ticks:boot_id:hostname`: start ticks so that a
//! recycled pid is not mistaken for the original process, boot id and
//! hostname because a `BELAY_HOME` on a shared home (NFS on HPC login
//! nodes) is read by belay on several machines, and one machine's `/proc`
//! says nothing about another's processes. A submitter on another machine
//! cannot be checked from here: it is taken to be at work for
//! [`FOREIGN_GRACE_MS`] after the job last changed, then its submit is
//! taken over (the launch lock on the host still allows one launch only).
//! Tokens of older versions (`pid:start_ticks`) are read as this machine's.

/// How long a submit by another machine is left alone after the job's
/// last change.
pub const FOREIGN_GRACE_MS: i64 = 10 * 60 * 1000;

/// What can be said about a submitter from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Dead,
    /// On another machine: its processes cannot be seen from here.
    Elsewhere,
}

/// This process's token.
pub fn current() -> String {
    let pid = std::process::id();
    let (boot, host) = machine();
    format!(
        "{pid}:{}:{boot}:{host}",
        start_ticks(pid).unwrap_or_default()
    )
}

/// May the submitter named by `token` still be at work on a job that last
/// changed at `updated_at_ms`?
pub fn may_be_working(token: &str, updated_at_ms: i64, now_ms: i64) -> bool {
    match liveness(token) {
        Liveness::Alive => true,
        Liveness::Dead => false,
        Liveness::Elsewhere => now_ms - updated_at_ms < FOREIGN_GRACE_MS,
    }
}

pub fn liveness(token: &str) -> Liveness {
    let (boot, host) = machine();
    judge(token, &boot, &host, start_ticks)
}

/// The verdict on `token` from a machine with `boot`/`host`, whose
/// processes' start ticks `ticks_of` gives.
fn judge(
    token: &str,
    boot: &str,
    host: &str,
    ticks_of: impl Fn(u32) -> Option<String>,
) -> Liveness {
    let mut parts = token.splitn(4, ':');
    let (Some(pid), Some(ticks)) = (parts.next(), parts.next()) else {
        return Liveness::Dead;
    };
    if let (Some(their_boot), Some(their_host)) = (parts.next(), parts.next()) {
        if their_host != host {
            return Liveness::Elsewhere;
        }
        if !their_boot.is_empty() && !boot.is_empty() && their_boot != boot {
            return Liveness::Dead; // this machine rebooted since
        }
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return Liveness::Dead;
    };
    match ticks_of(pid) {
        Some(now) if ticks.is_empty() || now == ticks => Liveness::Alive,
        _ => Liveness::Dead,
    }
}

/// This machine's boot id and hostname (empty where unreadable).
fn machine() -> (String, String) {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    (
        read("/proc/sys/kernel/random/boot_id"),
        read("/proc/sys/kernel/hostname"),
    )
}

/// Field 22 of `/proc/PID/stat`: start time in clock ticks since boot.
/// `None` if the process does not exist or is a zombie.
fn start_ticks(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19).map(|s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_token_is_alive_and_a_stale_one_is_not() {
        let me = current();
        assert_eq!(liveness(&me), Liveness::Alive);
        let (pid, _) = me.split_once(':').unwrap();
        assert!(
            liveness(&format!("{pid}:1")) != Liveness::Alive,
            "other start time = other process"
        );
        assert_ne!(liveness("4194304:1"), Liveness::Alive, "no such pid");
        assert_ne!(liveness("garbage"), Liveness::Alive);
    }

    #[test]
    fn the_token_names_the_machine() {
        let (boot, host) = machine();
        let me = current();
        assert!(me.ends_with(&format!(":{boot}:{host}")), "{me}");
    }

    #[test]
    fn another_machine_is_elsewhere_and_a_reboot_is_death() {
        let running = |pid: u32| (pid == 42).then(|| "777".to_string());
        let j = |t: &str| judge(t, "boot-a", "login1", running);
        assert_eq!(j("42:777:boot-a:login1"), Liveness::Alive);
        assert_eq!(j("42:778:boot-a:login1"), Liveness::Dead, "recycled pid");
        assert_eq!(j("42:777:boot-b:login1"), Liveness::Dead, "rebooted");
        assert_eq!(
            j("42:777:boot-a:login2"),
            Liveness::Elsewhere,
            "login2's pid 42 is not ours to judge"
        );
        assert_eq!(j("43:777:boot-a:login2"), Liveness::Elsewhere);
        assert_eq!(j("42:777"), Liveness::Alive, "an older token");
    }

    #[test]
    fn a_submit_elsewhere_is_left_alone_for_a_grace_period() {
        let elsewhere = "1:1:boot:some-other-machine-name";
        assert!(may_be_working(
            elsewhere,
            1_000,
            1_000 + FOREIGN_GRACE_MS - 1
        ));
        assert!(!may_be_working(elsewhere, 1_000, 1_000 + FOREIGN_GRACE_MS));
    }
}
