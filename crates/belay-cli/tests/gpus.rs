//! GPUs through a real sshd: a fake `nvidia-smi` first on the host's PATH
//! prints the output shapes NVIDIA documents for H100 nodes (no GPU here),
//! and the compute-process listing names real job processes. `host check`
//! records the inventory that `host show|list` and `doctor` read, the
//! probe gives a running job its GPU processes (`show`, `ps --json`), and
//! `cancel` / `lost` leave no process carrying the job's `BELAY_JOB_DIR`
//! behind, even one that left the job's session with `setsid`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use belay_testbed::SshdOptions;
use serde_json::Value;

use crate::support::remote::Loopback;
use crate::support::*;

const UUID0: &str = "GPU-3f6a1b2c-0d4e-5f60-7182-93a4b5c6d7e8";

/// A directory holding the fake `nvidia-smi`. It prints the inventory of
/// two H100s; the compute processes are the lines of `apps` beside it;
/// with a `fail` file beside it, it fails as a driver that does not answer.
struct FakeSmi {
    dir: tempfile::TempDir,
}

impl FakeSmi {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("belay-fake-smi.")
            .tempdir()
            .expect("tmp");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.path().display();
        let script = format!(
            r#"#!/bin/sh
if [ -e '{d}/fail' ]; then
  echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."
  exit 9
fi
case "$*" in
  *--query-gpu=index,uuid,name,memory.used,memory.total,utilization.gpu*--format=csv,noheader,nounits*)
    echo "0, {UUID0}, NVIDIA H100 80GB HBM3, 1234, 81559, 35"
    echo "1, GPU-9b8a7c6d-5e4f-3a2b-1c0d-e9f8a7b6c5d4, NVIDIA H100 80GB HBM3, [N/A], 81559, [Not Supported]" ;;
  *--query-compute-apps=pid,gpu_uuid,used_memory*--format=csv,noheader,nounits*)
    [ -f '{d}/apps' ] && cat '{d}/apps' ;;
  *) echo "unexpected arguments: $*" >&2; exit 2 ;;
esac
exit 0
"#
        );
        let path = dir.path().join("nvidia-smi");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeSmi { dir }
    }

    fn path(&self) -> String {
        format!(
            "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            self.dir.path().display()
        )
    }

    /// A host whose sessions (login or not) find it first on PATH.
    fn host(&self) -> Loopback {
        Loopback::start_options(SshdOptions {
            extra_config: vec![format!("SetEnv PATH={}", self.path())],
            home_files: vec![(
                ".profile".into(),
                format!("PATH={}\nexport PATH\n", self.path()),
            )],
            ..Default::default()
        })
    }

    fn set_apps(&self, lines: &str) {
        std::fs::write(self.dir.path().join("apps"), lines).unwrap();
    }

    fn fail(&self) {
        std::fs::write(self.dir.path().join("fail"), "").unwrap();
    }
}

fn gpu_check(report: &Value) -> &Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["check"] == "gpus")
        .unwrap_or_else(|| panic!("no gpus check: {report:#}"))
}

#[test]
fn host_check_records_the_gpus_that_show_list_and_doctor_report() {
    let smi = FakeSmi::new();
    let host = smi.host();
    let b = host.belay();

    let checked = b.cmd(["host", "check", "target", "--json"]).json();
    let c = &checked.as_array().map_or(&checked, |a| &a[0]);
    assert_eq!(c["ok"], true, "{checked:#}");
    assert_eq!(c["nvidia_smi"], true, "{checked:#}");
    let gpus = c["gpus"].as_array().expect("gpus");
    assert_eq!(gpus.len(), 2, "{checked:#}");
    assert_eq!(gpus[0]["name"], "NVIDIA H100 80GB HBM3");
    assert_eq!(gpus[0]["uuid"], UUID0);
    assert_eq!(gpus[0]["memory_used_mib"], 1234);
    assert_eq!(gpus[0]["memory_total_mib"], 81559);
    assert_eq!(gpus[0]["utilization_pct"], 35);
    assert!(gpus[1]["memory_used_mib"].is_null(), "[N/A]: {checked:#}");
    assert!(gpus[1]["utilization_pct"].is_null(), "[Not Supported]");
    let text = b.ok(&["host", "check", "target"]);
    assert!(text.contains("  gpus: 2\n"), "{text}");
    assert!(
        text.contains("0 NVIDIA H100 80GB HBM3 (1.2/79.6 GiB, 35% busy)"),
        "{text}"
    );

    let shown = b.cmd(["host", "show", "target", "--json"]).json();
    assert_eq!(shown["gpus"].as_array().map(Vec::len), Some(2), "{shown:#}");
    assert!(shown["gpu_error"].is_null(), "{shown:#}");
    assert!(shown["gpus_at"].is_string(), "{shown:#}");
    let text = b.ok(&["host", "show", "target"]);
    assert!(text.contains("gpus            2 (checked"), "{text}");
    assert!(
        text.contains("  1 NVIDIA H100 80GB HBM3 (?/79.6 GiB, ? busy)"),
        "{text}"
    );

    let rows = b.cmd(["host", "list", "--json"]).json();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["host"] == "target")
        .expect("target listed")
        .clone();
    assert_eq!(row["gpu_count"], 2, "{row:#}");
    // The dashboard's hosts table reads the list itself (one per GPU).
    assert_eq!(row["gpus"][1]["memory_total_mib"], 81559, "{row:#}");
    assert_eq!(row["gpus"][1]["name"], "NVIDIA H100 80GB HBM3", "{row:#}");
    assert_eq!(
        row["gpu_utilization_pct"], 35,
        "only GPU 0 reports one: {row:#}"
    );
    let text = b.ok(&["host", "list"]);
    let header = text.lines().next().unwrap();
    assert!(
        header.find("GPUS").unwrap() < header.find("LAST ERROR").unwrap(),
        "{text}"
    );
    let line = text.lines().find(|l| l.starts_with("target ")).unwrap();
    assert!(line.contains(" 2 (35%) "), "{text}");

    let out = b.cmd(["doctor", "target", "--json"]).output();
    let report: Value = serde_json::from_slice(&out.stdout).expect("doctor json");
    let g = gpu_check(&report);
    assert_eq!(g["verdict"], "ok", "{g:#}");
    assert!(
        g["seen"]
            .as_str()
            .unwrap()
            .starts_with("2 GPUs: 0 NVIDIA H100 80GB HBM3 (1.2/79.6 GiB, 35% busy); 1 "),
        "{g:#}"
    );

    // A driver that does not answer: an error recorded, not a failed check.
    smi.fail();
    let checked = b.cmd(["host", "check", "target", "--json"]).json();
    let c = &checked.as_array().map_or(&checked, |a| &a[0]);
    assert_eq!(c["ok"], true, "{checked:#}");
    let e = c["gpu_error"].as_str().expect("gpu_error");
    assert!(
        e.contains("status 9") && e.contains("couldn't communicate"),
        "{e}"
    );
    let shown = b.cmd(["host", "show", "target", "--json"]).json();
    assert!(shown["gpus"].is_null(), "{shown:#}");
    assert!(shown["gpu_error"].as_str().unwrap().contains("status 9"));
    let text = b.ok(&["host", "list"]);
    let line = text.lines().find(|l| l.starts_with("target ")).unwrap();
    assert!(line.contains(" error "), "{text}");
}

#[test]
fn a_host_without_nvidia_smi_has_no_gpus_and_no_error() {
    let host = Loopback::start();
    let b = host.belay();
    let checked = b.cmd(["host", "check", "target", "--json"]).json();
    let c = &checked.as_array().map_or(&checked, |a| &a[0]);
    assert_eq!(c["ok"], true, "{checked:#}");
    assert_eq!(c["nvidia_smi"], false, "{checked:#}");
    assert_eq!(c["gpus"], serde_json::json!([]));
    assert!(c["gpu_error"].is_null());
    let rows = b.cmd(["host", "list", "--json"]).json();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["host"] == "target")
        .unwrap()
        .clone();
    assert_eq!(row["gpu_count"], 0, "{row:#}");
    assert!(
        b.ok(&["host", "show", "target"])
            .contains("gpus            none")
    );
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The job's GPU processes as `show --json` gives them, once non-empty.
fn wait_gpus(b: &Belay, id: &str) -> Value {
    let mut last = Value::Null;
    let ok = poll(Duration::from_secs(30), || {
        last = b.job(id);
        last["gpus"].as_array().is_some_and(|g| !g.is_empty())
    });
    assert!(ok, "no gpus: {last:#}");
    last
}

#[test]
fn a_running_job_shows_the_gpu_processes_it_holds() {
    let smi = FakeSmi::new();
    let host = smi.host();
    let b = host.belay();
    b.ok(&["host", "check", "target"]); // the inventory: uuid -> index
    let p = b.scratch("pid");
    let id = b.submit(&[
        "target",
        "--",
        &format!("sleep 300 & echo $! > '{}'; wait", p.display()),
    ]);
    assert!(poll(Duration::from_secs(10), || read_pid(&p).is_some()));
    let pid = read_pid(&p).unwrap();
    b.wait_state(&id, "running", Duration::from_secs(10));
    // One process of this job, one of nobody's.
    smi.set_apps(&format!("{pid}, {UUID0}, 1180\n1, {UUID0}, 20\n"));
    let job = wait_gpus(&b, &id);
    let gpus = job["gpus"].as_array().unwrap();
    assert_eq!(gpus.len(), 1, "only the job's own: {job:#}");
    assert_eq!(gpus[0]["pid"], pid);
    assert_eq!(gpus[0]["gpu_uuid"], UUID0);
    assert_eq!(gpus[0]["gpu_index"], 0);
    assert_eq!(gpus[0]["used_memory_mib"], 1180);
    let listed = b.cmd(["ps", "--json"]).json();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id.as_str())
        .expect("listed")
        .clone();
    assert_eq!(row["gpus"], job["gpus"], "{row:#}");
    let text = b.ok(&["show", &id]);
    assert!(
        text.contains(&format!("gpu        0 ({UUID0}): pid {pid}, 1180 MiB")),
        "{text}"
    );
    b.ok(&["cancel", &id]);
    assert!(b.job(&id)["gpus"].is_null(), "not while ended");
}

/// Live processes (not zombies) whose environment holds exactly `entry`.
fn carrying(entry: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == entry.as_bytes()) && is_running(pid) {
            found.push(pid);
        }
    }
    found
}

/// Within 10 s no live process carries the job's `entry`, and its
/// escaped `setsid` child is gone too.
fn assert_nothing_left(entry: &str, child: u32) {
    assert!(
        poll(Duration::from_secs(10), || carrying(entry).is_empty()),
        "left behind: {:?}",
        carrying(entry)
    );
    assert!(!is_running(child), "the setsid child {child} survived");
}

fn sid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(") ").next()?.split(' ').nth(3)?.parse().ok()
}

/// A running job that started a `setsid` child (out of its session) which
/// "holds a GPU": (job id, the child's pid, the job's BELAY_JOB_DIR entry).
fn job_with_escaped_child(smi: &FakeSmi, b: &Belay, host: &Loopback) -> (String, u32, String) {
    let p = b.scratch("escaped");
    let id = b.submit(&[
        "target",
        "--",
        &format!(
            "setsid sh -c 'echo $$ > {}; exec sleep 300' </dev/null >/dev/null 2>&1 & sleep 300",
            p.display()
        ),
    ]);
    assert!(poll(Duration::from_secs(10), || read_pid(&p).is_some()));
    let child = read_pid(&p).unwrap();
    let job = b.wait_state(&id, "running", Duration::from_secs(10));
    let dir = job["job_dir"].as_str().expect("job_dir").to_string();
    let started = kv_file(&host.remote_view(Path::new(&dir)).join("started"));
    let sid: u32 = started["sid"].parse().unwrap();
    assert_ne!(sid_of(child), Some(sid), "the child left the job's session");
    let entry = format!("BELAY_JOB_DIR={dir}");
    assert!(
        poll(Duration::from_secs(5), || carrying(&entry).contains(&child)),
        "the child carries {entry}: {:?}",
        carrying(&entry)
    );
    smi.set_apps(&format!("{child}, {UUID0}, 500\n"));
    // Found by the BELAY_JOB_ID in its environment, not by its session.
    let shown = wait_gpus(b, &id);
    assert_eq!(shown["gpus"][0]["pid"], child, "{shown:#}");
    (id, child, entry)
}

#[test]
fn cancel_leaves_no_process_of_the_job_holding_a_gpu() {
    let smi = FakeSmi::new();
    let host = smi.host();
    let b = host.belay();
    let (id, child, entry) = job_with_escaped_child(&smi, &b, &host);
    b.ok(&["cancel", &id]);
    assert_eq!(b.job(&id)["state"], "cancelled");
    assert_nothing_left(&entry, child);
}

#[test]
fn a_lost_job_leaves_no_process_holding_a_gpu() {
    let smi = FakeSmi::new();
    let host = smi.host();
    let b = host.belay();
    let (id, child, entry) = job_with_escaped_child(&smi, &b, &host);
    let dir = PathBuf::from(b.job(&id)["job_dir"].as_str().unwrap());
    let started = kv_file(&host.remote_view(&dir).join("started"));
    let pid: i32 = started["pid"].parse().unwrap();
    // SAFETY: killing the job's wrapper, a process this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    b.wait_state(&id, "lost", Duration::from_secs(30));
    assert_nothing_left(&entry, child);
}

#[test]
fn a_daemon_started_from_inside_a_job_does_not_carry_the_job() {
    // As when `belay run` is used in a job on a host that has belay: the
    // daemon it starts must not be swept when that job is cancelled.
    let b = Belay::new()
        .with_env("BELAY_NO_DAEMON", "")
        .with_env("BELAY_JOB_ID", "0a1b2c3d")
        .with_env("BELAY_JOB_DIR", "/tmp/some-job")
        .with_env("BELAY_INPUTS", "/tmp/some-job/inputs");
    let id = b.submit(&["local", "--", "true"]);
    b.wait_state(&id, "succeeded", Duration::from_secs(20));
    let info = b.cmd(["serve", "--status", "--json"]).json();
    let pid = info["pid"].as_u64().expect("a daemon answers");
    let env = std::fs::read(format!("/proc/{pid}/environ")).expect("the daemon's environ");
    let carried: Vec<String> = env
        .split(|c| *c == 0)
        .filter(|v| v.starts_with(b"BELAY_JOB_") || v.starts_with(b"BELAY_INPUTS="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert!(carried.is_empty(), "the daemon carries {carried:?}");
}
