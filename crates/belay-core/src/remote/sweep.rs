//! The environment sweep: after a job's session has been stopped (cancel,
//! or the remnants of a `lost` job), end the processes that left the
//! session (`setsid`, a daemonizing tool) but still carry the job's exact
//! `BELAY_JOB_DIR=<dir>` entry in their environment — such a process can
//! hold a GPU long after its job is gone.
//!
//! Matching is exact (the whole entry, the job directory's physical path as
//! the wrapper exported it), so only processes the job started are touched.
//! belay's own long-lived processes never carry it: the daemon drops
//! `BELAY_JOB_*` when autostarted, and `belay shell` starts tmux without it.
//! One `grep -z` reads every `/proc/PID/environ` (unreadable ones — other
//! users' — are skipped); without a `grep -z`, one `tr | grep` per process.

/// sh functions: `belay_sweep_add DIR` adds a job directory (changes the
/// working directory to `/`); `belay_sweep` TERMs every process carrying
/// one of those entries, waits up to `$grace` seconds, then KILLs what is
/// left (sets `belay_swept_killed=yes`, prints nothing).
pub fn functions() -> String {
    r#"belay_sweep_pat=; belay_gz=; belay_swept_killed=
belay_sweep_add() {
  cd -P "$1" 2>/dev/null || return 0
  belay_sweep_pat="${belay_sweep_pat:+$belay_sweep_pat
}BELAY_JOB_DIR=$PWD"
  cd /
}
belay_swept() {
  if [ -z "$belay_gz" ]; then
    belay_gz=no; printf 'a\0' | grep -qzx a 2>/dev/null && belay_gz=yes
  fi
  if [ "$belay_gz" = yes ]; then
    grep -lszxF -e "$belay_sweep_pat" /proc/[0-9]*/environ 2>/dev/null
  else
    for f in /proc/[0-9]*/environ; do
      tr '\0' '\n' 2>/dev/null < "$f" | grep -qxF -e "$belay_sweep_pat" && echo "$f"
    done
  fi | while IFS=/ read -r _ _ p _; do [ "$p" != "$$" ] && echo "$p"; done
}
belay_sweep() {
  [ -n "$belay_sweep_pat" ] || return 0
  m=$(belay_swept)
  [ -n "$m" ] || return 0
  kill -TERM $m 2>/dev/null
  waited=0
  while [ "$waited" -lt "$((grace * 20))" ]; do
    sleep 0.05 2>/dev/null || sleep 1
    m=$(belay_swept)
    [ -z "$m" ] && return 0
    waited=$((waited + 1))
  done
  kill -KILL $m 2>/dev/null && belay_swept_killed=yes
}
"#
    .to_string()
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.rsplit(") ").next().unwrap_or("").starts_with('Z'))
            .unwrap_or(false)
    }

    #[test]
    fn only_processes_with_the_exact_entry_are_ended() {
        ended_with("");
    }

    #[test]
    fn without_grep_z_each_process_is_read_and_the_same_are_ended() {
        ended_with("belay_gz=no\n");
    }

    fn ended_with(setup: &str) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("job");
        std::fs::create_dir(&dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        let spawn = |value: &std::path::Path| {
            Command::new("sleep")
                .arg("60")
                .env("BELAY_JOB_DIR", value)
                .stdin(Stdio::null())
                .spawn()
                .unwrap()
        };
        let mut ours = spawn(&dir);
        let mut prefix = spawn(&dir.join("x")); // another job's dir below it
        let mut parent = spawn(tmp.path());
        let script = format!(
            "{}{setup}grace=2\nbelay_sweep_add '{}'\nbelay_sweep\necho done\n",
            super::functions(),
            dir.display()
        );
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "quiet");
        let _ = ours.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(ours.id()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(ours.id()), "the job's process was not ended");
        assert!(
            alive(prefix.id()) && alive(parent.id()),
            "others were touched"
        );
        for c in [&mut prefix, &mut parent] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
