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
        // The wrapper runs in this script's pid namespace, on this boot: it
        // is handed the persistent shell's records of both, and forks no
        // `stat` nor reads `/proc/stat` before the command starts.
        "  belay_loop_pidns; belay_loop_btime\n  setsid /bin/sh ./run.sh \"$loop_pidns\" \"$loop_btime\" </dev/null >/dev/null 2>&1 &\n"
            .to_string()
    }

    fn records_launch_in_place(&self) -> bool {
        // Its readers take an empty record as none: a probe dates the
        // launch by the lock; a cancel, finding no `started` either,
        // leaves `cancel-requested` for the wrapper, as it would anyway.
        true
    }

    fn liveness(&self) -> String {
        r#"belay_alive() {
  belay_read_started "$1"
  # Another node (a shared home) or another container: nothing here can
  # tell whether the job lives, so nothing here may call it dead.
  if [ -n "$st_node" ] && [ "$st_node" != "$node" ]; then
    alive=elsewhere; why="it runs on $st_node, and this connection reached $node"; return
  fi
  belay_pidns
  if [ -n "$st_pidns" ] && [ -n "$pidns" ] && [ "$st_pidns" != "$pidns" ]; then
    alive=elsewhere; why="it runs in another pid namespace (container) than this connection"; return
  fi
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
        // while that session can still be ours: same boot, same node, same
        // pid namespace, and the leader's pid (if it still exists) names the
        // same process (same start ticks). A process group is signalled
        // with one syscall; the live members of all the sessions being
        // stopped are listed with one `ps | awk` per poll (a /proc scan where
        // those are missing), which also catches processes that left the
        // group, and stays fast on a login node running thousands of
        // processes — and for a thousand jobs stopped at once.
        r#"belay_sids=; belay_killed=
belay_members() {
  # One `ps` filtered by one `awk`: a shell `read` loop over thousands of
  # lines costs a second in dash (it reads pipes a byte at a time).
  if belay_ps=$(ps -e -o sid= -o pid= -o stat= 2>/dev/null) && command -v awk >/dev/null 2>&1; then
    printf '%s\n' "$belay_ps" | awk -v s="$belay_sids" '
      BEGIN { n = split(s, a, " "); for (i = 1; i <= n; i++) w[a[i]] = 1 }
      ($1 in w) && $3 !~ /^Z/ { print $2 }'
    return 0
  fi
  for f in /proc/[0-9]*/stat; do
    read -r ml < "$f" 2>/dev/null || continue
    mp=${ml%% *}; ml=${ml##*) }
    set -f; set -- $ml; set +f
    case " $belay_sids " in *" $4 "*) [ "$1" != Z ] && echo "$mp" ;; esac
  done
}
# belay_ours DIR: load the job's `started` and judge whether this
# connection may signal it: `ours` is yes, no (another boot, a recycled
# pid) or elsewhere (another node or container; `why` says which). One read
# of `started` and of the leader's /proc entry, for a thousand jobs too.
belay_ours() {
  belay_read_started "$1"
  ours=yes
  if [ -n "$boot" ] && [ "$st_boot" != "$boot" ]; then ours=no; fi
  if read -r ll < "/proc/$st_sid/stat" 2>/dev/null; then
    ll=${ll##*) }; set -f; set -- $ll; set +f
    [ "${20}" = "$st_ticks" ] || ours=no
  fi
  belay_pidns
  if [ -n "$st_pidns" ] && [ -n "$pidns" ] && [ "$st_pidns" != "$pidns" ]; then
    ours=elsewhere; why="it runs in another pid namespace (container) than this connection"
  fi
  if [ -n "$st_node" ] && [ "$st_node" != "$node" ]; then
    ours=elsewhere; why="it runs on $st_node, and this connection reached $node"
  fi
}
# belay_term: TERM the session belay_ours judged ours; belay_reap then
# waits for all of them together.
belay_term() {
  [ "$ours" = yes ] && [ -n "$st_sid" ] || return 1
  kill -TERM -"$st_sid" 2>/dev/null
  belay_sids="$belay_sids $st_sid"
}
# belay_reap: TERM stray members of the sessions belay_term signalled, wait
# up to $grace seconds for all of them, then KILL what is left (sets
# `belay_killed` when it had to).
belay_reap() {
  [ -n "$belay_sids" ] || return 0
  m=$(belay_members)
  [ -n "$m" ] && kill -TERM $m 2>/dev/null
  # Poll for live members, not `kill -0 -PGID`: that also succeeds for
  # zombies, which an init that reaps slowly (containers) leaves around.
  waited=0
  while [ "$waited" -lt "$((grace * 20))" ]; do
    sleep 0.05 2>/dev/null || sleep 1
    [ -z "$(belay_members)" ] && break
    waited=$((waited + 1))
  done
  for s in $belay_sids; do kill -KILL -"$s" 2>/dev/null && belay_killed=yes; done
  m=$(belay_members)
  if [ -n "$m" ]; then kill -KILL $m 2>/dev/null; belay_killed=yes; fi
}
"#
        .to_string()
    }
}
