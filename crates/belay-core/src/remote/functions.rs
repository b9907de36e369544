//! sh functions shared by the protocol scripts: reading the `started` file
//! and reporting one job's state. Kept in one place so the probe, the launch
//! and the output reader can never disagree about what a job directory says.

use crate::scheduler::Scheduler;

/// Prelude for every script that inspects jobs: where the probe runs (boot
/// id, node, pid namespace),
/// the `started` reader, the scheduler's liveness check and `belay_report`.
pub fn prelude(scheduler: &dyn Scheduler) -> String {
    format!(
        r#"boot=; node=
read -r boot 2>/dev/null < {boot_id_file}
read -r node 2>/dev/null < /proc/sys/kernel/hostname
pidns=; belay_pidns_read=
# The pid namespace: the persistent shell's record of it (belay-ssh's loop
# writes `$__belay_d/pidns`; the same namespace as this script), a whole
# line of digits or nothing.
belay_loop_pidns() {{
  loop_pidns=
  [ -n "${{__belay_d-}}" ] && read -r loop_pidns 2>/dev/null < "$__belay_d/pidns" || loop_pidns=
  case $loop_pidns in *[!0-9]*) loop_pidns= ;; esac
}}
# The boot time, from the same shell's record (`$__belay_d/btime`), or
# nothing; read once per script.
belay_btime_read=
belay_loop_btime() {{
  [ -n "$belay_btime_read" ] && return 0
  belay_btime_read=1; loop_btime=
  [ -n "${{__belay_d-}}" ] && read -r loop_btime 2>/dev/null < "$__belay_d/btime" || loop_btime=
  case $loop_btime in *[!0-9]*) loop_btime= ;; esac
}}
# belay_now: the time (`now`, seconds) without a `date` process where the
# boot time is recorded: boot time plus whole seconds of uptime, `date`'s
# second or the one before (both are truncated), as the wrapper's
# `started_at` is.
belay_now() {{
  now=; belay_up=; belay_loop_btime
  read -r belay_up _ 2>/dev/null < /proc/uptime
  case $belay_up in
    *[!0-9.]*) ;;
    [0-9]*.[0-9]*) [ -n "$loop_btime" ] && now=$((loop_btime + ${{belay_up%.*}})) ;;
  esac
  [ -n "$now" ] || now=$(date +%s)
}}
# Without that record it costs a process (stat): read once, and only by a
# script that compares it with a job's `started`.
belay_pidns() {{
  [ -n "$belay_pidns_read" ] && return 0
  belay_pidns_read=1; belay_loop_pidns; pidns=$loop_pidns
  [ -n "$pidns" ] || pidns=$(stat -L -c %i /proc/$$/ns/pid 2>/dev/null)
}}
# Builtins only on hot paths: every external command costs a fork+exec.
belay_cat() {{ while IFS= read -r l || [ -n "$l" ]; do printf '%s\n' "$l"; done < "$1"; }}
belay_read_started() {{
  st_pid=; st_sid=; st_ticks=; st_boot=; st_node=; st_pidns=
  while IFS='=' read -r k v; do
    case $k in
      pid) st_pid=$v ;; sid) st_sid=$v ;; start_ticks) st_ticks=$v ;; boot_id) st_boot=$v ;;
      node) st_node=$v ;; pidns) st_pidns=$v ;;
    esac
  done < "$1/started"
}}
belay_mtime() {{ stat -c %Y "$1" 2>/dev/null || stat -f %m "$1" 2>/dev/null || date +%s; }}
sched_end=; sched_reason=; belay_t=
{hooks}{liveness}
# belay_report ID DIR: one section `J ID STATUS` followed by key=value lines.
belay_report() {{
  d=$2
  if [ -s "$d/exit" ]; then
    belay_sched_ended "$1" "$d"
    if [ -n "$sched_hold" ]; then
      echo "J $1 running"; [ -f "$d/started" ] && belay_cat "$d/started"; return 0
    fi
    echo "J $1 exit"; belay_cat "$d/exit"
    [ -n "$sched_info" ] && printf '%s\n' "$sched_info"
    [ -f "$d/started" ] && belay_cat "$d/started"
    return 0
  fi
  # (`started` is written in place: empty, it is not there yet.)
  if [ -s "$d/started" ]; then
    belay_alive "$d"
    if [ "$alive" = yes ]; then
      # The command ended and the wrapper holds the job for debugging.
      if [ -f "$d/held" ]; then echo "J $1 held"; belay_cat "$d/held"; belay_cat "$d/started"; return 0; fi
      echo "J $1 running"; belay_cat "$d/started"; return 0
    fi
    if [ "$alive" = elsewhere ]; then echo "J $1 elsewhere"; echo "why=$why"; return 0; fi
    if [ -s "$d/exit" ]; then belay_report "$1" "$d"; return 0; fi
    echo "J $1 dead"; belay_cat "$d/started"; echo "why=$why"
    [ -n "$sched_end" ] && printf 'sched_state=%s\nsched_reason=%s\n' "$sched_end" "$sched_reason"
    return 0
  fi
  if [ -f "$d/launch.lock" ]; then
    # Age on one clock, this host's: launched_at is its `date` (or boot
    # time plus uptime, within a second of it).
    la=
    [ -f "$d/launched" ] && while IFS='=' read -r k v; do [ "$k" = launched_at ] && la=$v; done < "$d/launched"
    [ -n "$la" ] || la=$(belay_mtime "$d/launch.lock")
    # One clock reading per script: a queue of pending jobs costs no fork each.
    [ -n "$belay_t" ] || belay_t=$(date +%s)
    echo "J $1 launching"; echo "lock_age=$((belay_t - la))"
    [ -f "$d/launched" ] && belay_cat "$d/launched"
    belay_sched_launched "$1" "$d"
    return 0
  fi
  if [ -f "$d/run.sh" ]; then echo "J $1 staged"; return 0; fi
  belay_absent "$1" "$d"
}}
# belay_absent ID DIR: nothing of the job can be seen. That is proof only
# when its workroot can be listed (and the directory, if it is there):
# `absent` with the workroot's marker id, to be compared with the one the
# job was staged under. Otherwise (an unreadable workroot, a stale mount)
# `unseen`: no verdict.
belay_absent() {{
  r=${{2%/*}}; rid=
  # A workroot not created yet counts as listed when its nearest existing
  # ancestor can be (a first job on a fresh host).
  p=$r
  while [ ! -e "$p" ] && [ -n "${{p%/*}}" ] && [ "${{p%/*}}" != "$p" ]; do p=${{p%/*}}; done
  if ls -f "$p" >/dev/null 2>&1 && {{ [ ! -e "$2" ] || ls -f "$2" >/dev/null 2>&1; }}; then
    [ -f "$r/.belay-workroot" ] && read -r rid < "$r/.belay-workroot"
    echo "J $1 absent"; echo "workroot_id=$rid"
  else
    echo "J $1 unseen"; echo "why=its workroot $r cannot be listed"
  fi
}}
# belay_quick ID DIR PID TICKS BOOT NODE PIDNS: a job the store knows is
# running, with the identity it recorded. One /proc read when nothing
# changed; anything else goes to the full report.
belay_quick() {{
  belay_pidns
  if [ ! -s "$2/exit" ] && [ ! -f "$2/held" ] && [ "$5" = "$boot" ] && [ "$6" = "$node" ] && [ "$7" = "$pidns" ] &&
     read -r l < "/proc/$3/stat" 2>/dev/null; then
    q_id=$1; q_dir=$2; q_ticks=$4
    l=${{l##*) }}
    set -f; set -- $l; set +f
    if [ "${{20}}" = "$q_ticks" ] && [ "$1" != Z ]; then echo "J $q_id running"; return 0; fi
    set -- "$q_id" "$q_dir"
  fi
  belay_report "$1" "$2"
}}
"#,
        liveness = scheduler.liveness(),
        hooks = scheduler.report_hooks(),
        boot_id_file = crate::failpoint::BOOT_ID_FILE_WORD,
    )
}
