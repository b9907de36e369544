//! The `direct` scheduler: the wrapper runs as its own session leader
//! (`setsid`), so the job and everything it starts share one session and
//! process group that belay can signal as a whole.
//!
//! Liveness never trusts a bare pid: the wrapper records its pid, its start
//! time in clock ticks since boot (field 22 of `/proc/PID/stat`) and the
//! host's boot id. A recycled pid has another start time; a reboot changes
//! the boot id.

use super::Scheduler;

pub struct Direct;

impl Scheduler for Direct {
    fn name(&self) -> &'static str {
        "direct"
    }

    fn preflight(&self) -> String {
        r#"command -v setsid >/dev/null 2>&1 || { echo "R unsupported the host has no 'setsid' command (util-linux)"; exit 0; }
[ -r /proc/self/stat ] || { echo "R unsupported the host has no /proc (the direct scheduler needs Linux)"; exit 0; }
"#
        .to_string()
    }

    fn submit(&self) -> String {
        "setsid /bin/sh ./run.sh </dev/null >/dev/null 2>&1 &\n".to_string()
    }

    fn liveness(&self) -> String {
        r#"belay_alive() {
  belay_read_started "$1"
  alive=no
  if [ -n "$boot" ] && [ "$st_boot" != "$boot" ]; then
    why="the host rebooted since the job started (boot id changed)"; return
  fi
  l=
  [ -n "$st_pid" ] && read -r l < "/proc/$st_pid/stat" 2>/dev/null
  if [ -z "$l" ]; then why="its wrapper process $st_pid is gone"; return; fi
  l=${l##*) }
  set -f; set -- $l; set +f
  if [ "${20}" != "$st_ticks" ]; then
    why="its wrapper process $st_pid is gone (the pid now belongs to another process)"; return
  fi
  if [ "$1" = Z ]; then why="its wrapper process $st_pid is gone (exited, not yet reaped)"; return; fi
  alive=yes
}
"#
        .to_string()
    }

    fn stop(&self) -> String {
        // Only processes of the job's own session are signalled, and only
        // while that session can still be ours: if the session leader's pid
        // now names a different process (other start time) or the host has
        // rebooted, nothing of the job is left to stop.
        r#"belay_members() {
  for f in /proc/[0-9]*/stat; do
    read -r ml < "$f" 2>/dev/null || continue
    mp=${ml%% *}; ml=${ml##*) }
    set -f; set -- $ml; set +f
    [ "$4" = "$st_sid" ] && [ "$1" != Z ] && echo "$mp"
  done
}
ours=yes
if [ -n "$boot" ] && [ "$st_boot" != "$boot" ]; then ours=no; fi
if read -r ll < "/proc/$st_sid/stat" 2>/dev/null; then
  ll=${ll##*) }; set -f; set -- $ll; set +f
  [ "${20}" = "$st_ticks" ] || ours=no
fi
if [ "$ours" = yes ] && [ -n "$st_sid" ]; then
  m=$(belay_members)
  [ -n "$m" ] && kill -TERM $m 2>/dev/null
  waited=0
  while [ -n "$m" ] && [ "$waited" -lt "$((grace * 10))" ]; do
    sleep 0.1 2>/dev/null || sleep 1
    waited=$((waited + 1))
    m=$(belay_members)
  done
  if [ -n "$m" ]; then kill -KILL $m 2>/dev/null; killed=yes; fi
fi
"#
        .to_string()
    }
}
