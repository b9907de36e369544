//! The Slurm test bed on its own: a real cluster reached through a real
//! sshd. Submitting over SSH works, jobs see the sshd's private `/root`,
//! the wrappers count and lie as promised, and a host can lack `sbatch`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use belay_testbed::{
    HostBlock, KeyKind, KeyPair, NoSlurmPath, Prerequisite, SBATCH_LIE, Slurm, SlurmOptions, Sshd,
    SshdOptions, require, wait_until,
};

struct Login {
    // Field order is drop order: the cluster goes before its login node.
    slurm: Slurm,
    host: Host,
}

/// An sshd and a client for it (key, known_hosts, ssh_config).
struct Host {
    sshd: Sshd,
    dir: tempfile::TempDir,
}

impl Host {
    fn start(extra_config: Vec<String>, home_files: Vec<(String, String)>) -> Host {
        require(&[Prerequisite::Root, Prerequisite::OpenSsh]).expect("root and OpenSSH");
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate(dir.path(), "id", KeyKind::Ed25519).unwrap();
        let sshd = Sshd::start(SshdOptions {
            authorized_keys: vec![key.public_line().unwrap()],
            extra_config,
            home_files,
            ..SshdOptions::default()
        })
        .expect("sshd");
        let known = dir.path().join("known_hosts");
        std::fs::write(&known, format!("{}\n", sshd.known_hosts_line("127.0.0.1"))).unwrap();
        std::fs::write(
            dir.path().join("ssh_config"),
            HostBlock::new("login")
                .hostname("127.0.0.1")
                .port(sshd.port())
                .test_client(&key, &known)
                .to_string(),
        )
        .unwrap();
        Host { sshd, dir }
    }

    fn ssh(&self, cmd: &str) -> Output {
        Command::new("ssh")
            .arg("-F")
            .arg(self.dir.path().join("ssh_config"))
            .arg("login")
            .arg(cmd)
            .output()
            .expect("ssh")
    }
}

impl Login {
    fn start(opts: SlurmOptions) -> Login {
        require(&[Prerequisite::Slurm]).expect("the Slurm test bed needs Slurm");
        let mut slurm = Slurm::prepare(opts).expect("prepare slurm");
        let host = Host::start(slurm.sshd_config(), slurm.home_files());
        slurm.start(host.sshd.pid()).expect("start slurm");
        Login { slurm, host }
    }

    fn ssh(&self, cmd: &str) -> Output {
        self.host.ssh(cmd)
    }

    /// `path` as the login node's sessions (and its jobs) see it.
    fn remote(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.host.sshd.pid()))
            .join(path.trim_start_matches('/'))
    }
}

fn text(o: &Output) -> String {
    format!(
        "{:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_job_submitted_over_ssh_runs_and_sees_the_login_nodes_home() {
    let l = Login::start(SlurmOptions::default());
    let out =
        l.ssh("cd /root && sbatch --parsable --comment belay:t1 --wrap 'echo $HOME > /root/seen'");
    assert!(out.status.success(), "{}", text(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(id.parse::<u32>().is_ok(), "{}", text(&out));
    let seen = l.remote("/root/seen");
    assert!(
        wait_until(Duration::from_secs(20), || seen.exists()),
        "the job never wrote /root/seen; queue: {}",
        l.slurm.queue()
    );
    assert_eq!(std::fs::read_to_string(&seen).unwrap().trim(), "/root");
    assert!(
        !Path::new("/root/seen").exists(),
        "the job saw the machine's own /root"
    );
    assert_eq!(l.slurm.calls("sbatch"), 1, "{}", l.slurm.call_log());
    assert_eq!(l.slurm.jobs_with_comment("belay:t1"), vec![id.clone()]);
    assert!(l.slurm.scontrol_show_job(&id).contains("Comment=belay:t1"));
    // The helpers' own calls are not counted.
    assert_eq!(l.slurm.calls("squeue"), 0);
    assert_eq!(l.slurm.calls("scontrol"), 0);
    let out = l.ssh("squeue -h -o %A; squeue -h; scontrol show job 1 >/dev/null");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(l.slurm.calls("squeue"), 2);
    assert_eq!(l.slurm.calls("scontrol"), 1);
    // Login shells find the cluster and the wrappers too.
    let out = l.ssh("bash -lc 'squeue -h >/dev/null && command -v sbatch'");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        l.slurm.bin_dir().join("sbatch").display().to_string()
    );
    assert_eq!(l.slurm.calls("squeue"), 3);
}

#[test]
fn the_lying_sbatch_submits_once_and_says_it_timed_out() {
    let l = Login::start(SlurmOptions {
        lying_sbatch: true,
        ..SlurmOptions::default()
    });
    let out = l.ssh("sbatch --comment belay:lie --wrap 'sleep 30'");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), SBATCH_LIE);
    assert_eq!(
        l.slurm.jobs_with_comment("belay:lie").len(),
        1,
        "{}",
        l.slurm.queue()
    );
    // A refused submission is passed through as Slurm says it.
    let out = l.ssh("sbatch -p nope --wrap true");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid partition"),
        "{}",
        text(&out)
    );
    // Honest again on request.
    l.slurm.set_sbatch_lies(false).unwrap();
    let out = l.ssh("sbatch --parsable --comment belay:honest --wrap true");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(l.slurm.calls("sbatch"), 3);
}

#[test]
fn killing_slurmd_takes_the_node_down_and_drop_stops_everything() {
    let (ctld, ns);
    {
        let mut l = Login::start(SlurmOptions {
            slurmd_timeout: 3,
            ..SlurmOptions::default()
        });
        let out = l.ssh("sbatch --parsable --wrap 'sleep 300'");
        assert!(out.status.success(), "{}", text(&out));
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(wait_until(Duration::from_secs(20), || {
            l.slurm.job_field(&id, "JobState").as_deref() == Some("RUNNING")
        }));
        ctld = std::fs::read_to_string(l.slurm.dir().join("slurmctld.pid")).unwrap();
        ns = std::fs::read_link(format!("/proc/{}/ns/mnt", l.host.sshd.pid())).unwrap();
        l.slurm.kill_slurmd();
        assert!(
            wait_until(Duration::from_secs(30), || l
                .slurm
                .node_state()
                .starts_with("down")),
            "node state: {}",
            l.slurm.node_state()
        );
    }
    let ctld: u32 = ctld.trim().parse().unwrap();
    assert!(
        !Path::new(&format!("/proc/{ctld}")).exists(),
        "slurmctld survived the drop"
    );
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_link(e.path().join("ns/mnt")).is_ok_and(|l| l == ns))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.is_empty(),
        "processes left in the login node's namespace: {left:?}"
    );
}

#[test]
fn a_host_without_slurm_has_no_sbatch_but_a_working_shell() {
    let none = NoSlurmPath::create().unwrap();
    let host = Host::start(none.sshd_config(), none.home_files());
    let out =
        host.ssh("command -v sbatch; echo status=$?; ls / >/dev/null && command -v sh cat mkdir");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout.starts_with("status=1\n"), "{}", text(&out));
    assert_eq!(stdout.lines().count(), 4, "{}", text(&out));
    // Login shells too, though /etc/profile resets PATH.
    let out = host.ssh("bash -lc 'command -v sbatch; echo status=$?'");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "status=1\n",
        "{}",
        text(&out)
    );
}
