//! Builders for the protocol scripts. Each returns a complete POSIX sh
//! script for [`crate::transport::Transport::run_script`]; every value in it
//! is quoted with [`crate::shell::quote`]. Each script is idempotent.

use crate::scheduler::Scheduler;
use crate::shell::quote;
use crate::transport::Workroot;

use super::functions::prelude;

/// Largest slice of one output stream returned by one read.
pub const MAX_CHUNK: u64 = 4 << 20;

/// Size of the `reserve` file staging leaves in a job directory: room for
/// the wrapper's `exit` file when the disk is full (see `wrapper.rs`).
pub const RESERVE_BYTES: usize = 8192;

/// Stage a job: create its directory and write `spec.json`, `run.sh` and
/// the disk-full `reserve`.
/// Once `launch.lock` exists the files are left alone (the launched job's
/// record must not change under it) and it prints `locked`. Prints `dir=ABSOLUTE_DIR`, then
/// `workdir=missing` if the working directory does not exist, and
/// `workroot_id=ID`: the workroot's `.belay-workroot` marker, created with
/// `marker` unless it exists (empty when it cannot be written). With
/// `inputs`, creates `inputs/` for the files to be copied in (the working
/// directory is then checked by the caller's choice of `workdir_word`;
/// `$belay_jd` names the job directory there).
pub fn stage(
    root: &Workroot,
    key: &str,
    spec_json: &str,
    wrapper: &str,
    workdir_word: &str,
    inputs: bool,
    marker: &str,
) -> String {
    format!(
        r#"umask 077
root={root}
# `mkdir` without -p fails on a directory that exists: one stager alone
# can make it (`belay_fresh`), and writes `run.sh` with no `mv` (below).
belay_fresh=
if ! cd "$root/"{key} 2>/dev/null; then
  if mkdir "$root/"{key} 2>/dev/null; then belay_fresh=1; else mkdir -p "$root/"{key}; fi &&
    cd "$root/"{key} || exit 3
fi
# The workroot's marker: a missing job directory is proof of its end only
# under the marker it was staged under (not another machine's, not a
# workroot that cannot be listed). Created once, atomically (link).
if [ ! -f ../.belay-workroot ]; then
  printf '%s\n' {marker} > "../.belay-workroot.$$" &&
    ln "../.belay-workroot.$$" ../.belay-workroot 2>/dev/null
  rm -f "../.belay-workroot.$$"
fi
belay_rid=; read -r belay_rid < ../.belay-workroot 2>/dev/null
printf 'workroot_id=%s\n' "$belay_rid"
if [ ! -e launch.lock ]; then
printf '%s' {spec} > spec.json
# One quoted word for the `printf` builtin: nothing in it is expanded, and
# it costs one `write` (a heredoc through `read` takes a read per byte).
belay_run={run}
# In a directory this script made, `run.sh` is written in place, with
# noclobber (O_EXCL): no other stager can have a launch reading it, and
# any launch here follows this write. Otherwise (a retried or concurrent
# stage: a launch may be reading the old one) it is replaced atomically.
# Never a partial `run.sh` left to launch: a failed write fails the stage.
belay_w=1
if [ -n "$belay_fresh" ]; then
  set -C; {{ printf '%s' "$belay_run" > run.sh; }} 2>/dev/null && belay_w=; set +C
fi
if [ -n "$belay_w" ]; then
  printf '%s' "$belay_run" > "run.sh.tmp.$$" && mv -f "run.sh.tmp.$$" run.sh || {{ rm -f "run.sh.tmp.$$"; exit 3; }}
fi
[ -s reserve ] || printf '%{reserve}s' '' > reserve || exit 3
else
  echo locked
fi
{mk_inputs}cd -P . && belay_jd=$PWD || exit 3
printf 'dir=%s\n' "$belay_jd"
# Builtins only (no subshell): the check changes directory, then comes back.
belay_wd_missing=
{{ cd "$HOME" 2>/dev/null; cd {workdir_word} 2>/dev/null; }} || {{ belay_wd_missing=1; echo "workdir=missing"; }}
cd "$belay_jd" || exit 3
"#,
        mk_inputs = if inputs {
            "mkdir -p inputs || exit 3\n"
        } else {
            ""
        },
        root = root.0,
        key = quote(key),
        marker = quote(marker),
        // For people reading the directory: nothing on the host reads it,
        // and staging writes it again until the lock exists, so a plain
        // write does.
        spec = quote(spec_json),
        run = quote(wrapper),
        reserve = RESERVE_BYTES,
    )
}

/// The line between the staging half and the launch half of
/// [`stage_and_launch`]'s output.
pub const LAUNCH_MARK: &str = "belay-launch";

/// [`stage`] then, unless the working directory is missing, [`launch`]:
/// one round trip for a job with no inputs to copy in between (a submit's
/// cost is mostly round trips and the processes each script forks). Prints
/// the staging lines, then [`LAUNCH_MARK`] and the launch's lines.
#[allow(clippy::too_many_arguments)]
pub fn stage_and_launch(
    root: &Workroot,
    key: &str,
    spec_json: &str,
    wrapper: &str,
    workdir_word: &str,
    marker: &str,
    scheduler: &dyn Scheduler,
    job_id: &str,
) -> String {
    format!(
        "{stage}[ -n \"$belay_wd_missing\" ] && exit 0\necho {mark}\n{launch}",
        stage = stage(root, key, spec_json, wrapper, workdir_word, false, marker),
        mark = LAUNCH_MARK,
        launch = launch(scheduler, job_id, "\"$belay_jd\""),
    )
}

/// Launch a staged job exactly once. Takes `launch.lock` with noclobber:
/// the first caller hands `run.sh` to the scheduler (`R launched`), any later
/// caller adopts what is there (`R adopted`). It does not wait for the
/// wrapper to start: a launched job is `pending` until `started` appears.
/// Ends with the job's report.
pub fn launch(scheduler: &dyn Scheduler, job_id: &str, dir_word: &str) -> String {
    format!(
        r#"{prelude}d={dir}
cd "$d" 2>/dev/null || {{ echo "R absent"; belay_report {id} "$d"; exit 0; }}
if [ ! -e launch.lock ]; then
  [ -f run.sh ] || {{ echo "R absent"; belay_report {id} "$d"; exit 0; }}
{preflight}fi
# noclobber (O_EXCL) in this shell, not a subshell (a process): `true` is a
# regular builtin, so a lock that exists fails the redirection without
# ending the script.
belay_lock=; set -C; {{ true > launch.lock; }} 2>/dev/null && belay_lock=1; set +C
if [ -n "$belay_lock" ]; then
  belay_ids=; belay_refused=; belay_job={id}
{submit}  if [ -n "$belay_refused" ]; then
    # Nothing was submitted: the job ends here, with the scheduler's word.
    printf 'code=\nended_at=%s\ncancelled=0\nrefused=1\nwhy=%s\n' "$(date +%s)" "$belay_refused" > "exit.tmp.$$" &&
      mv -f "exit.tmp.$$" exit
{remove_secrets}    echo "R refused $belay_refused"
    belay_report {id} "$d"
    exit 0
  fi
{record}  echo "R launched"
  # Just handed over: launching, whatever the wrapper has done since (the
  # next look says more), without another look at the clock or the files.
  echo "J "{id}" launching"; echo "lock_age=0"
  printf 'scheduler={sched}\nnode=%s\n%s\n' "$node" "$belay_ids"
  exit 0
fi
echo "R adopted"
belay_report {id} "$d"
"#,
        prelude = prelude(scheduler),
        dir = dir_word,
        preflight = scheduler.preflight(),
        submit = scheduler.submit(),
        sched = scheduler.name(),
        id = quote(job_id),
        remove_secrets = crate::secrets::REMOVE_LINES,
        record = launch_record(scheduler),
    )
}

/// The launch's `launched` record. A batch scheduler's is written whole
/// (temp file, `mv`) before the reply: its cancel reads the job id there.
/// Where the scheduler allows it ([`Scheduler::records_launch_in_place`])
/// the file is written in place by builtins, with no `mv`: at once where
/// the persistent shell recorded the boot time (`belay_now` in
/// [`super::functions`] then reads the clock without `date`), else in the
/// background, so that the reply never waits for a `date`.
fn launch_record(scheduler: &dyn Scheduler) -> String {
    let record = format!(
        r#"printf 'scheduler={sched}\nlaunched_at=%s\nnode=%s\n%s\n' "$1" "$node" "$belay_ids""#,
        sched = scheduler.name()
    );
    if scheduler.records_launch_in_place() {
        format!(
            r#"  belay_record_launch() {{ {record} > launched; }} 2>/dev/null
  belay_loop_btime
  if [ -n "$loop_btime" ]; then belay_now; belay_record_launch "$now"
  else {{ belay_record_launch "$(date +%s)"; }} </dev/null >/dev/null 2>&1 &
  fi
"#
        )
    } else {
        format!(
            r#"  belay_record_launch() {{ {record} > "launched.tmp.$$"; }}
  belay_now; belay_record_launch "$now" && mv -f "launched.tmp.$$" launched
"#
        )
    }
}

/// One job to probe: its id and its directory on the host.
pub struct ProbeTarget<'a> {
    pub job_id: &'a str,
    pub dir: String,
    /// For a job known to be running: the identity it recorded
    /// ("pid ticks boot node pidns"), for the one-read fast path.
    pub known: Option<&'a str>,
}

/// Where a job's directory is: the recorded absolute path, or (before
/// staging reported it) the workroot joined with the key, as a shell word.
pub fn job_dir_word(root: &Workroot, key: &str, recorded: Option<&str>) -> String {
    match recorded {
        Some(dir) => quote(dir),
        None => format!("{}/{}", root.0, quote(key)),
    }
}

/// Up to this many jobs known to be running are checked with shell
/// builtins (`belay_quick`: no process at all); more go through one `awk`,
/// whose start-up then costs less than the shell's byte-by-byte reads.
pub const QUICK_BUILTIN_MAX: usize = 32;

/// One round trip that reports every listed job of a host.
///
/// Jobs the store already knows are running carry their recorded identity
/// (`known`); they are checked with one read of `/proc/PID/stat` each (no
/// exit file, same boot/node/pid namespace) and print `J ID running`:
/// with builtins for a few ([`QUICK_BUILTIN_MAX`]), in one `awk` pass for
/// many. Every other job — and any known one that fails the quick check —
/// gets the full `belay_report`. Without awk, all get the full report.
/// When some job is known to run, the host's GPU processes follow
/// ([`crate::hosts::gpus::apps_script`]: one nvidia-smi, where it exists).
pub fn probe(scheduler: &dyn Scheduler, targets: &[ProbeTarget<'_>]) -> String {
    probe_with(scheduler, targets, QUICK_BUILTIN_MAX)
}

fn probe_with(
    scheduler: &dyn Scheduler,
    targets: &[ProbeTarget<'_>],
    builtin_max: usize,
) -> String {
    let mut s = prelude(scheduler);
    let mut quick = Vec::new();
    for t in targets {
        let fields: Vec<&str> = t.known.map(|k| k.split(' ').collect()).unwrap_or_default();
        let dir = t.dir.trim_matches('\'');
        let plain = |v: &str| !v.contains(['\n', '\'', ' ']) && !v.is_empty();
        let is_quick = fields.len() == 5
            && fields[..3].iter().all(|f| plain(f))
            && t.dir.starts_with('\'')
            && !dir.contains(['\n', '\'']);
        if is_quick {
            let f: Vec<&str> = fields
                .iter()
                .map(|v| if v.is_empty() { "-" } else { v })
                .collect();
            quick.push((t, f));
        } else {
            s.push_str(&format!("belay_report {} {}\n", quote(t.job_id), t.dir));
        }
    }
    if quick.len() <= builtin_max {
        for (t, f) in &quick {
            let words: Vec<String> = f.iter().map(|v| quote(v)).collect();
            s.push_str(&format!(
                "belay_quick {} {} {}\n",
                quote(t.job_id),
                t.dir,
                words.join(" ")
            ));
        }
    } else {
        let mut quick_rows = String::new();
        let mut quick_dirs = String::new();
        let mut quick_ids = Vec::new();
        for (t, f) in &quick {
            let dir = t.dir.trim_matches('\'');
            quick_rows.push_str(&format!("{} {} {}\n", t.job_id, f.join(" "), dir));
            quick_dirs.push_str(&format!("  {}) belay_qd={} ;;\n", t.job_id, t.dir));
            quick_ids.push(t.job_id);
        }
        let tag = crate::shell::heredoc_delimiter(&quick_rows);
        s.push_str(&format!(
            r#"belay_qdir() {{
  case $1 in
{quick_dirs}  esac
}}
belay_pidns
if command -v awk >/dev/null 2>&1; then
  belay_q=$(awk -v boot="${{boot:--}}" -v node="${{node:--}}" -v pidns="${{pidns:--}}" '
    {{
      id = $1; pid = $2; ticks = $3
      dir = $0
      for (k = 1; k <= 6; k++) sub(/^[^ ]* /, "", dir)
      ok = 0
      if ($4 == boot && $5 == node && $6 == pidns) {{
        ex = dir "/exit"
        has_exit = (getline e < ex) > 0
        close(ex)
        ex = dir "/held"
        if ((getline e < ex) > 0) has_exit = 1
        close(ex)
        st = "/proc/" pid "/stat"
        if (!has_exit && (getline line < st) > 0) {{
          sub(/^.*\) /, "", line)
          split(line, a, " ")
          if (a[20] == ticks && a[1] != "Z") ok = 1
        }}
        close(st)
      }}
      if (ok) print "J " id " running"; else print "Q " id
    }}' <<'{tag}'
{quick_rows}{tag}
)
  belay_rest=
  while read -r belay_t belay_i belay_x; do
    case $belay_t in J) echo "J $belay_i running" ;; Q) belay_rest="$belay_rest $belay_i" ;; esac
  done <<{tag}
$belay_q
{tag}
else
  belay_rest='{ids}'
fi
for belay_id in $belay_rest; do belay_qdir "$belay_id"; belay_report "$belay_id" "$belay_qd"; done
"#,
            ids = quick_ids.join(" "),
        ));
    }
    if targets.iter().any(|t| t.known.is_some()) {
        s.push_str(&crate::hosts::gpus::apps_script());
    }
    s.push_str("echo END\n");
    s
}

/// Read both output streams from byte offsets, optionally with the job's
/// state first. Prints the report (if asked), then
/// `S OUT_SIZE ERR_SIZE N_OUT N_ERR`, then exactly N_OUT bytes of stdout and
/// N_ERR bytes of stderr. The state is taken *before* the sizes, so when it
/// says the job ended, the sizes are final.
pub fn read_output(
    scheduler: &dyn Scheduler,
    job_id: &str,
    dir_word: &str,
    out_offset: u64,
    err_offset: u64,
    with_state: bool,
) -> String {
    let state = if with_state {
        format!("belay_report {} \"$d\"\n", quote(job_id))
    } else {
        String::new()
    };
    format!(
        r#"{prelude}d={dir}
{state}cd "$d" 2>/dev/null || {{ echo "S 0 0 0 0"; exit 0; }}
o=0; [ -f stdout ] && o=$(( $(wc -c < stdout) ))
e=0; [ -f stderr ] && e=$(( $(wc -c < stderr) ))
n1=$((o - {oo})); [ "$n1" -lt 0 ] && n1=0; [ "$n1" -gt {max} ] && n1={max}
n2=$((e - {eo})); [ "$n2" -lt 0 ] && n2=0; [ "$n2" -gt {max} ] && n2={max}
echo "S $o $e $n1 $n2"
[ "$n1" -gt 0 ] && tail -c +$(({oo} + 1)) stdout | head -c "$n1"
[ "$n2" -gt 0 ] && tail -c +$(({eo} + 1)) stderr | head -c "$n2"
exit 0
"#,
        prelude = prelude(scheduler),
        dir = dir_word,
        oo = out_offset,
        eo = err_offset,
        max = MAX_CHUNK,
    )
}

/// End a debug hold: leave `release` in the job's directory, where its
/// wrapper looks every second. Prints `R released`, `R ended` (the hold
/// was over already), `R not-held` or `R absent`.
pub fn release(dir_word: &str) -> String {
    format!(
        r#"cd {dir_word} 2>/dev/null || {{ echo "R absent"; exit 0; }}
if [ -s exit ]; then echo "R ended"
elif [ -f held ]; then : > release && echo "R released"
else echo "R not-held"; fi
"#
    )
}

/// One job to cancel: its id, its directory on the host (a shell word), and
/// whether it was ever staged.
pub struct CancelTarget<'a> {
    pub job_id: &'a str,
    pub dir: String,
    pub never_staged: bool,
}

/// Stop jobs of one host (staged or not) in one round trip. Check first,
/// mark second: a job started or launched on another node (`elsewhere`) is
/// left untouched. Before launch: take `launch.lock` so it can never start,
/// and write its `exit` (`never_launched=1`). After: mark
/// `cancel-requested` and TERM the job's session; then, for all jobs
/// together, KILL what is left after `grace` seconds and record an exit
/// (`code=137`) for each that the wrapper did not record itself. A job never
/// staged gets its directory now, so the lock also stops a submitter still
/// on its way; a staged job whose directory is gone is not re-created. Ends
/// with each job's report. (An empty `started` is one being written: not
/// a start yet, so the job is waited for like one not started.)
pub fn cancel(scheduler: &dyn Scheduler, targets: &[CancelTarget<'_>], grace_secs: u32) -> String {
    let mut dirs = String::new();
    let mut ids = Vec::new();
    for t in targets {
        let id = quote(t.job_id);
        dirs.push_str(&format!(
            "  {id}) c_d={dir}; c_new={new} ;;\n",
            dir = t.dir,
            new = u8::from(t.never_staged)
        ));
        ids.push(id);
    }
    format!(
        r#"{prelude}{stop}grace={grace}
belay_cdir() {{
  case $1 in
{dirs}  esac
}}
belay_waiting=; belay_termed=; belay_skip=
belay_elsewhere() {{ echo "J $1 elsewhere"; echo "why=$2"; belay_skip="$belay_skip $1"; }}
belay_cancel1() {{
  if [ "$c_new" = 1 ]; then (umask 077; mkdir -p "$c_d" 2>/dev/null) || return 0; fi
  cd "$c_d" 2>/dev/null || return 0
  [ -s exit ] && return 0
  if [ -s started ]; then
    belay_ours "$c_d"
    [ "$ours" = elsewhere ] && {{ belay_elsewhere "$1" "$why"; return 0; }}
  elif [ -f launched ]; then
    c_ln=
    while IFS='=' read -r k v; do [ "$k" = node ] && c_ln=$v; done < launched
    if [ -n "$c_ln" ] && [ "$c_ln" != "$node" ]; then
      belay_elsewhere "$1" "it was launched on $c_ln, and this connection reached $node"; return 0
    fi
  fi
  : > cancel-requested
  if [ ! -e launch.lock ] && ( set -C; : > launch.lock ) 2>/dev/null; then
    printf 'code=\nended_at=%s\ncancelled=1\nnever_launched=1\n' "$(date +%s)" > "exit.tmp.$$" &&
      mv -f "exit.tmp.$$" exit
{rm_secrets}    return 0
  fi
  if [ -s started ]; then
    belay_term && belay_termed="$belay_termed $1"
  else
    belay_waiting="$belay_waiting $1"
    # Under a batch scheduler it leaves the queue and will never start
    # (nor read its secret file: removed here).
    belay_unqueue "$c_d" && {{ belay_unqueued="$belay_unqueued $1"
{rm_secrets}  }}
  fi
}}
belay_unqueued=
for c_id in {ids}; do belay_cdir "$c_id"; belay_cancel1 "$c_id"; done
belay_unqueue_flush
cd /
# A wrapper that has not started yet finds cancel-requested itself and never
# runs the command; wait only briefly so the common case ends decided.
i=0
while [ -n "$belay_waiting" ] && [ "$i" -lt 100 ]; do
  sleep 0.01 2>/dev/null || sleep 1
  i=$((i + 1)); c_rest=
  for c_id in $belay_waiting; do
    belay_cdir "$c_id"
    if [ -s "$c_d/exit" ]; then :
    elif [ -s "$c_d/started" ]; then belay_ours "$c_d"; belay_term && belay_termed="$belay_termed $c_id"
    else c_rest="$c_rest $c_id"; fi
  done
  belay_waiting=$c_rest
done
# Taken out of the queue before they started: they never will.
for c_id in $belay_waiting; do
  case " $belay_unqueued " in *" $c_id "*) ;; *) continue ;; esac
  belay_cdir "$c_id"
  [ -s "$c_d/exit" ] || [ -s "$c_d/started" ] && continue
  printf 'code=\nended_at=%s\ncancelled=1\nnever_started=1\n' "$(date +%s)" > "$c_d/exit.tmp.$$" &&
    mv -f "$c_d/exit.tmp.$$" "$c_d/exit"
done
belay_reap
# Processes that left the job's session but carry its BELAY_JOB_DIR (a
# `setsid` child holding a GPU): ended too.
for c_id in $belay_termed; do belay_cdir "$c_id"; belay_sweep_add "$c_d"; done
belay_sweep
# The wrapper records the exit itself unless it had to be KILLed.
i=0
while [ -z "$belay_killed" ] && [ "$i" -lt 100 ]; do
  c_rest=
  for c_id in $belay_termed; do belay_cdir "$c_id"; [ -s "$c_d/exit" ] || c_rest=yes; done
  [ -n "$c_rest" ] || break
  sleep 0.01 2>/dev/null || sleep 1
  i=$((i + 1))
done
for c_id in $belay_termed; do
  belay_cdir "$c_id"
  [ -s "$c_d/exit" ] && continue
  printf 'code=137\nended_at=%s\ncancelled=1\n' "$(date +%s)" > "$c_d/exit.tmp.$$" &&
    mv -f "$c_d/exit.tmp.$$" "$c_d/exit"
done
for c_id in {ids}; do
  case " $belay_skip " in *" $c_id "*) continue ;; esac
  belay_cdir "$c_id"; belay_report "$c_id" "$c_d"
done
echo END
"#,
        prelude = prelude(scheduler),
        stop = scheduler.stop() + &scheduler.unqueue() + &super::sweep::functions(),
        grace = grace_secs,
        ids = ids.join(" "),
        rm_secrets = crate::secrets::REMOVE_LINES,
    )
}

/// End what is left of a lost job's session (its wrapper died without an
/// exit file, its children may live on), and the processes outside it that
/// carry its `BELAY_JOB_DIR` ([`super::sweep`]). Signals only processes
/// that are provably the job's; prints `K done`.
pub fn kill_remnants(scheduler: &dyn Scheduler, dir_word: &str) -> String {
    format!(
        r#"{prelude}{stop}d={dir}
grace=2
if [ -s "$d/started" ]; then
  belay_ours "$d"
  if [ "$ours" = yes ]; then
    belay_term && belay_reap
    belay_sweep_add "$d"; belay_sweep
  fi
fi
echo "K done"
"#,
        prelude = prelude(scheduler),
        dir = dir_word,
        stop = scheduler.stop() + &super::sweep::functions(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::HostReport;
    use crate::scheduler::Direct;
    use std::process::Command;

    fn sh(script: &str, path: &str) -> String {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .env("PATH", path)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a stage script in `root` (a workroot) with `PATH` set to `path`.
    fn stage_in(
        root: &std::path::Path,
        key: &str,
        wrapper: &str,
        path: &str,
    ) -> std::process::Output {
        let script = stage(
            &Workroot(quote(&root.display().to_string())),
            key,
            "{}",
            wrapper,
            "\"$HOME\"",
            false,
            "marker",
        );
        Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .env("HOME", root)
            .env("PATH", path)
            .output()
            .unwrap()
    }

    /// [`stage_in`], which must succeed; its stdout.
    fn run_stage(root: &std::path::Path, key: &str, wrapper: &str, path: &str) -> String {
        let out = stage_in(root, key, wrapper, path);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The stage that makes a job's directory writes `run.sh` in place (no
    /// `mv`: its PATH has `mkdir` alone); a later one (a retry) replaces it
    /// by rename, so a launch already reading the first file reads it
    /// whole, unchanged.
    #[test]
    fn staging_writes_run_sh_in_place_once_then_replaces_it_by_rename() {
        use std::os::unix::fs::MetadataExt;
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join(".belay-workroot"), "marker\n").unwrap();
        let only_mkdir = tempfile::tempdir().unwrap();
        let mkdir = String::from_utf8(
            Command::new("sh")
                .args(["-c", "command -v mkdir"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        std::os::unix::fs::symlink(mkdir.trim(), only_mkdir.path().join("mkdir")).unwrap();
        let only_mkdir = only_mkdir.path().display().to_string();
        let full = std::env::var("PATH").unwrap();
        let first = "#!/bin/sh\necho first 'quoted' $HOME\n";
        let out = run_stage(root.path(), "j1", first, &only_mkdir);
        let dir = root.path().join("j1");
        assert!(out.contains(&format!("dir={}\n", dir.display())), "{out}");
        let run_sh = dir.join("run.sh");
        assert_eq!(std::fs::read_to_string(&run_sh).unwrap(), first);
        let held = std::fs::File::open(&run_sh).unwrap();
        let inode = held.metadata().unwrap().ino();

        let second = "#!/bin/sh\necho second\n";
        run_stage(root.path(), "j1", second, &full);
        assert_eq!(std::fs::read_to_string(&run_sh).unwrap(), second);
        assert_ne!(std::fs::metadata(&run_sh).unwrap().ino(), inode);
        let mut was = String::new();
        std::io::Read::read_to_string(&mut &held, &mut was).unwrap();
        assert_eq!(was, first, "the file a launch holds open is not rewritten");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["reserve", "run.sh", "spec.json"]);
        // Without `mv`, a stage that did not make the directory fails,
        // and leaves the record as it was.
        assert!(
            !stage_in(root.path(), "j1", first, &only_mkdir)
                .status
                .success()
        );
        assert_eq!(std::fs::read_to_string(&run_sh).unwrap(), second);

        // Locked (launched): staging leaves the record alone.
        std::fs::write(dir.join("launch.lock"), "").unwrap();
        assert!(run_stage(root.path(), "j1", first, &full).contains("locked\n"));
        assert_eq!(std::fs::read_to_string(&run_sh).unwrap(), second);
    }

    /// Launches a job whose `run.sh` writes its arguments to `ran`, with
    /// the persistent shell's directory `belay_d` (as `$__belay_d`) if
    /// given; returns the reply, then the `launched` record and `ran` once
    /// both are there.
    fn direct_launch(belay_d: Option<&std::path::Path>) -> (String, String, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("run.sh"),
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > ran.tmp && mv ran.tmp ran\n",
        )
        .unwrap();
        let word = quote(&dir.path().display().to_string());
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(launch(&Direct, "j1", &word));
        if let Some(d) = belay_d {
            cmd.env("__belay_d", d);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        let launched = dir.path().join("launched");
        let ran = dir.path().join("ran");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !(launched.exists() && ran.exists()) {
            assert!(
                std::time::Instant::now() < deadline,
                "no launched record or no run"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        (
            String::from_utf8(out.stdout).unwrap(),
            std::fs::read_to_string(&launched).unwrap(),
            std::fs::read_to_string(&ran).unwrap(),
        )
    }

    /// `launched_at=` of a `launched` record, and the clock's now.
    fn launched_at(record: &str) -> (u64, u64) {
        let at = record
            .lines()
            .find_map(|l| l.strip_prefix("launched_at="))
            .unwrap()
            .parse()
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        (at, now)
    }

    /// Outside a persistent shell (no boot time recorded) a direct launch
    /// replies with its record before the `launched` file is written (in
    /// the background, with `date`); the file follows, with the launch
    /// time.
    #[test]
    fn a_direct_launch_replies_with_its_record_and_writes_it_behind() {
        let (text, record, ran) = direct_launch(None);
        let node = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(
            text,
            // (The last line: the scheduler's ids, none here.)
            format!(
                "R launched\nJ j1 launching\nlock_age=0\nscheduler=direct\nnode={}\n\n",
                node.trim()
            )
        );
        let lines: Vec<&str> = record.lines().collect();
        assert_eq!(lines[0], "scheduler=direct");
        let (at, now) = launched_at(&record);
        assert!(now.abs_diff(at) <= 5, "launched_at {at}, now {now}");
        assert_eq!(lines[2], format!("node={}", node.trim()));
        // No persistent shell's records: the wrapper is told nothing.
        assert_eq!(ran, "\n\n");
    }

    /// In a persistent shell (`$__belay_d`), the launch hands the wrapper
    /// the shell's pid namespace and boot time, and writes `launched` with
    /// its clock reading taken from that boot time (here 1000 s early, to
    /// tell it from `date`); a record that is not a whole line of digits is
    /// not used.
    #[test]
    fn a_direct_launch_uses_the_persistent_shells_records() {
        let btime = crate::remote::wrapper::boot_time_for_test() as u64;
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("pidns"), "4026531999\n").unwrap();
        std::fs::write(d.path().join("btime"), format!("{}\n", btime - 1000)).unwrap();
        let (_, record, ran) = direct_launch(Some(d.path()));
        assert_eq!(ran, format!("4026531999\n{}\n", btime - 1000));
        let (at, now) = launched_at(&record);
        assert!(
            (now - 1002..=now - 998).contains(&at),
            "launched_at {at}, now {now}: not from the recorded boot time"
        );
        // Half-written (no newline yet) or not digits: not trusted.
        std::fs::write(d.path().join("pidns"), "40265").unwrap();
        std::fs::write(d.path().join("btime"), "12x\n").unwrap();
        let (_, record, ran) = direct_launch(Some(d.path()));
        assert_eq!(ran, "\n\n");
        let (at, now) = launched_at(&record);
        assert!(now.abs_diff(at) <= 5, "launched_at {at}, now {now}");
    }

    /// A job directory whose `started` names a live process, as run.sh writes it.
    fn fake_running_job(root: &std::path::Path, name: &str, pid: u32) -> (String, String) {
        let dir = root.join(name);
        std::fs::create_dir(&dir).unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let ticks = stat[stat.rfind(')').unwrap() + 2..]
            .split(' ')
            .nth(19)
            .unwrap()
            .to_string();
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
        let node = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        let pidns = Command::new("stat")
            .args(["-L", "-c", "%i", "/proc/self/ns/pid"])
            .output()
            .unwrap();
        let pidns = String::from_utf8(pidns.stdout).unwrap();
        let (boot, node, pidns) = (boot.trim(), node.trim(), pidns.trim());
        std::fs::write(
            dir.join("started"),
            format!("pid={pid}\nsid={pid}\nstart_ticks={ticks}\nboot_id={boot}\nnode={node}\npidns={pidns}\n"),
        )
        .unwrap();
        (
            dir.display().to_string(),
            format!("{pid} {ticks} {boot} {node} {pidns}"),
        )
    }

    #[test]
    fn quick_probe_with_and_without_awk_agrees_with_the_full_report() {
        let tmp = tempfile::tempdir().unwrap();
        let mut alive = Command::new("sleep").arg("30").spawn().unwrap();
        let (d1, k1) = fake_running_job(tmp.path(), "alive job", alive.id());
        let (d2, k2) = fake_running_job(tmp.path(), "ended", alive.id());
        std::fs::write(format!("{d2}/exit"), "code=0\nended_at=1\ncancelled=0\n").unwrap();
        // The pid now names another process: the job recorded other ticks.
        let (d3, _) = fake_running_job(tmp.path(), "recycled", alive.id());
        let started = std::fs::read_to_string(format!("{d3}/started")).unwrap();
        let ticks = started
            .lines()
            .find_map(|l| l.strip_prefix("start_ticks="))
            .unwrap();
        std::fs::write(
            format!("{d3}/started"),
            started.replace(&format!("start_ticks={ticks}"), "start_ticks=1"),
        )
        .unwrap();
        let k3 = format!("{} 1 {}", alive.id(), k1.splitn(3, ' ').nth(2).unwrap());
        let targets = [
            ProbeTarget {
                job_id: "a1",
                dir: quote(&d1),
                known: Some(&k1),
            },
            ProbeTarget {
                job_id: "e2",
                dir: quote(&d2),
                known: Some(&k2),
            },
            ProbeTarget {
                job_id: "r3",
                dir: quote(&d3),
                known: Some(&k3),
            },
            ProbeTarget {
                job_id: "f4",
                dir: quote(&d1),
                known: None,
            },
        ];
        for builtin_max in [QUICK_BUILTIN_MAX, 0] {
            quick_probe_agrees(&targets, builtin_max, tmp.path());
        }
        alive.kill().unwrap();
        alive.wait().unwrap();
    }

    /// `started` is written in place: the moment it exists empty (or stays
    /// so, its wrapper killed mid-write), the job has not started yet — it
    /// is launching, not dead.
    #[test]
    fn an_empty_started_record_is_not_a_start_yet() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("j1");
        std::fs::create_dir(&dir).unwrap();
        for f in ["run.sh", "launch.lock", "started"] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        let targets = [ProbeTarget {
            job_id: "j1",
            dir: quote(&dir.display().to_string()),
            known: None,
        }];
        let r = HostReport::parse(&sh(
            &probe_with(&Direct, &targets, QUICK_BUILTIN_MAX),
            "/usr/bin:/bin",
        ));
        assert_eq!(r.jobs["j1"].status, crate::remote::RemoteStatus::Launching);
    }

    /// The probe of `targets`, with and without awk on the PATH, checked
    /// against what the full report says of each.
    fn quick_probe_agrees(targets: &[ProbeTarget<'_>], builtin_max: usize, tmp: &std::path::Path) {
        let script = probe_with(&Direct, targets, builtin_max);
        let with_awk = HostReport::parse(&sh(&script, "/usr/bin:/bin"));
        // A PATH with every tool the probe uses except awk.
        let bin = tmp.join(format!("bin{builtin_max}"));
        std::fs::create_dir(&bin).unwrap();
        for tool in ["stat", "grep", "sed", "date", "cat"] {
            std::os::unix::fs::symlink(format!("/usr/bin/{tool}"), bin.join(tool))
                .or_else(|_| std::os::unix::fs::symlink(format!("/bin/{tool}"), bin.join(tool)))
                .unwrap();
        }
        let no_awk = HostReport::parse(&sh(&script, bin.to_str().unwrap()));
        for r in [&with_awk, &no_awk] {
            use crate::remote::RemoteStatus::*;
            assert_eq!(r.jobs["a1"].status, Running);
            assert_eq!(r.jobs["e2"].status, Exit, "an exit file wins");
            assert_eq!(r.jobs["r3"].status, Dead, "other start ticks: recycled pid");
            assert_eq!(r.jobs["f4"].status, Running);
            assert_eq!(r.jobs.len(), 4);
        }
    }
}
