//! The `slurm` scheduler: the wrapper is the batch script, handed to
//! `sbatch` on the login node; Slurm's own commands (`squeue`, `scancel`,
//! `sacct` where accounting exists) say the rest. Nothing is installed on
//! the cluster.
//!
//! What it must never do, and how it avoids it:
//! - **Submit twice.** Each job carries a token, `belay:<job key>`, as its
//!   Slurm comment. When sbatch's answer is lost or garbled ("Socket timed
//!   out" after the job was accepted), the launch looks the token up in the
//!   queue before any retry and adopts the job it finds. A launch whose
//!   reply never came back (a dropped link) is adopted the same way by the
//!   next probe.
//! - **Call a job done because it left `squeue`.** A job ends by its `exit`
//!   file. Without one, Slurm's record (`squeue -t all` while slurmctld
//!   keeps it, `sacct` where accounting exists, else the job completion
//!   file where the site keeps one and it is readable) names how it ended
//!   (TIMEOUT, NODE_FAIL, CANCELLED…); with no record either, it is `lost`
//!   only once its heartbeat has been silent for [`LOST_GRACE_SECS`].
//! - **Poll the scheduler per job, or often.** One `squeue` lists every job
//!   of the account; its answer is cached beside the jobs
//!   (`<workroot>/.belay-squeue`) and reused for the host's poll interval
//!   by every script of every belay client — the daemon, a `--no-daemon`
//!   CLI, another laptop — so the site sees at most one call per interval.
//!   A listing older than a job's launch never speaks for it.

use super::Scheduler;
use crate::job::Job;

/// A started job that left the queue with no record is lost only after its
/// heartbeat (every [`crate::engine::HEARTBEAT_SECS`]) has been silent this
/// long: a slow shared file system or a stale listing must not kill it.
pub const LOST_GRACE_SECS: u32 = 4 * crate::engine::HEARTBEAT_SECS;

/// sbatch options belay sets itself: the user may not override them.
const RESERVED: [&str; 15] = [
    "--comment",
    "--job-name",
    "-J",
    "--output",
    "-o",
    "--error",
    "-e",
    "--chdir",
    "-D",
    "--parsable",
    "--wrap",
    "--wait",
    "-W",
    "--array",
    "--requeue",
];

/// Why a pass-through `--sbatch-arg` would break belay's hold on the job.
pub fn reserved_arg(arg: &str) -> Option<&'static str> {
    let name = arg.split('=').next().unwrap_or(arg);
    RESERVED
        .iter()
        .copied()
        .find(|r| *r == name || (r.len() == 2 && name.starts_with(r) && !name.starts_with("--")))
}

pub struct Slurm {
    /// The least time between two `squeue` calls on the host.
    pub poll_secs: u64,
}

impl Scheduler for Slurm {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn preflight(&self) -> String {
        r#"for belay_c in sbatch squeue scancel; do
  command -v "$belay_c" >/dev/null 2>&1 || { echo "R unsupported the host has no '$belay_c' command on its PATH (the slurm scheduler drives Slurm through it)"; exit 0; }
done
"#
        .to_string()
    }

    fn submit(&self) -> String {
        // `belay_refused` set: nothing was submitted (Slurm said so).
        r#"  belay_token="belay:${PWD##*/}"; belay_note=; belay_try=0
  while [ -z "$belay_ids" ] && [ -z "$belay_refused" ] && [ "$belay_try" -lt 3 ]; do
    belay_try=$((belay_try + 1))
    belay_sb=$(sbatch --parsable ./run.sh 2>&1 </dev/null); belay_rc=$?
    belay_sid=
    if [ "$belay_rc" = 0 ]; then
      belay_sid=${belay_sb##*
}; belay_sid=${belay_sid%%;*}
      case $belay_sid in ''|*[!0-9_]*) belay_sid= ;; esac
    fi
    if [ -n "$belay_sid" ]; then belay_ids="scheduler_id=$belay_sid"; break; fi
    belay_msg=$(printf '%s' "$belay_sb" | tr '\n' ' ')
    case $belay_msg in
      *[Tt]imed\ out*|*[Ss]ocket*|*[Uu]nable\ to\ contact*|*onnect*|*ommunication*|*emporarily*|*[Zz]ero\ [Bb]ytes*|'') ;;
      # Slurm answered, and the answer was no: nothing was submitted.
      *) [ "$belay_rc" != 0 ] && { belay_refused=$belay_msg; break; } ;;
    esac
    # The answer was lost or garbled: the job may exist. Look for its
    # token (for up to 10 s) before anything else, and adopt what exists.
    belay_i=0
    while [ "$belay_i" -lt 10 ]; do
      belay_sq_fresh "$PWD"
      belay_sq_token "$belay_token"
      [ -n "$sq_id" ] && break
      sleep 1; belay_i=$((belay_i + 1))
    done
    if [ -n "$sq_id" ]; then
      belay_ids="scheduler_id=$sq_id
submit_note=adopted Slurm job $sq_id (found by its token) after sbatch said: $belay_msg"
    else
      belay_note="sbatch said: $belay_msg"
    fi
  done
  # Still unanswered: leave the lock and no `launched`; the next probe
  # looks for the token again, and the job is lost if it never shows.
  [ -z "$belay_ids" ] && [ -z "$belay_refused" ] && { echo "R unsure $belay_note"; echo "J "$belay_job" launching"; echo "lock_age=0"; exit 0; }
"#
        .to_string()
    }

    fn liveness(&self) -> String {
        format!(
            r#"belay_sq=; belay_sq_at=; belay_sq_err=; belay_sq_done=
# belay_sq_load DIR: Slurm's listing of this account's jobs (`squeue -t
# all`: `ID|STATE|REASON|COMMENT` lines), once per script, read into
# variables (sq_s_ID, sq_r_ID, and sq_t_KEY for a belay token) so that each
# job's lookup is one expansion, not a scan; reused from the cache beside
# DIR's workroot while younger than the poll interval.
belay_sq_load() {{
  [ -n "$belay_sq_done" ] && return 0
  belay_sq_done=1
  sq_c="${{1%/*}}/.belay-squeue"; sq_now=$(date +%s)
  if [ -f "$sq_c" ]; then
    sq_t=$(belay_mtime "$sq_c")
    if [ "$((sq_now - sq_t))" -lt {poll} ] && [ "$((sq_now - sq_t))" -ge 0 ]; then
      belay_sq=$(cat "$sq_c" 2>/dev/null) && {{ belay_sq_at=$sq_t; belay_sq_parse; return 0; }}
    fi
  fi
  belay_sq_fresh "$1"
}}
# belay_sq_fresh DIR: ask squeue now (a submit's own lookups; the cache).
belay_sq_fresh() {{
  belay_sq_done=1
  sq_c="${{1%/*}}/.belay-squeue"; sq_now=$(date +%s)
  if sq_out=$(squeue --me -h -t all -o '%A|%T|%r|%k' 2>&1); then
    belay_sq=$sq_out; belay_sq_at=$sq_now; belay_sq_err=
    printf '%s\n' "$sq_out" > "$sq_c.$$" 2>/dev/null && mv -f "$sq_c.$$" "$sq_c" 2>/dev/null
    belay_sq_parse
  else
    belay_sq_at=; belay_sq_err=$(printf '%s' "$sq_out" | tr '\n' ' ')
  fi
}}
# belay_sq_word KEY: sets sq_w to KEY with each `-` made `_` (a variable
# name part), without a process.
belay_sq_word() {{
  sq_w=$1
  while :; do case $sq_w in *-*) sq_w=${{sq_w%%-*}}_${{sq_w#*-}} ;; *) break ;; esac; done
}}
belay_sq_parse() {{
  while IFS='|' read -r sq_a sq_b sq_x sq_k; do
    case $sq_a in ''|*[!0-9_]*) continue ;; esac
    eval "sq_s_$sq_a=\$sq_b; sq_r_$sq_a=\$sq_x"
    case $sq_k in
      belay:*) sq_k=${{sq_k#belay:}}
        case $sq_k in ''|*[!0-9a-zA-Z_-]*) ;; *) belay_sq_word "$sq_k"; eval "sq_t_$sq_w=\$sq_a" ;; esac ;;
    esac
  done <<EOF
$belay_sq
EOF
}}
# belay_sq_find SLURM_ID DIR: sets sq_state and sq_reason (empty: not
# listed) and sq_at (when the listing was taken; empty: squeue failed).
belay_sq_find() {{
  sq_state=; sq_reason=
  belay_sq_load "$2"; sq_at=$belay_sq_at
  [ -n "$sq_at" ] || return 0
  case $1 in ''|*[!0-9_]*) return 0 ;; esac
  eval "sq_state=\${{sq_s_$1-}}; sq_reason=\${{sq_r_$1-}}"
}}
# belay_sq_token TOKEN: sets sq_id to the job whose comment is TOKEN
# (`belay:KEY`).
belay_sq_token() {{
  sq_id=; sq_k=${{1#belay:}}
  case $sq_k in ''|*[!0-9a-zA-Z_-]*) return 0 ;; esac
  belay_sq_word "$sq_k"
  eval "sq_id=\${{sq_t_$sq_w-}}"
}}
# belay_sacct SLURM_ID: where accounting exists, the job's final state
# (sets sq_state, sq_reason); at most one sacct call per script, for all
# jobs of the last week, read into variables (sa_s_ID).
belay_sacct_done=
belay_sacct() {{
  if [ -z "$belay_sacct_done" ]; then
    belay_sacct_done=1
    if command -v sacct >/dev/null 2>&1 &&
      sq_out=$(sacct -X -n -P -o JobIDRaw,State -S now-7days --user="$(id -un)" 2>/dev/null); then
      while IFS='|' read -r sq_a sq_b; do
        case $sq_a in ''|*[!0-9_]*) continue ;; esac
        eval "sa_s_$sq_a=\${{sq_b%% *}}"
      done <<EOF
$sq_out
EOF
    fi
  fi
  case $1 in ''|*[!0-9_]*) return 0 ;; esac
  eval "sq_state=\${{sa_s_$1-}}"
  [ -n "$sq_state" ] && sq_reason="from accounting"
}}
# belay_jobcomp SLURM_ID: where the site keeps job completion records in
# a text file (JobCompType=jobcomp/filetxt) readable here, the job's final
# state from its record (sets sq_state, sq_reason). No Slurm call: the
# file is named in slurm.conf; a configless site has none to read.
belay_jobcomp() {{
  case $1 in ''|*[!0-9_]*) return 0 ;; esac
  jc_conf=${{SLURM_CONF:-/etc/slurm/slurm.conf}}
  [ -r "$jc_conf" ] || return 0
  jc_type=; jc_loc=/var/log/slurm_jobcomp.log
  while IFS='=' read -r k v; do
    case $k in
      [Jj]ob[Cc]omp[Tt]ype*) jc_type=${{v%%[ #]*}} ;;
      [Jj]ob[Cc]omp[Ll]oc*) jc_loc=${{v%%[ #]*}} ;;
    esac
  done < "$jc_conf"
  [ "$jc_type" = jobcomp/filetxt ] && [ -r "$jc_loc" ] || return 0
  # (A site's file can be long: one grep, not a shell loop.)
  jc_line=$(grep "^JobId=$1 " "$jc_loc" 2>/dev/null | tail -n 1)
  case $jc_line in *" JobState="*) ;; *) return 0 ;; esac
  sq_state=${{jc_line#* JobState=}}; sq_state=${{sq_state%% *}}
  [ -n "$sq_state" ] && sq_reason="from the job completion record"
}}
belay_slurm_id() {{
  sl_id=
  [ -f "$1/launched" ] && while IFS='=' read -r k v; do [ "$k" = scheduler_id ] && sl_id=$v; done < "$1/launched"
}}
# Slurm states in which the job still holds (or waits for) its allocation.
belay_sq_live() {{
  case $1 in
    PENDING|RUNNING|CONFIGURING|COMPLETING|SUSPENDED|REQUEUED|REQUEUE_HOLD|REQUEUE_FED|RESIZING|SIGNALING|STAGE_OUT|STOPPED|RESV_DEL_HOLD|SPECIAL_EXIT) return 0 ;;
  esac
  return 1
}}
belay_alive() {{
  sched_end=; sched_reason=
  belay_read_started "$1"
  belay_slurm_id "$1"
  if [ -z "$sl_id" ]; then
    alive=elsewhere; why="no Slurm job id was recorded for it (launched is missing)"; return
  fi
  belay_sq_find "$sl_id" "$1"
  if [ -z "$sq_at" ]; then
    alive=elsewhere; why="Slurm could not be asked: $belay_sq_err"; return
  fi
  if [ -n "$sq_state" ] && belay_sq_live "$sq_state"; then alive=yes; return; fi
  [ -n "$sq_state" ] || belay_sacct "$sl_id"
  [ -n "$sq_state" ] || belay_jobcomp "$sl_id"
  if [ -n "$sq_state" ]; then
    alive=no; sched_end=$sq_state; sched_reason=$sq_reason
    why="Slurm ended it: $sq_state${{sq_reason:+ ($sq_reason)}}"; return
  fi
  # Gone from the queue, and Slurm keeps no record (MinJobAge passed, no
  # accounting): only a silent heartbeat makes it lost.
  sq_hb=$(belay_mtime "$1/heartbeat"); sq_age=$(($(date +%s) - sq_hb))
  if [ "$sq_age" -le {grace} ]; then alive=yes; return; fi
  alive=no
  why="it left Slurm's queue, Slurm keeps no record of it, and its heartbeat has been silent for $sq_age s"
}}
# belay_sched_launched ID DIR: a launched job that has not started — its
# place in the queue (`sched_state`, `sched_reason`), or how Slurm ended
# it. A launch whose reply was lost is adopted here by its token.
belay_sched_launched() {{
  if [ ! -f "$2/launched" ]; then
    belay_sq_load "$2"; belay_sq_token "belay:${{2##*/}}"
    [ -n "$sq_id" ] || return 0
    printf 'scheduler=slurm\nlaunched_at=%s\nnode=%s\nscheduler_id=%s\nsubmit_note=%s\n' "$(belay_mtime "$2/launch.lock")" "$node" "$sq_id" \
      "adopted Slurm job $sq_id (found by its token): the launch's reply was lost" > "$2/launched.tmp.$$" &&
      mv -f "$2/launched.tmp.$$" "$2/launched" && belay_cat "$2/launched"
  fi
  belay_slurm_id "$2"
  [ -n "$sl_id" ] || return 0
  belay_sq_find "$sl_id" "$2"
  if [ -z "$sq_at" ]; then echo "sched_unknown=Slurm could not be asked: $belay_sq_err"; return 0; fi
  sq_la=
  while IFS='=' read -r k v; do [ "$k" = launched_at ] && sq_la=$v; done < "$2/launched"
  if [ -z "$sq_state" ] && [ -n "$sq_la" ] && [ "$sq_at" -le "$sq_la" ]; then
    echo "sched_unknown=the queue was last listed before the job was submitted"; return 0
  fi
  [ -n "$sq_state" ] || belay_sacct "$sl_id"
  [ -n "$sq_state" ] || belay_jobcomp "$sl_id"
  echo "sched_state=${{sq_state:-gone}}"; echo "sched_reason=$sq_reason"
}}
# belay_sched_ended ID DIR: the job has an `exit` file. A signal that
# belay did not send (TIMEOUT, a preemption, someone's scancel) is named
# from Slurm's record (`sched_info`); while Slurm has not settled the
# job yet, the verdict waits (`sched_hold`).
belay_sched_ended() {{
  sched_hold=; sched_info=; e_code=; e_canc=; e_at=
  while IFS='=' read -r k v; do
    case $k in code) e_code=$v ;; cancelled) e_canc=$v ;; ended_at) e_at=$v ;; esac
  done < "$2/exit"
  [ "$e_canc" = 1 ] && return 0
  case $e_code in ''|*[!0-9]*) return 0 ;; esac
  [ "$e_code" -ge 128 ] || return 0
  belay_slurm_id "$2"; [ -n "$sl_id" ] || return 0
  belay_sq_find "$sl_id" "$2"
  [ -n "$sq_state" ] && sched_info="sched_state=$sq_state
sched_reason=$sq_reason"
  # Settled, or long enough ago: the verdict stands on what is known.
  if [ -n "$sq_state" ] && ! belay_sq_live "$sq_state"; then return 0; fi
  [ "$sq_reason" = TimeLimit ] && return 0
  [ -n "$e_at" ] && [ "$(($(date +%s) - e_at))" -gt {settle} ] && return 0
  [ -z "$sq_at" ] && return 0
  sched_hold=1
}}
"#,
            poll = self.poll_secs.max(1),
            grace = LOST_GRACE_SECS,
            settle = self.poll_secs.max(1) * 2 + 10,
        )
    }

    fn stop(&self) -> String {
        // Slurm signals every process of the job, wherever it runs: belay
        // asks it (one scancel for all jobs), never kills by pid.
        r#"belay_sl_ids=; belay_sl_dirs=; belay_killed=
belay_ours() {
  belay_read_started "$1"; belay_slurm_id "$1"
  if [ -n "$sl_id" ]; then ours=yes; sl_d=$1; else ours=no; fi
}
belay_term() {
  [ "$ours" = yes ] || return 1
  belay_sl_ids="$belay_sl_ids $sl_id"
  belay_sl_dirs="$belay_sl_dirs
$sl_d"
}
belay_reap() {
  [ -n "$belay_sl_ids" ] || return 0
  scancel $belay_sl_ids 2>/dev/null
  waited=0; sl_left=
  while [ "$waited" -lt "$((grace * 20))" ]; do
    sl_left=
    while IFS= read -r sl_x; do
      [ -n "$sl_x" ] && [ ! -s "$sl_x/exit" ] && sl_left=1
    done <<EOF
$belay_sl_dirs
EOF
    [ -z "$sl_left" ] && break
    sleep 0.05 2>/dev/null || sleep 1
    waited=$((waited + 1))
  done
  if [ -n "$sl_left" ]; then scancel -s KILL $belay_sl_ids 2>/dev/null; belay_killed=yes; fi
}
"#
        .to_string()
    }

    fn unqueue(&self) -> String {
        // A launched job that has not started leaves the queue: one
        // scancel for all of them; the cancel writes their `exit`.
        r#"belay_uq_ids=
belay_unqueue() {
  belay_slurm_id "$1"
  [ -n "$sl_id" ] || return 1
  belay_uq_ids="$belay_uq_ids $sl_id"
}
belay_unqueue_flush() { [ -z "$belay_uq_ids" ] || scancel $belay_uq_ids 2>/dev/null; }
"#
        .to_string()
    }

    fn report_hooks(&self) -> String {
        String::new() // defined with the liveness functions
    }

    fn batch_header(&self, job: &Job) -> Option<String> {
        let name = job
            .name
            .clone()
            .unwrap_or_else(|| format!("belay-{}", job.id));
        // --no-requeue: Slurm requeues a batch job whose node fails by
        // default, which would run the command a second time in the same
        // job directory; belay's promise is once, and the failure named.
        let mut h = format!(
            "#SBATCH --job-name={name}\n#SBATCH --comment=belay:{key}\n\
             #SBATCH --output=slurm-%j.out\n#SBATCH --open-mode=append\n\
             #SBATCH --no-requeue\n",
            key = job.key
        );
        for opt in &job.sbatch {
            h.push_str(&format!("#SBATCH {opt}\n"));
        }
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The functions a probe runs, against a cached squeue listing: a
    /// pending job's reason, a lost reply adopted by its token, and a
    /// job absent from a listing taken before it was launched (no verdict).
    #[test]
    fn queue_lookups_read_the_cached_listing() {
        let root = tempfile::tempdir().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        std::fs::write(
            root.path().join(".belay-squeue"),
            "41|PENDING|Priority|belay:aa11bb22-cc33dd44\n\
             42|RUNNING|None|(null)\n\
             43_7|PENDING|Resources|belay:ee55ff66-cc33dd44\n",
        )
        .unwrap();
        let job = |key: &str, launched: Option<String>| {
            let d = root.path().join(key);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("launch.lock"), "").unwrap();
            if let Some(l) = launched {
                std::fs::write(d.join("launched"), l).unwrap();
            }
            d.display().to_string()
        };
        let pending = job(
            "aa11bb22-cc33dd44",
            Some(format!(
                "scheduler=slurm\nlaunched_at={}\nscheduler_id=41\n",
                now - 5
            )),
        );
        let lost_reply = job("ee55ff66-cc33dd44", None);
        let newer = job(
            "99999999-cc33dd44",
            Some(format!(
                "scheduler=slurm\nlaunched_at={}\nscheduler_id=77\n",
                now + 5
            )),
        );
        let slurm = Slurm { poll_secs: 600 };
        let script = format!(
            "{}belay_report a '{pending}'\nbelay_report b '{lost_reply}'\nbelay_report c '{newer}'\n",
            crate::remote::functions::prelude(&slurm)
        );
        // No squeue on this PATH: everything must come from the cache.
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let r = crate::remote::HostReport::parse(&text);
        assert_eq!(r.jobs["a"].field("sched_state"), Some("PENDING"), "{text}");
        assert_eq!(r.jobs["a"].field("sched_reason"), Some("Priority"));
        assert_eq!(r.jobs["b"].field("scheduler_id"), Some("43_7"), "{text}");
        assert_eq!(r.jobs["b"].field("sched_reason"), Some("Resources"));
        assert!(std::path::Path::new(&lost_reply).join("launched").exists());
        assert!(r.jobs["c"].field("sched_unknown").is_some(), "{text}");
        assert_eq!(r.jobs["c"].field("sched_state"), None);
    }

    #[test]
    fn reserved_options_are_found_in_all_their_spellings() {
        assert_eq!(reserved_arg("--comment=x"), Some("--comment"));
        assert_eq!(reserved_arg("-Jname"), Some("-J"));
        assert_eq!(reserved_arg("-o"), Some("-o"));
        assert_eq!(reserved_arg("--exclusive"), None);
        assert_eq!(reserved_arg("--open-mode=append"), None);
        assert_eq!(reserved_arg("--mail-type=END"), None);
    }
}
