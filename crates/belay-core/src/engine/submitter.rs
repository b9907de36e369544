//! Who is submitting a job. A submit is several steps; if the process doing
//! it dies half-way, another belay process must finish it, but must not race
//! a submitter that is alive and working. The token is `pid:start_ticks`,
//! so a recycled pid is not mistaken for the original process.

/// This process's token.
pub fn current() -> String {
    let pid = std::process::id();
    format!("{pid}:{}", start_ticks(pid).unwrap_or_default())
}

/// Is the process named by `token` still running?
pub fn is_alive(token: &str) -> bool {
    let Some((pid, ticks)) = token.split_once(':') else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    match start_ticks(pid) {
        Some(now) => ticks.is_empty() || now == ticks,
        None => false,
    }
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
        assert!(is_alive(&me));
        let (pid, _) = me.split_once(':').unwrap();
        assert!(
            !is_alive(&format!("{pid}:1")),
            "other start time = other process"
        );
        assert!(!is_alive("4194304:1"), "no such pid");
        assert!(!is_alive("garbage"));
    }
}
