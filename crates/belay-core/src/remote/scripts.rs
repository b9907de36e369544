//! Builders for the protocol scripts. Each returns a complete POSIX sh
//! script for [`crate::transport::Transport::run_script`]; every value in it
//! is quoted with [`crate::shell::quote`]. Each script is idempotent.

use crate::scheduler::Scheduler;
use crate::shell::{quote, write_file_atomically};
use crate::transport::Workroot;

use super::functions::prelude;

/// Largest slice of one output stream returned by one read.
pub const MAX_CHUNK: u64 = 4 << 20;

/// Stage a job: create its directory and write `spec.json` and `run.sh`.
/// Once `launch.lock` exists the files are left alone (the launched job's
/// record must not change under it). Prints `dir=ABSOLUTE_DIR`, then
/// `workdir=missing` if the working directory does not exist.
pub fn stage(
    root: &Workroot,
    key: &str,
    spec_json: &str,
    wrapper: &str,
    workdir_word: &str,
) -> String {
    format!(
        r#"umask 077
root={root}
cd "$root/"{key} 2>/dev/null || {{ mkdir -p "$root/"{key} && cd "$root/"{key}; }} || exit 3
if [ ! -e launch.lock ]; then
{spec}{run}fi
printf 'dir='; pwd -P
(cd "$HOME" 2>/dev/null; cd {workdir_word} 2>/dev/null) || echo "workdir=missing"
"#,
        root = root.0,
        key = quote(key),
        spec = write_file_atomically("spec.json", spec_json),
        run = write_file_atomically("run.sh", wrapper),
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
if ( set -C; : > launch.lock ) 2>/dev/null; then
  belay_ids=$(
{submit}  )
  printf 'scheduler={sched}\n%s\n' "$belay_ids" > launched
  echo "R launched"
else
  echo "R adopted"
fi
belay_report {id} "$d"
"#,
        prelude = prelude(scheduler),
        dir = dir_word,
        preflight = scheduler.preflight(),
        submit = scheduler.submit(),
        sched = scheduler.name(),
        id = quote(job_id),
    )
}

/// One job to probe: its id and its directory on the host.
pub struct ProbeTarget<'a> {
    pub job_id: &'a str,
    pub dir: String,
}

/// Where a job's directory is: the recorded absolute path, or (before
/// staging reported it) the workroot joined with the key, as a shell word.
pub fn job_dir_word(root: &Workroot, key: &str, recorded: Option<&str>) -> String {
    match recorded {
        Some(dir) => quote(dir),
        None => format!("{}/{}", root.0, quote(key)),
    }
}

/// One round trip that reports every listed job of a host.
pub fn probe(scheduler: &dyn Scheduler, targets: &[ProbeTarget<'_>]) -> String {
    let mut s = prelude(scheduler);
    for t in targets {
        s.push_str(&format!("belay_report {} {}\n", quote(t.job_id), t.dir));
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

/// Stop a job (staged or not). Before launch: take `launch.lock` so it can never start, and
/// write its `exit` (`C prevented`). After: mark `cancel-requested`, TERM
/// the job's session, KILL what is left after `grace` seconds, and if the
/// wrapper did not record an exit itself, record one (`code=137`). Ends with
/// the job's report.
pub fn cancel(scheduler: &dyn Scheduler, job_id: &str, dir_word: &str, grace_secs: u32) -> String {
    format!(
        r#"{prelude}d={dir}
grace={grace}
# A job not staged yet gets its directory now, so the lock below also
# stops a submitter that is still on its way.
(umask 077; mkdir -p "$d") || exit 3
cd "$d" || exit 3
if [ -f exit ]; then echo "C ended"; belay_report {id} "$d"; exit 0; fi
: > cancel-requested
if ( set -C; : > launch.lock ) 2>/dev/null; then
  printf 'code=\nended_at=%s\nnever_launched=1\n' "$(date +%s)" > exit.tmp && mv -f exit.tmp exit
  echo "C prevented"; belay_report {id} "$d"; exit 0
fi
i=0
while [ ! -f started ] && [ ! -f exit ] && [ "$i" -lt 500 ]; do
  sleep 0.01 2>/dev/null || sleep 1
  i=$((i + 1))
done
if [ -f started ] && [ ! -f exit ]; then
  belay_read_started "$d"
  killed=
{stop}  i=0
  while [ ! -f exit ] && [ "$i" -lt 100 ]; do
    sleep 0.01 2>/dev/null || sleep 1
    i=$((i + 1))
  done
  if [ ! -f exit ]; then
    printf 'code=137\nended_at=%s\n' "$(date +%s)" > exit.tmp && mv -f exit.tmp exit
  fi
fi
echo "C stopped"
belay_report {id} "$d"
"#,
        prelude = prelude(scheduler),
        dir = dir_word,
        grace = grace_secs,
        id = quote(job_id),
        stop = scheduler.stop(),
    )
}

/// End what is left of a lost job's session (its wrapper died without an
/// exit file, its children may live on). Signals only processes that are
/// provably the job's; prints `K done`.
pub fn kill_remnants(scheduler: &dyn Scheduler, dir_word: &str) -> String {
    format!(
        r#"{prelude}d={dir}
grace=2
if [ -f "$d/started" ]; then
  belay_read_started "$d"
{stop}fi
echo "K done"
"#,
        prelude = prelude(scheduler),
        dir = dir_word,
        stop = scheduler.stop(),
    )
}
