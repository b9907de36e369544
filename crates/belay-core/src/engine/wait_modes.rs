//! What the output followers have learnt of each workroot's file system,
//! kept for the process (the daemon, or one CLI command): a follower that
//! reported `M inotify` found the job directory on a local file system, so
//! the next follower under the same workroot of the same host skips the
//! question (`stat -f`, a process on the path of an attached run's first
//! output). Memory only, and re-derived by any follower that asks: an
//! entry lasts [`REMEMBERED_FOR`], and a follower that reports `poll`
//! removes it. Wrong for a while (a workroot remounted over NFS meanwhile)
//! costs latency, never output: the follower's tick still reads the files
//! every second.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use crate::remote::follow::WaitMode;

/// How long a workroot found local is taken as local without asking.
pub const REMEMBERED_FOR: Duration = Duration::from_secs(600);

/// (host alias, workroot) → when a follower last found it local.
static LOCAL: LazyLock<Mutex<HashMap<(String, String), Instant>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The wait mode for a follower of a job on `host` under `workroot`.
pub fn for_follower(host: &str, workroot: &str) -> WaitMode {
    let key = (host.to_string(), workroot.to_string());
    let known = LOCAL.lock().ok().and_then(|m| m.get(&key).copied());
    match known {
        Some(at) if at.elapsed() < REMEMBERED_FOR => WaitMode::Local,
        _ => WaitMode::Best,
    }
}

/// A follower's `M <mode>` frame: `inotify` from one that asked records
/// the workroot as local (the caller does not pass on the `inotify` of
/// one that was told, so an entry ages); any other mode forgets it.
pub fn learn(host: &str, workroot: &str, mode: &str) {
    let Ok(mut map) = LOCAL.lock() else {
        return;
    };
    let key = (host.to_string(), workroot.to_string());
    if mode == "inotify" {
        map.insert(key, Instant::now());
    } else {
        map.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workroot_is_local_once_a_follower_watched_it_until_one_polls() {
        let (h, w) = ("wm-test-host", "'/x/.belay/jobs'");
        assert_eq!(for_follower(h, w), WaitMode::Best);
        learn(h, w, "inotify");
        assert_eq!(for_follower(h, w), WaitMode::Local);
        assert_eq!(for_follower(h, "'/other'"), WaitMode::Best);
        assert_eq!(for_follower("wm-other-host", w), WaitMode::Best);
        learn(h, w, "poll");
        assert_eq!(for_follower(h, w), WaitMode::Best);
    }
}
