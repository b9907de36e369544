//! `run --secret NAME`: the value reaches the job's environment through a
//! real sshd, and a canary value is searched for everywhere else it must
//! not be — every process's command line, every other process's
//! environment, the job directory after start, belay's store and logs, and
//! on Slurm the scheduler's record of the job and its batch script. A job
//! restaged after a crash without its value fails and never runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::remote::Loopback;
use crate::support::slurm::Cluster;
use crate::support::*;

/// A value no one else has (what a leak would be searched for by).
fn canary(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("cnry{tag}{nanos:x}{:x}", std::process::id())
}

/// sha256 of `value`, as `sha256sum` prints it.
fn sha256(value: &str) -> String {
    use std::io::Write;
    let mut c = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    c.stdin.take().unwrap().write_all(value.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every process on this machine (the loopback host's too) with its
/// parent.
fn processes() -> Vec<(u32, u32)> {
    let mut all = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let after = stat.rsplit_once(") ").map(|(_, a)| a).unwrap_or("");
        let ppid = after.split(' ').nth(1).and_then(|p| p.parse().ok());
        if let Some(ppid) = ppid {
            all.push((pid, ppid));
        }
    }
    all
}

/// The parent of `pid`, read now.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(") ").map(|(_, a)| a)?;
    after.split(' ').nth(1)?.parse().ok()
}

/// Is `pid` the job (`job`) or one of its descendants? Read live, so a
/// child the job starts during the scan (its `sleep`) counts as the
/// job's: a process's ancestry is fixed once it exists.
fn in_job(pid: u32, job: u32) -> bool {
    let mut p = pid;
    for _ in 0..64 {
        if p == job {
            return true;
        }
        match parent_of(p) {
            Some(pp) if pp > 1 => p = pp,
            _ => return false,
        }
    }
    false
}

/// Processes whose command line has `value` (any process), or whose
/// environment has it (any but the job `job` and its descendants).
fn process_hits(value: &str, job: u32) -> Vec<String> {
    let mut hits = Vec::new();
    for (pid, _) in processes() {
        let has = |what: &str| {
            std::fs::read(format!("/proc/{pid}/{what}"))
                .is_ok_and(|b| b.windows(value.len()).any(|w| w == value.as_bytes()))
        };
        if has("cmdline") {
            hits.push(format!("cmdline of {pid}"));
        }
        // Ancestry first, then the environment (a process that exists
        // has its parent already).
        if !in_job(pid, job) && has("environ") {
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            hits.push(format!("environ of {pid} ({})", cmd.replace('\0', " ")));
        }
    }
    hits
}

/// Files under `dir` (recursively) that contain `value`.
fn file_hits(dir: &Path, value: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hits;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            hits.extend(file_hits(&p, value));
        } else if t.is_file()
            && std::fs::read(&p)
                .is_ok_and(|b| b.windows(value.len()).any(|w| w == value.as_bytes()))
        {
            hits.push(p);
        }
    }
    hits
}

/// A job that records its pid, hashes its secrets into its directory,
/// prints one, then waits for the test's `go` file.
const HASH_AND_WAIT: &str = r#"echo $$ > "$BELAY_JOB_DIR/jobpid"
printf %s "$TOKEN" | sha256sum > "$BELAY_JOB_DIR/token.sha"
printf %s "$FILESEC" | sha256sum > "$BELAY_JOB_DIR/file.sha"
echo "saw $TOKEN"
while [ ! -f "$BELAY_JOB_DIR/go" ]; do sleep 0.1; done"#;

#[test]
fn a_secret_value_comes_from_the_environment_or_a_file_never_from_argv() {
    let b = Belay::new();
    // Not set, no terminal: bad input naming it.
    let line = b
        .cmd(["run", "local", "--secret", "NOPE_UNSET", "--", "true"])
        .bad_input("NOPE_UNSET");
    assert!(line.contains("environment variable"), "{line}");
    // On the command line: refused, saying why, the value not echoed.
    let line = b
        .cmd(["run", "local", "--secret", "TOKEN=hunter2", "--", "true"])
        .bad_input("TOKEN");
    assert!(line.contains("ps") && !line.contains("hunter2"), "{line}");
    // Not a variable name.
    b.cmd(["run", "local", "--secret", "9LIVES", "--", "true"])
        .bad_input("9LIVES");
    b.cmd(["run", "local", "--secret", "A-B", "--", "true"])
        .bad_input("A-B");
    // A file that is not there.
    b.cmd([
        "run",
        "local",
        "--secret",
        "T=@/nonexistent/secret",
        "--",
        "true",
    ])
    .bad_input("/nonexistent/secret");
    // Twice, or also as --env.
    b.cmd([
        "run", "local", "--secret", "T", "--secret", "T", "--", "true",
    ])
    .env("T", "x")
    .bad_input("'T'");
    b.cmd([
        "run", "local", "--env", "T=1", "--secret", "T", "--", "true",
    ])
    .env("T", "x")
    .bad_input("'T'");
    // `app run` takes the same flag, with the same rules.
    b.cmd([
        "app",
        "run",
        "local",
        "http",
        "--secret",
        "TOKEN=hunter2",
        "--",
        "true",
    ])
    .bad_input("TOKEN");
    assert!(b.jobs().is_empty(), "nothing recorded: {:?}", b.jobs());
}

#[test]
fn a_secret_reaches_the_remote_job_and_no_log_store_file_or_other_process() {
    let host = Loopback::start();
    let b = host.belay();
    let token = canary("tok");
    let filesec = canary("file");
    let file = b.scratch("filesec");
    std::fs::write(&file, format!("{filesec}\n")).unwrap();
    let out = b
        .cmd(["-vv", "run", "-d", "target", "--secret", "TOKEN"])
        .arg("--secret")
        .arg(format!("FILESEC=@{}", file.display()))
        .arg("--")
        .arg(HASH_AND_WAIT)
        .env("TOKEN", &token)
        .output();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let verbose_log = stderr_of(&out);
    assert!(
        !verbose_log.contains(&token) && !verbose_log.contains(&filesec),
        "belay -vv logged a secret"
    );
    b.wait_state(&id, "running", Duration::from_secs(30));
    let dir = host.remote_view(&b.job_dir(&id));
    assert!(
        poll(Duration::from_secs(30), || dir.join("file.sha").exists()),
        "the job did not start its command"
    );
    let job_pid: u32 = std::fs::read_to_string(dir.join("jobpid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    // While it runs: the job's own environment has it (and its children's)…
    let environ = std::fs::read(format!("/proc/{job_pid}/environ")).unwrap();
    assert!(
        environ.windows(token.len()).any(|w| w == token.as_bytes()),
        "the job's environment lacks TOKEN"
    );
    // …and nothing else does: no command line, no other environment.
    for value in [&token, &filesec] {
        let hits = process_hits(value, job_pid);
        assert!(hits.is_empty(), "leaked to processes: {hits:?}");
        // Not in the job directory after start (spec.json, run.sh, the
        // secret file's pointer), nor anywhere in belay's home (the store,
        // its WAL, serve.log).
        // (Except what the job printed itself: its `stdout`.)
        let hits: Vec<_> = file_hits(&dir, value)
            .into_iter()
            .filter(|p| !p.ends_with("stdout"))
            .collect();
        assert!(hits.is_empty(), "in the job directory: {hits:?}");
        let hits = file_hits(b.home.path(), value);
        assert!(hits.is_empty(), "in belay's home: {hits:?}");
    }
    // The host's secret file (in its private tmpfs directory, named by the
    // job's key) is gone.
    let job = b.job(&id);
    let shm = host.remote_view(Path::new("/dev/shm/belay-0"));
    let key = job["key"].as_str().unwrap();
    assert!(shm.is_dir(), "the private directory is on the tmpfs");
    assert!(!shm.join(key).exists(), "the secret file was left");
    // The job records the names (show), never the values.
    assert_eq!(job["secrets"], serde_json::json!(["TOKEN", "FILESEC"]));
    let spec = std::fs::read_to_string(dir.join("spec.json")).unwrap();
    assert!(spec.contains("\"TOKEN\""), "{spec}");
    assert!(b.ok(&["show", &id]).contains("TOKEN FILESEC"));

    std::fs::write(dir.join("go"), "").unwrap();
    b.wait_state(&id, "succeeded", Duration::from_secs(30));
    // The job saw the exact values (the file's without its final newline).
    assert_eq!(
        std::fs::read_to_string(dir.join("token.sha")).unwrap(),
        sha256(&token)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("file.sha")).unwrap(),
        sha256(&filesec)
    );
    for value in [&token, &filesec] {
        let hits = file_hits(b.home.path(), value);
        assert!(hits.is_empty(), "in belay's home after the end: {hits:?}");
    }
    // `logs` masks what this process knows (TOKEN in its environment); a
    // value it was never given it cannot (the documented limit).
    assert_eq!(b.cmd(["logs", &id]).env("TOKEN", &token).ok(), "saw ***\n");
    assert_eq!(b.ok(&["logs", &id]), format!("saw {token}\n"));
}

#[test]
fn an_attached_run_shows_a_secret_in_its_output_as_stars() {
    let host = Loopback::start();
    let b = host.belay();
    let token = canary("att");
    let out = b
        .cmd([
            "run",
            "target",
            "--secret",
            "TOKEN",
            "--",
            "echo \"out $TOKEN end\"; echo \"err $TOKEN\" >&2; echo \"$TOKEN\" | cut -c1-6; exit 3",
        ])
        .env("TOKEN", &token)
        .output();
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, format!("out *** end\n{}\n", &token[..6]));
    let stderr = stderr_of(&out);
    assert!(stderr.contains("err ***"), "{stderr}");
    assert!(!stderr.contains(&token), "{stderr}");
}

/// Every step a submit can crash at, with a secret: before the launch the
/// job fails with the reason and never runs (the value is gone with the
/// process that had it, and so is any secret file it left on the host);
/// after it, the job was launched with its secret and is adopted.
#[test]
fn a_job_restaged_after_a_crash_without_its_secret_fails_and_never_runs() {
    let host = Loopback::start();
    for point in [
        "after-record",
        "after-stage",
        "after-secrets",
        "after-launch",
    ] {
        let b = host.belay();
        let token = canary("crash");
        let name = format!("fp-{point}");
        let ran = format!("/root/ran-{point}");
        let cmd = format!("printf %s \"$TOKEN\" | sha256sum > {ran}");
        let out = b
            .cmd(["run", "-d", "--name", &name, "target", "--secret", "TOKEN"])
            .arg("--")
            .arg(&cmd)
            .env("TOKEN", &token)
            .env("BELAY_FAILPOINT", point)
            .output();
        assert_killed_by_failpoint(&out, point);
        let shm = host.remote_view(Path::new("/dev/shm/belay-0"));
        // (Looked at before any belay command: each reconciles.)
        let stored = file_hits(&shm, &token);
        if point == "after-secrets" {
            // The value reached the host: 0600 in a 0700 directory.
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(stored.len(), 1, "{point}: {stored:?}");
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&stored[0]), 0o600);
            assert_eq!(mode(&shm), 0o700);
        } else if point != "after-launch" {
            assert!(
                stored.is_empty(),
                "{point}: sent before its step: {stored:?}"
            );
        }
        // Any later command reconciles the job.
        b.ok(&["ps"]);
        let ran = host.remote_view(Path::new(&ran));
        if point == "after-launch" {
            b.wait_state(&name, "succeeded", Duration::from_secs(30));
            assert_eq!(
                std::fs::read_to_string(&ran).unwrap(),
                sha256(&token),
                "{point}: launched with its secret"
            );
        } else {
            let job = b.wait_state(&name, "failed", Duration::from_secs(30));
            let reason = job["reason"].as_str().unwrap_or_default();
            assert!(
                reason.contains("secret TOKEN was lost with the crash; resubmit"),
                "{point}: {job:#}"
            );
            assert!(!ran.exists(), "{point}: it ran without its secret");
            // Nothing launched, and no secret file left behind.
            b.ok(&["ps", "--all"]);
            assert!(!ran.exists(), "{point}: it ran later");
        }
        let left = file_hits(&shm, &token);
        assert!(left.is_empty(), "{point}: secret file left: {left:?}");
        assert!(file_hits(b.home.path(), &token).is_empty(), "{point}");
    }
}

#[test]
fn a_slurm_job_gets_its_secret_through_a_file_not_the_scheduler() {
    let c = Cluster::start();
    let b = c.belay();
    let token = canary("slurm");
    let filesec = canary("sfile");
    let file = b.scratch("filesec");
    std::fs::write(&file, &filesec).unwrap();
    let out = b
        .cmd(["-vv", "run", "-d", "cluster", "--secret", "TOKEN"])
        .arg("--secret")
        .arg(format!("FILESEC=@{}", file.display()))
        .arg("--")
        .arg(HASH_AND_WAIT)
        .env("TOKEN", &token)
        .deadline(Duration::from_secs(90))
        .output();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains(&token));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let sid = c.slurm_id(&b, &id);
    let dir = c.remote(b.job_dir(&id).to_str().unwrap());
    assert!(
        poll(Duration::from_secs(60), || dir.join("file.sha").exists()),
        "the job did not start; queue:\n{}",
        c.slurm.queue()
    );
    let job_pid: u32 = std::fs::read_to_string(dir.join("jobpid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let shown = c
        .slurm
        .command("scontrol", &["show", "job", "-d", &sid])
        .unwrap();
    let script = c
        .slurm
        .command("scontrol", &["write", "batch_script", &sid, "-"])
        .unwrap();
    assert!(script.contains("belay"), "a batch script: {script}");
    for value in [&token, &filesec] {
        assert!(!shown.contains(value.as_str()), "in scontrol show job -d");
        assert!(!script.contains(value.as_str()), "in the batch script");
        let hits = process_hits(value, job_pid);
        assert!(hits.is_empty(), "leaked to processes: {hits:?}");
        // (Except what the job printed itself: its `stdout`.)
        let hits: Vec<_> = file_hits(&dir, value)
            .into_iter()
            .filter(|p| !p.ends_with("stdout"))
            .collect();
        assert!(hits.is_empty(), "in the job directory: {hits:?}");
        let hits = file_hits(b.home.path(), value);
        assert!(hits.is_empty(), "in belay's home: {hits:?}");
    }
    std::fs::write(dir.join("go"), "").unwrap();
    let job = b.wait_state(&id, "succeeded", Duration::from_secs(60));
    assert_eq!(job["scheduler"], "slurm");
    assert_eq!(
        std::fs::read_to_string(dir.join("token.sha")).unwrap(),
        sha256(&token)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("file.sha")).unwrap(),
        sha256(&filesec)
    );
    // Its private directory is in the job directory (the compute node
    // must see it), 0700, and empty once the job started.
    use std::os::unix::fs::PermissionsExt;
    let private = dir.join(".secrets");
    assert_eq!(
        std::fs::metadata(&private).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(std::fs::read_dir(&private).unwrap().count(), 0);
}

#[test]
fn a_slurm_job_cancelled_while_pending_leaves_no_secret_behind() {
    let c = Cluster::start();
    let b = c.belay();
    let token = canary("pend");
    // Held in the queue for an hour: it is pending when cancelled.
    let out = b
        .cmd([
            "run",
            "-d",
            "cluster",
            "--sbatch-arg=--begin=now+3600",
            "--secret",
            "TOKEN",
            "--",
            "touch /root/pending-secret-ran",
        ])
        .env("TOKEN", &token)
        .deadline(Duration::from_secs(90))
        .output();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let job = b.wait_state(&id, "pending", Duration::from_secs(30));
    let dir = c.remote(job["job_dir"].as_str().unwrap());
    // Waiting for its node: the value is in the job's private directory.
    let waiting = file_hits(&dir.join(".secrets"), &token);
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    b.ok(&["cancel", &id]);
    assert_eq!(b.job(&id)["state"], "cancelled");
    let hits = file_hits(&dir, &token);
    assert!(hits.is_empty(), "left in the job directory: {hits:?}");
    assert!(!c.remote("/root/pending-secret-ran").exists());
}

#[test]
fn a_secret_not_in_the_environment_is_asked_for_on_a_terminal_with_echo_off() {
    use std::io::{Read, Write};
    let host = Loopback::start();
    let b = host.belay();
    let token = canary("tty");
    // A real terminal: `script` runs belay on a pty whose input is ours.
    let line = format!(
        "{} run target --secret TOKEN -- 'printf %s \"$TOKEN\" | sha256sum'",
        env!("CARGO_BIN_EXE_belay")
    );
    let mut child = b
        .command_of(Path::new("script"), &["-qfec", &line, "/dev/null"])
        .env_remove("TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script");
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let read_until = |seen: &mut Vec<u8>, what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !String::from_utf8_lossy(seen).contains(what) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(piece) => seen.extend_from_slice(&piece),
                Err(_) => panic!(
                    "no '{what}' on the terminal: {}",
                    String::from_utf8_lossy(seen)
                ),
            }
        }
    };
    read_until(&mut seen, "Value for secret TOKEN: ");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{token}\n").as_bytes()).unwrap();
    let sha = sha256(&token);
    let sha = sha.split_whitespace().next().unwrap().to_string();
    read_until(&mut seen, &sha);
    drop(stdin);
    let mut status = None;
    let ended = poll(Duration::from_secs(30), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if !ended {
        let _ = child.kill();
    }
    assert!(
        ended && status.unwrap().success(),
        "{status:?}: {}",
        String::from_utf8_lossy(&seen)
    );
    // What was typed was not echoed.
    assert!(
        !String::from_utf8_lossy(&seen).contains(&token),
        "echoed: {}",
        String::from_utf8_lossy(&seen)
    );
}
