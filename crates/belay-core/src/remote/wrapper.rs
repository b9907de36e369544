//! The wrapper script (`run.sh`) that runs a job on its host.
//!
//! It records who it is (`started`), keeps a heartbeat under a batch
//! scheduler (see [`Heartbeat`]), runs the user's
//! command in the user's login shell with output appended to `stdout` and
//! `stderr`, ends whatever the job left running in its process group, and
//! records how it ended (`exit`). Both records are written whole: in place
//! by one `printf` on the host that launched the job (readers take an
//! empty record as none yet), by temp file and rename under a batch
//! scheduler (see [`RecordWrites`]). It survives the link dropping: it is detached
//! from any terminal and from the channel that started it.
//!
//! A full disk: staging leaves a small `reserve` file in the job directory.
//! If the wrapper cannot write `started`, it does not run the command (no one
//! could tell it from a dead job); it removes the reserve and writes an
//! `exit` file whose `why=` names the disk. At the end the reserve is emptied
//! before `exit` is written, so a job that filled the disk still records how
//! it ended.
//!
//! Signals: TERM/INT/HUP are trapped (not ignored), so the user's command
//! gets the default disposition and dies on `belay cancel` while the wrapper
//! lives on to record how it ended.
//!
//! Debug hold: when the command failed and the job was run with
//! `--hold-on-failure SECS`, or whenever the command left a `hold` file in
//! the job directory (optionally holding a number of seconds), the wrapper
//! ends the job's processes as always, writes `held` (`code`, `held_at`,
//! `until`, `hold=failure|requested`) and waits — keeping the directory,
//! and under a batch scheduler the allocation — until a `release` file
//! appears (`belay release`), a cancel (TERM or `cancel-requested`), or
//! `until` passes: the time limit is enforced here, on the host, with no
//! belay process needed. Under Slurm, `until` is never after the job's
//! own time limit (its allocation ends there). Then it writes `exit` with
//! the command's own code and `hold_end=released|cancelled|expired`.
//!
//! Secrets (`run --secret`, see `secrets.rs`): `secrets.where` names the
//! job's 0600 secret file. The command's subshell sources it into
//! unexported variables, removes it, then exports them, so only the
//! command (and what it starts) has them in its environment; without the
//! file the command does not run (exit 125). A job cancelled before it
//! starts removes the file unread.

use crate::job::Command;
use crate::shell::quote;

/// Inputs of the wrapper: everything is baked in at generation time, so the
/// job runs the same however and whenever it is launched.
pub struct WrapperSpec<'a> {
    pub job_id: &'a str,
    pub command: &'a Command,
    pub workdir: Option<&'a str>,
    pub env: &'a [(String, String)],
    pub login_shell: bool,
    pub heartbeat_secs: u32,
    /// No working directory given and inputs were: run in `inputs/`.
    pub run_in_inputs: bool,
    /// `--hold-on-failure`: seconds a failed job is held (0: not held
    /// unless it asks with a `hold` file).
    pub hold_secs: u32,
    /// A batch scheduler's directives (`#SBATCH …` lines): the wrapper is
    /// then the batch script, run from a copy in the scheduler's spool, so
    /// it finds its job directory where it was submitted.
    pub batch_header: Option<&'a str>,
    /// `run --secret`: the names of the variables the secret file (see
    /// [`crate::secrets`]) sets for the command.
    pub secrets: &'a [String],
}

/// A hold the job asked for with an empty `hold` file, and no
/// `--hold-on-failure` to take the length from: one hour.
pub const DEFAULT_REQUESTED_HOLD_SECS: u32 = 3600;

/// A working directory as a shell word: `~/x` is relative to the job's home
/// on the host, anything else is taken as given (relative to home).
pub fn workdir_word(workdir: Option<&str>) -> String {
    match workdir {
        None | Some("~") => "\"$HOME\"".to_string(),
        Some(w) if w.starts_with("~/") => format!("\"$HOME\"/{}", quote(&w[2..])),
        Some(w) => quote(w),
    }
}

/// How the wrapper writes its `started` and `exit` records: the redirection
/// that ends their `printf`, and the script's comment on it.
struct RecordWrites {
    started_to: &'static str,
    exit_to: &'static str,
    note: &'static str,
}

impl RecordWrites {
    /// On the host that launched it (direct), in place: one `printf`, no
    /// temp file and no `mv` process before the command starts or after it
    /// ends; every reader takes an empty record as none yet (a single small
    /// `write` is seen whole or not at all on a local file system). Under a
    /// batch scheduler the job runs on a compute node and is judged from a
    /// login node over a network file system: there, temp file and rename.
    fn for_batch(batch: bool) -> RecordWrites {
        if batch {
            RecordWrites {
                started_to: r#"> "started.tmp.$$" && mv -f "started.tmp.$$" started"#,
                exit_to: r#"> "$belay_d/exit.tmp.$$" && mv -f "$belay_d/exit.tmp.$$" "$belay_d/exit""#,
                note: "# Written whole, then renamed: readers on other nodes see all or nothing.\n",
            }
        } else {
            RecordWrites {
                started_to: "> started",
                exit_to: r#"> "$belay_d/exit""#,
                note: "# Written in place by one `printf` (no `mv` process before the command\n\
                       # starts): every reader takes an empty `started` as none yet.\n",
            }
        }
    }
}

/// The `heartbeat` file, touched every `heartbeat_secs` while the wrapper
/// lives: kept only under a batch scheduler, where it is the one sign of
/// life a login node can see of a job that left the scheduler's queue with
/// no record (Slurm's lost check). A directly launched job is judged by
/// its wrapper's pid, start ticks and boot id instead; a heartbeat there
/// would cost a `sleep` process at every start (on the path to the
/// command, measured 0.94× an attached `run -- true` without it) and
/// another every interval for as long as the job runs.
struct Heartbeat {
    /// The loop started before the command (empty: none).
    start: String,
    /// The touch in a debug hold's wait loop (empty: none).
    in_hold: &'static str,
}

impl Heartbeat {
    fn for_batch(batch: bool, secs: u32) -> Heartbeat {
        if batch {
            Heartbeat {
                start: format!(
                    "(\n  while kill -0 $$ 2>/dev/null; do : > \"$belay_d/heartbeat\"; sleep {secs}; done\n) </dev/null >/dev/null 2>&1 &\n"
                ),
                in_hold: "    : > \"$belay_d/heartbeat\"\n",
            }
        } else {
            Heartbeat {
                start: String::new(),
                in_hold: "",
            }
        }
    }
}

pub fn render(spec: &WrapperSpec<'_>) -> String {
    // The user's variables are set only in the subshell that becomes the
    // command, so no value (PATH, IFS, a name the wrapper uses) can change
    // how the wrapper itself records the job.
    let mut env = String::new();
    for (k, v) in spec.env {
        env.push_str(&format!("    {k}={}; export {k}\n", quote(v)));
    }
    let login = if spec.login_shell {
        // The user's login shell loads their profile (`module`, conda…).
        // Shells outside the POSIX family would mis-read our quoting.
        r#"case "${SHELL##*/}" in
    bash|zsh|sh|dash|ksh|mksh|ash|yash) belay_sh=$SHELL ;;
    *) belay_sh=/bin/sh ;;
  esac"#
    } else {
        "belay_sh=/bin/sh"
    };
    // Secrets: read in the command's own subshell into unexported
    // variables, the file removed (the only process started meanwhile, `rm`,
    // cannot see them), then exported for the command alone. Without its
    // file the command does not run.
    let secrets = if spec.secrets.is_empty() {
        String::new()
    } else {
        let names = spec.secrets.join(" ");
        format!(
            r#"    if [ -z "$belay_sf" ] || [ ! -f "$belay_sf" ]; then
      echo "belay: the job's secrets ({names}) are not on this host (gone with a reboot or a cleanup?); the command was not run" >&2
      exit 125
    fi
    unset {names}
    . "$belay_sf" || exit 125
    rm -f "$belay_sf" "$belay_d/secrets.where"
    export {names}
"#
        )
    };
    let flag = if spec.login_shell { "-lc" } else { "-c" };
    let workdir = if spec.run_in_inputs {
        "\"$belay_d/inputs\"".to_string()
    } else {
        workdir_word(spec.workdir)
    };
    let records = RecordWrites::for_batch(spec.batch_header.is_some());
    let heartbeat = Heartbeat::for_batch(spec.batch_header.is_some(), spec.heartbeat_secs);
    let (header, locate) = match spec.batch_header {
        Some(h) => (h, "cd \"${SLURM_SUBMIT_DIR:-.}\" || exit 120"),
        None => ("", "case $0 in */*) cd \"${0%/*}\" || exit 120 ;; esac"),
    };
    format!(
        r#"#!/bin/sh
{header}# run.sh: generated by belay for job {id}. Do not edit: the files beside it
# are the record of what this job did.
{locate}
# Builtins where a subshell would do: each process here delays the job.
cd -P . || exit 120
belay_d=$PWD
# belay's files are the user's alone; the job itself gets the user's umask.
belay_umask=
while read -r k v; do [ "$k" = Umask: ] && {{ belay_umask=$v; break; }}; done 2>/dev/null < /proc/$$/status
[ -n "$belay_umask" ] || belay_umask=$(umask)
umask 077
: >> stdout
: >> stderr
# Who this is, in terms that survive pid reuse, reboots and shared homes:
# pid + start ticks + boot id, on which node, in which pid namespace.
belay_boot=; belay_node=
read -r belay_boot 2>/dev/null < {boot_id_file}
read -r belay_node 2>/dev/null < /proc/sys/kernel/hostname
# Boot time: handed over by a launcher on this boot (the direct
# scheduler's `$2`), else read here. `read` takes a byte per system call,
# fine for a few CPUs' lines, but a many-core host's per-CPU and interrupt
# lines make /proc/stat tens of KB (16 KB took 8 ms): past ten CPU lines,
# one `sed`.
belay_btime=${{2-}}
case $belay_btime in ''|*[!0-9]*)
  belay_btime=0; belay_n=0
  while read -r k v; do
    case $k in
      btime) belay_btime=$v; break ;;
      cpu*) belay_n=$((belay_n + 1))
        if [ "$belay_n" -gt 10 ]; then
          belay_btime=$(sed -n 's/^btime //p' /proc/stat 2>/dev/null); break
        fi ;;
    esac
  done < /proc/stat
  case $belay_btime in ''|*[!0-9]*) belay_btime=0 ;; esac ;;
esac
# The pid namespace: handed over by a launcher in the same namespace (the
# direct scheduler), else one process (`stat`).
belay_pidns=${{1-}}
case $belay_pidns in ''|*[!0-9]*) belay_pidns=$(stat -L -c %i /proc/$$/ns/pid 2>/dev/null) ;; esac
read -r l < /proc/$$/stat
l=${{l##*) }}
set -f; set -- $l; set +f
# Start ticks are in USER_HZ (100 on Linux) since boot.
belay_started() {{
  printf 'pid=%s\npgid=%s\nsid=%s\nstart_ticks=%s\nboot_id=%s\nnode=%s\npidns=%s\nstarted_at=%s\n%s' \
    "$$" "$3" "$4" "${{20}}" "$belay_boot" "$belay_node" "$belay_pidns" "$((belay_btime + ${{20}} / 100))" \
    "${{SLURM_JOB_ID:+slurm_job_id=$SLURM_JOB_ID
}}" \
    {started_to}
}}
{record_note}# The error is captured (a subshell, a process more) only when a first
# try failed: a second try says why, or succeeds.
belay_err=
if ! belay_started "$@" 2>/dev/null && ! belay_err=$(belay_started "$@" 2>&1); then
  # Without `started` nobody could tell this job from a dead one: do not
  # run the command. The reserve staging left makes room for the verdict.
  rm -f "started.tmp.$$" started reserve
  belay_disk=$(df -Pk . 2>/dev/null | {{ read -r _; read -r fs _ _ free _ mnt; echo "$fs on $mnt, $free KiB free"; }})
  belay_err=$(printf '%s' "$belay_err" | tr '\n' ' ')
  printf 'code=125\nended_at=%s\ncancelled=0\nwhy=%s\n' "$(date +%s)" \
    "could not record that it started in $belay_d (disk ${{belay_disk:-unknown}}: full?); the command was not run: $belay_err" \
    > "exit.tmp.$$" && mv -f "exit.tmp.$$" exit
  exit 125
fi
{heartbeat_start}belay_sig=
trap 'belay_sig=TERM' TERM
trap 'belay_sig=INT' INT
trap 'belay_sig=HUP' HUP
# A cancel that arrived before this point (the job was still pending) wins:
# the command never starts.
# Where the job's secret file is (a path, never a value), if it has one.
belay_sf=; read -r belay_sf 2>/dev/null < "$belay_d/secrets.where"
if [ -n "$belay_sig" ] || [ -f "$belay_d/cancel-requested" ]; then
  belay_code=143
  [ -n "$belay_sf" ] && rm -f "$belay_sf" "$belay_d/secrets.where"
else
  {login}
  (
{secrets}    cd "$HOME" 2>/dev/null
    cd {workdir} 2>/dev/null || {{ echo "belay: cannot enter working directory "{workdir} >&2; exit 126; }}
{env}    BELAY_JOB_ID={qid}; export BELAY_JOB_ID
    BELAY_JOB_DIR=$belay_d; export BELAY_JOB_DIR
    BELAY_INPUTS=$belay_d/inputs; export BELAY_INPUTS
    umask "$belay_umask"
    exec "$belay_sh" {flag} {line}
  ) </dev/null >>"$belay_d/stdout" 2>>"$belay_d/stderr"
  belay_code=$?
fi
# The job is over: end whatever it left running in its process group (the
# heartbeat, if any), then record how it ended.
trap '' TERM INT HUP
kill -TERM 0 2>/dev/null
belay_cancelled=0
[ -f "$belay_d/cancel-requested" ] && belay_cancelled=1
# A debug hold (see the module docs of wrapper.rs in belay).
belay_hold=; belay_hold_end=
if [ "$belay_cancelled" = 0 ] && [ -z "$belay_sig" ]; then
  if [ -f "$belay_d/hold" ]; then belay_hold=requested
  elif [ "$belay_code" != 0 ] && [ {hold} -gt 0 ]; then belay_hold=failure; fi
fi
if [ -n "$belay_hold" ]; then
  belay_secs={hold}
  if [ "$belay_hold" = requested ]; then
    belay_req=; read -r belay_req 2>/dev/null < "$belay_d/hold"
    case $belay_req in ''|*[!0-9]*) ;; *) belay_secs=$belay_req ;; esac
    [ "$belay_secs" -gt 0 ] || belay_secs={default_hold}
    [ "$belay_secs" -le {max_hold} ] || belay_secs={max_hold}
  fi
  belay_now=$(date +%s); belay_until=$((belay_now + belay_secs))
  # Under Slurm the allocation ends at the job's time limit, hold or not:
  # the hold says so by ending there.
  if [ -n "$SLURM_JOB_ID" ] && belay_end=$(squeue -h -j "$SLURM_JOB_ID" -o %e 2>/dev/null) &&
     belay_end=$(date -d "$belay_end" +%s 2>/dev/null) && [ "$belay_end" -lt "$belay_until" ]; then
    belay_until=$belay_end
  fi
  printf 'code=%s\nheld_at=%s\nuntil=%s\nhold=%s\n' "$belay_code" "$belay_now" "$belay_until" "$belay_hold" \
    > "$belay_d/held.tmp.$$" && mv -f "$belay_d/held.tmp.$$" "$belay_d/held"
  trap 'belay_sig=TERM' TERM
  trap 'belay_sig=INT' INT
  trap 'belay_sig=HUP' HUP
  belay_hold_end=expired
  while [ "$belay_now" -lt "$belay_until" ]; do
    if [ -f "$belay_d/release" ]; then belay_hold_end=released; break; fi
    if [ -n "$belay_sig" ] || [ -f "$belay_d/cancel-requested" ]; then
      belay_hold_end=cancelled; belay_cancelled=1; break
    fi
{heartbeat_in_hold}    # A signal interrupts `wait` at once; the sleep is the only child left.
    sleep 1 </dev/null >/dev/null 2>&1 &
    wait $!
    belay_now=$(date +%s)
  done
  trap '' TERM INT HUP
  kill -TERM 0 2>/dev/null
fi
# The reserve goes now, so that a disk the job filled still has room for
# its `exit` file.
# (Emptied, not removed: the same room without an `rm` process; `true`, a
# regular builtin, so that a failed redirection cannot end this shell.)
[ -f "$belay_d/reserve" ] && {{ true > "$belay_d/reserve"; }} 2>/dev/null
# The end time without a process (`date`): boot time (read above) plus the
# uptime, rounded; the clock started_at is on, within a second of `date`.
belay_end=; belay_up=; read -r belay_up _ 2>/dev/null < /proc/uptime
case $belay_up in
  *[!0-9.]*) ;;
  [0-9]*.[0-9][0-9]) [ "$belay_btime" -gt 0 ] 2>/dev/null &&
    belay_end=$((belay_btime + ${{belay_up%.*}} + (1${{belay_up#*.}} - 50) / 100)) ;;
esac
[ -n "$belay_end" ] || belay_end=$(date +%s)
printf 'code=%s\nended_at=%s\ncancelled=%s\n%s' "$belay_code" "$belay_end" "$belay_cancelled" \
  "${{belay_hold_end:+hold_end=$belay_hold_end
}}" {exit_to}
"#,
        boot_id_file = crate::failpoint::BOOT_ID_FILE_WORD,
        started_to = records.started_to,
        exit_to = records.exit_to,
        record_note = records.note,
        id = spec.job_id,
        qid = quote(spec.job_id),
        heartbeat_start = heartbeat.start,
        heartbeat_in_hold = heartbeat.in_hold,
        hold = spec.hold_secs,
        default_hold = DEFAULT_REQUESTED_HOLD_SECS,
        max_hold = crate::job::spec::MAX_HOLD_SECS,
        line = quote(&spec.command.shell_line()),
    )
}

/// A typical job's spec running `command`, for tests to vary.
#[cfg(test)]
fn spec_for_test(command: &Command) -> WrapperSpec<'_> {
    WrapperSpec {
        job_id: "0123abcd",
        command,
        workdir: None,
        env: &[],
        login_shell: true,
        run_in_inputs: false,
        heartbeat_secs: 15,
        hold_secs: 0,
        batch_header: None,
        secrets: &[],
    }
}

/// This machine's boot time as `/proc/stat` says it, for tests of the
/// records that take their clock from it.
#[cfg(test)]
pub(crate) fn boot_time_for_test() -> i64 {
    std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .unwrap()
        .parse()
        .unwrap()
}

/// A wrapper for a typical job, for tests that look at the script's text.
#[cfg(test)]
pub(crate) fn render_for_test() -> String {
    render(&spec_for_test(&Command::from_argv(vec!["true".into()])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdir_words() {
        assert_eq!(workdir_word(None), "\"$HOME\"");
        assert_eq!(workdir_word(Some("~/a b")), "\"$HOME\"/'a b'");
        assert_eq!(workdir_word(Some("/abs")), "'/abs'");
    }

    /// A job run by [`run_a_job`]: the wall clock's second before and
    /// after, and what it wrote.
    struct JobRun {
        before: i64,
        after: i64,
        started: String,
        exit: String,
        /// The job left a `heartbeat` file.
        heartbeat: bool,
    }

    /// `key=` of a job's record file, as a number.
    fn field(text: &str, key: &str) -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .parse()
            .unwrap()
    }

    /// Runs a wrapper for `sleep 0.3` in a temp dir with `args` (as a
    /// launcher passes them), its `/proc/stat` replaced by `proc_stat` if
    /// given.
    fn run_a_job(proc_stat: Option<&std::path::Path>, args: &[&str]) -> JobRun {
        run_a_job_under(None, proc_stat, args)
    }

    /// [`run_a_job`], as the batch script of `batch_header` if given.
    fn run_a_job_under(
        batch_header: Option<&str>,
        proc_stat: Option<&std::path::Path>,
        args: &[&str],
    ) -> JobRun {
        let dir = tempfile::tempdir().unwrap();
        let cmd = Command::from_argv(vec!["sleep".into(), "0.3".into()]);
        let mut text = render(&WrapperSpec {
            login_shell: false,
            batch_header,
            ..spec_for_test(&cmd)
        });
        if let Some(fake) = proc_stat {
            assert!(text.contains("/proc/stat"));
            text = text.replace("/proc/stat", &fake.display().to_string());
        }
        std::fs::write(dir.path().join("run.sh"), text).unwrap();
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64
        };
        let before = now();
        // In a process group of its own, as launched: the wrapper ends its
        // whole group when the command is over.
        use std::os::unix::process::CommandExt;
        let status = std::process::Command::new("/bin/sh")
            .arg("./run.sh")
            .args(args)
            .process_group(0)
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .status()
            .unwrap();
        let after = now();
        assert!(status.success());
        let read = |file: &str| std::fs::read_to_string(dir.path().join(file)).unwrap();
        let run = JobRun {
            before,
            after,
            started: read("started"),
            exit: read("exit"),
            heartbeat: dir.path().join("heartbeat").exists(),
        };
        assert_eq!(field(&run.exit, "code"), 0);
        run
    }

    /// `started_at` and `ended_at` come from boot time plus ticks or uptime
    /// (no `date` process): they must still be the wall clock's second,
    /// give or take one, in order.
    fn assert_on_the_wall_clock(run: &JobRun) {
        let (before, after) = (run.before, run.after);
        let started = field(&run.started, "started_at");
        let ended = field(&run.exit, "ended_at");
        for (what, t) in [("started_at", started), ("ended_at", ended)] {
            assert!(
                (before - 1..=after + 1).contains(&t),
                "{what} {t} is not between {before} and {after}"
            );
        }
        assert!(ended >= started, "ended {ended} before started {started}");
    }

    #[test]
    fn a_job_records_its_start_and_end_on_the_wall_clock() {
        assert_on_the_wall_clock(&run_a_job(None, &[]));
    }

    /// A heartbeat only where a login node must judge a compute node's job
    /// by it; a direct job is judged by its pid, and starts no `sleep`.
    #[test]
    fn only_a_batch_job_keeps_a_heartbeat() {
        assert!(!run_a_job(None, &[]).heartbeat);
        let batch = run_a_job_under(Some("#SBATCH --job-name=t\n"), None, &[]);
        assert!(batch.heartbeat);
        assert_on_the_wall_clock(&batch);
    }

    /// A many-core host's /proc/stat (here 128 CPUs and 4,000 interrupt
    /// counters, 16 KB) is read past its CPU lines by `sed`, not `read`:
    /// the same boot time comes out.
    #[test]
    fn a_many_core_hosts_boot_time_is_read_too() {
        let real = std::fs::read_to_string("/proc/stat").unwrap();
        let btime = real.lines().find(|l| l.starts_with("btime ")).unwrap();
        let mut fake = String::from("cpu  1 2 3 4 5 6 7 8 9 10\n");
        for i in 0..128 {
            fake.push_str(&format!(
                "cpu{i} 123456 789 234567 98765432 12345 0 6789 0 0 0\n"
            ));
        }
        fake.push_str("intr 123456789");
        for i in 0..4000 {
            fake.push_str(if i % 5 == 0 { " 17" } else { " 0" });
        }
        fake.push_str(&format!("\nctxt 987654321\n{btime}\nprocesses 12345\n"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        std::fs::write(&path, fake).unwrap();
        assert_on_the_wall_clock(&run_a_job(Some(&path), &[]));
    }

    /// The pid namespace a launcher hands over (its own: the wrapper's) is
    /// recorded as given, with no `stat`; anything but digits is not
    /// trusted, and the wrapper reads its own.
    #[test]
    fn the_pid_namespace_comes_from_the_launcher_or_from_stat() {
        let own = std::process::Command::new("stat")
            .args(["-L", "-c", "%i", "/proc/self/ns/pid"])
            .output()
            .unwrap();
        let own: i64 = String::from_utf8(own.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            field(&run_a_job(None, &["4026531999"]).started, "pidns"),
            4026531999
        );
        for bad in [&[][..], &[""], &["12;x"], &["-1"]] {
            assert_eq!(
                field(&run_a_job(None, bad).started, "pidns"),
                own,
                "{bad:?}"
            );
        }
    }

    /// The boot time a launcher hands over (`$2`) is taken as given, with
    /// /proc/stat not read at all (here it does not exist); anything but
    /// digits is not trusted, and the wrapper reads /proc/stat.
    #[test]
    fn the_boot_time_comes_from_the_launcher_or_from_proc_stat() {
        let btime = boot_time_for_test();
        let missing = std::path::Path::new("/nonexistent/belay-test/stat");
        let handed = (btime - 1000).to_string();
        let run = run_a_job(Some(missing), &["", &handed]);
        let started = field(&run.started, "started_at");
        assert!(
            (run.before - 1001..=run.after - 999).contains(&started),
            "started_at {started} is not the handed boot time's (1000 s early)"
        );
        for bad in [&["", ""][..], &["", "12x"], &["", "-5"]] {
            assert_on_the_wall_clock(&run_a_job(None, bad));
        }
    }

    #[test]
    fn wrapper_is_valid_sh() {
        let cmd = Command::from_argv(vec!["sh".into(), "-c".into(), "echo 'hi'".into()]);
        let env = vec![("A".to_string(), "it's".to_string())];
        let secrets = ["TOKEN".to_string()];
        let text = render(&WrapperSpec {
            workdir: Some("/tmp"),
            env: &env,
            batch_header: Some("#SBATCH --job-name=x\n"),
            secrets: &secrets,
            ..spec_for_test(&cmd)
        });
        let out = std::process::Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(&text)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("A='it'\\''s'; export A"));
    }
}
