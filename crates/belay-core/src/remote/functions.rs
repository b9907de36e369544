//! sh functions shared by the protocol scripts: reading the `started` file
//! and reporting one job's state. Kept in one place so the probe, the launch
//! and the output reader can never disagree about what a job directory says.

use crate::scheduler::Scheduler;

/// Prelude for every script that inspects jobs: the host's boot id and clock,
/// the `started` reader, the scheduler's liveness check and `belay_report`.
pub fn prelude(scheduler: &dyn Scheduler) -> String {
    format!(
        r#"boot=
read -r boot < "${{BELAY_BOOT_ID_FILE:-/proc/sys/kernel/random/boot_id}}" 2>/dev/null
# Builtins only on hot paths: every external command costs a fork+exec.
belay_cat() {{ while IFS= read -r l || [ -n "$l" ]; do printf '%s\n' "$l"; done < "$1"; }}
belay_read_started() {{
  st_pid=; st_sid=; st_ticks=; st_boot=
  while IFS='=' read -r k v; do
    case $k in
      pid) st_pid=$v ;; sid) st_sid=$v ;; start_ticks) st_ticks=$v ;; boot_id) st_boot=$v ;;
    esac
  done < "$1/started"
}}
belay_mtime() {{ stat -c %Y "$1" 2>/dev/null || stat -f %m "$1" 2>/dev/null || date +%s; }}
{liveness}
# belay_report ID DIR: one section `J ID STATUS` followed by key=value lines.
belay_report() {{
  d=$2
  if [ -f "$d/exit" ]; then
    echo "J $1 exit"; belay_cat "$d/exit"
    [ -f "$d/started" ] && belay_cat "$d/started"
    [ -f "$d/cancel-requested" ] && echo "cancel_requested=1"
    return 0
  fi
  if [ -f "$d/started" ]; then
    belay_alive "$d"
    if [ "$alive" = yes ]; then echo "J $1 running"; belay_cat "$d/started"; return 0; fi
    if [ -f "$d/exit" ]; then belay_report "$1" "$d"; return 0; fi
    echo "J $1 dead"; belay_cat "$d/started"; echo "why=$why"; return 0
  fi
  if [ -f "$d/launch.lock" ]; then
    echo "J $1 launching"; echo "lock_age=$(($(date +%s) - $(belay_mtime "$d/launch.lock")))"
    [ -f "$d/launched" ] && belay_cat "$d/launched"
    return 0
  fi
  if [ -f "$d/run.sh" ]; then echo "J $1 staged"; return 0; fi
  echo "J $1 absent"
}}
echo "B boot_id=$boot"
"#,
        liveness = scheduler.liveness()
    )
}
