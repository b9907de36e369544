//! A real single-node Slurm cluster (22.05, no accounting daemon) whose
//! "login node" is a test [`crate::Sshd`].
//!
//! The sshd runs in a private mount namespace whose `/root` is a tmpfs
//! (belay's job directories live there), so munged, slurmctld and slurmd
//! are started *inside that namespace* (`nsenter -t <sshd pid> -m`): batch
//! jobs then see exactly the files the SSH sessions see. Each cluster has
//! its own munge key and socket, state and spool directories, and private
//! ports found at run time, so clusters of concurrent tests never meet.
//!
//! Use in two steps, because the sshd must know the cluster before it
//! starts: [`Slurm::prepare`] writes the configuration and the command
//! wrappers; start the sshd with [`Slurm::sshd_config`] among its
//! `extra_config` (`SetEnv SLURM_CONF=… PATH=<bin_dir>:…`, so every session
//! finds the cluster and the wrappers first); then [`Slurm::start`] with the
//! sshd's pid.
//!
//! The wrappers in [`Slurm::bin_dir`] log one line per call of `sbatch`,
//! `squeue`, `sacct`, `scontrol` and `scancel` (read with [`Slurm::calls`])
//! and run the real command; with [`Slurm::set_sbatch_lies`] `sbatch`
//! submits for real, then says "Socket timed out" and exits 1, as a
//! congested slurmctld does. The test's own helpers
//! ([`Slurm::scontrol_show_job`], [`Slurm::jobs_with_comment`]) call the
//! real commands and are never counted.
//!
//! With [`SlurmOptions::compute_node`] the cluster's node is not the login
//! node but `node1`, isolated as a real compute node is
//! ([`crate::compute_node`]): its own network namespace and hostname, the
//! login node's mount namespace (the shared home). Its slurmd runs there,
//! and so do all jobs.
//!
//! [`NoSlurmPath`] is a `PATH` without any Slurm command, for a host that
//! is configured as a cluster but has no `sbatch`.
//!
//! Dropping a [`Slurm`] stops every process it started, by pid: the
//! daemons, and every process left in the sshd's mount namespace that is
//! not the sshd's own (job steps and the jobs themselves).

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::compute_node::{ComputeNet, NODE_NAME};
use crate::process::{alive, descendants, run, signal, wait_until};

/// The Slurm commands the wrappers count.
const COUNTED: [&str; 6] = ["sbatch", "squeue", "sacct", "scontrol", "scancel", "srun"];

/// Where the real commands are (slurm-wlm on Debian).
const REAL_BIN: &str = "/usr/bin";

/// What the login node's sessions get after the wrapper directory.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The message the lying `sbatch` prints after submitting for real.
pub const SBATCH_LIE: &str =
    "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation";

/// How to run a [`Slurm`] cluster.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// `MinJobAge`: seconds a finished job stays in `squeue`/`scontrol`
    /// (Slurm's default 300; a test of vanished jobs wants about 2).
    pub min_job_age: u32,
    /// `SlurmdTimeout`: seconds before slurmctld declares a silent slurmd's
    /// node down (and its jobs NODE_FAIL).
    pub slurmd_timeout: u32,
    /// `sbatch` lies from the start (see [`Slurm::set_sbatch_lies`]).
    pub lying_sbatch: bool,
    /// Keep a job completion record (`JobCompType=jobcomp/filetxt`, in
    /// [`Slurm::jobcomp`]); false: none, so a job purged from slurmctld
    /// leaves no trace at all (no accounting either).
    pub jobcomp: bool,
    /// The node is `node1`, in a network namespace of its own, instead of
    /// the login node itself: see the module docs.
    pub compute_node: bool,
}

impl Default for SlurmOptions {
    fn default() -> Self {
        SlurmOptions {
            min_job_age: 300,
            slurmd_timeout: 300,
            lying_sbatch: false,
            jobcomp: true,
            compute_node: false,
        }
    }
}

/// A single-node Slurm cluster: node `localhost` (or, with
/// [`SlurmOptions::compute_node`], an isolated `node1`) with 2 CPUs,
/// partitions `debug` (the default, no time limit) and `short`
/// (`MaxTime=1`, minutes).
#[derive(Debug)]
pub struct Slurm {
    dir: tempfile::TempDir,
    opts: SlurmOptions,
    /// The process whose mount namespace the daemons share (the sshd).
    ns_pid: u32,
    /// That namespace's identity (`/proc/PID/ns/mnt`), for clean-up.
    mnt_ns: Option<PathBuf>,
    munged: Option<Child>,
    slurmctld: Option<Child>,
    slurmd: Option<Child>,
    /// The compute node's network (with `compute_node`).
    compute: Option<ComputeNet>,
    /// The compute node's sshd ([`Slurm::start_node_sshd`]).
    node_sshd: Option<Child>,
}

impl Slurm {
    /// Writes the configuration, munge key and wrappers; starts nothing.
    pub fn prepare(opts: SlurmOptions) -> io::Result<Slurm> {
        let dir = tempfile::Builder::new().prefix("belay-slurm.").tempdir()?;
        let d = dir.path();
        // munged insists that every directory above its socket is
        // searchable by all, and the job's user reads the config.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
        for sub in ["munge", "state", "spool", "log", "bin"] {
            std::fs::create_dir_all(d.join(sub))?;
            std::fs::set_permissions(d.join(sub), std::fs::Permissions::from_mode(0o755))?;
        }
        run(Command::new("mungekey")
            .arg("--create")
            .arg(format!("--keyfile={}", d.join("munge/munge.key").display())))?;
        std::fs::write(d.join("plugstack.conf"), "")?;
        std::fs::write(d.join("calls.log"), "")?;
        let slurm = Slurm {
            dir,
            opts,
            ns_pid: 0,
            mnt_ns: None,
            munged: None,
            slurmctld: None,
            slurmd: None,
            compute: None,
            node_sshd: None,
        };
        slurm.write_wrappers()?;
        slurm.set_sbatch_lies(slurm.opts.lying_sbatch)?;
        slurm.write_conf(0, 0)?;
        Ok(slurm)
    }

    fn write_wrappers(&self) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let log = self.dir.path().join("calls.log");
        let lie = self.dir.path().join("sbatch.lies");
        for cmd in COUNTED {
            let mut script = format!(
                "#!/bin/sh\n# belay-testbed: count this call, then run the real {cmd}.\n\
                 printf '%s %s\\n' {cmd} \"$*\" >> {log}\n",
                log = log.display()
            );
            if cmd == "sbatch" {
                // Submit for real, then lose the answer: what sbatch says
                // when slurmctld is too slow to reply.
                script.push_str(&format!(
                    "if [ -e {lie} ]; then\n\
                     \x20 {REAL_BIN}/sbatch \"$@\" >/dev/null || exit $?\n\
                     \x20 echo '{SBATCH_LIE}' >&2\n\
                     \x20 exit 1\n\
                     fi\n",
                    lie = lie.display()
                ));
            }
            script.push_str(&format!("exec {REAL_BIN}/{cmd} \"$@\"\n"));
            let path = self.bin_dir().join(cmd);
            std::fs::write(&path, script)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(())
    }

    fn write_conf(&self, ctld_port: u16, slurmd_port: u16) -> io::Result<()> {
        let d = self.dir.path().display();
        let name = format!(
            "bt{}",
            self.dir
                .path()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("x")
                .rsplit('.')
                .next()
                .unwrap_or("x")
                .to_lowercase()
        );
        // With a compute node, the controller is named by this machine's
        // hostname (slurmctld insists) at the address the node reaches.
        let controller = match &self.compute {
            Some(net) => format!("{}({})", hostname(), net.controller_addr()),
            None => "localhost".to_string(),
        };
        // With a compute node, it is the only node (slurmctld refuses a
        // node named `localhost` beside another), as on a cluster whose
        // login node runs no jobs.
        let node = match &self.compute {
            Some(net) => format!("NodeName={NODE_NAME} NodeAddr={}", net.node_addr()),
            None => "NodeName=localhost NodeAddr=127.0.0.1".to_string(),
        };
        let nodes = self.node_name();
        let conf = format!(
            "ClusterName={name}\n\
             SlurmctldHost={controller}\n\
             SlurmctldPort={ctld_port}\n\
             SlurmdPort={slurmd_port}\n\
             SlurmUser=root\n\
             AuthType=auth/munge\n\
             CredType=cred/munge\n\
             AuthInfo=socket={d}/munge/munge.sock\n\
             StateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/log/slurmctld.log\n\
             SlurmdLogFile={d}/log/slurmd.log\n\
             PlugStackConfig={d}/plugstack.conf\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             {jobcomp}\
             SchedulerParameters=batch_sched_delay=0,sched_min_interval=0\n\
             SlurmdParameters=config_overrides\n\
             MpiDefault=none\n\
             ReturnToService=2\n\
             KillWait=2\n\
             MinJobAge={age}\n\
             SlurmdTimeout={sdt}\n\
             {node} CPUs=2 RealMemory=1024 State=UNKNOWN\n\
             PartitionName=debug Nodes={nodes} Default=YES MaxTime=INFINITE State=UP\n\
             PartitionName=short Nodes={nodes} MaxTime=1 State=UP\n",
            age = self.opts.min_job_age,
            jobcomp = if self.opts.jobcomp {
                format!("JobCompType=jobcomp/filetxt\nJobCompLoc={d}/log/jobcomp.txt\n")
            } else {
                "JobCompType=jobcomp/none\n".to_string()
            },
            sdt = self.opts.slurmd_timeout,
        );
        std::fs::write(self.conf(), conf)
    }

    /// `slurm.conf` (what `SLURM_CONF` names).
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    /// The cluster's private directory (config, logs, state).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The wrappers' directory, first on the login node's `PATH`.
    pub fn bin_dir(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// The login node's `PATH`: the wrappers, then the system's.
    pub fn path(&self) -> String {
        format!("{}:{SYSTEM_PATH}", self.bin_dir().display())
    }

    /// sshd_config lines for the login node: every session gets
    /// `SLURM_CONF` and the wrappers first on `PATH`.
    pub fn sshd_config(&self) -> Vec<String> {
        vec![format!(
            "SetEnv SLURM_CONF={} PATH={}",
            self.conf().display(),
            self.path()
        )]
    }

    /// Files for the login user's home (`SshdOptions::home_files`): a
    /// `.profile` that puts the same `PATH` and `SLURM_CONF` back after
    /// `/etc/profile` resets them, so login shells see the cluster (and the
    /// wrappers) exactly as plain sessions do.
    pub fn home_files(&self) -> Vec<(String, String)> {
        vec![(
            ".profile".into(),
            format!(
                "PATH={}\nSLURM_CONF={}\nexport PATH SLURM_CONF\n",
                self.path(),
                self.conf().display()
            ),
        )]
    }

    /// From now on `sbatch` submits, then fails with [`SBATCH_LIE`]
    /// (`true`), or just submits (`false`).
    pub fn set_sbatch_lies(&self, lies: bool) -> io::Result<()> {
        let flag = self.dir.path().join("sbatch.lies");
        if lies {
            std::fs::write(flag, "")
        } else {
            match std::fs::remove_file(flag) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
    }

    /// How many times the login node ran `cmd` (one of `sbatch`, `squeue`,
    /// `sacct`, `scontrol`, `scancel`) through the wrappers.
    pub fn calls(&self, cmd: &str) -> usize {
        self.call_log()
            .lines()
            .filter(|l| l.split(' ').next() == Some(cmd))
            .count()
    }

    /// Every wrapped call so far, one line each: `cmd args…`.
    pub fn call_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("calls.log")).unwrap_or_default()
    }

    /// Starts munged, slurmctld and slurmd in the mount namespace of
    /// `ns_pid` (the login node's sshd) and returns once the node is
    /// `idle`. Retries with other ports if one was taken meanwhile.
    pub fn start(&mut self, ns_pid: u32) -> io::Result<()> {
        self.ns_pid = ns_pid;
        if self.opts.compute_node && self.compute.is_none() {
            self.compute = Some(ComputeNet::create()?);
        }
        let ns = std::fs::read_link(format!("/proc/{ns_pid}/ns/mnt"))
            .map_err(|e| io::Error::other(format!("mount namespace of pid {ns_pid}: {e}")))?;
        self.mnt_ns = Some(ns);
        let d = self.dir.path().to_path_buf();
        let sock = d.join("munge/munge.sock");
        self.munged = Some(self.spawn_in_ns(
            "munged",
            &[
                "munged".into(),
                "--foreground".into(),
                format!("--key-file={}", d.join("munge/munge.key").display()),
                format!("--socket={}", sock.display()),
                format!("--pid-file={}", d.join("munge/munged.pid").display()),
                format!("--log-file={}", d.join("munge/munged.log").display()),
                format!("--seed-file={}", d.join("munge/seed").display()),
            ],
        )?);
        if !wait_until(Duration::from_secs(10), || sock.exists()) {
            return Err(self.failure("munged made no socket within 10 s", "munge/munged.log"));
        }
        let mut last = None;
        for _ in 0..5 {
            match self.start_slurm() {
                Ok(()) => return Ok(()),
                Err(e) if e.to_string().contains("Address already in use") => {
                    self.stop_daemons();
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free ports for Slurm")))
    }

    fn start_slurm(&mut self) -> io::Result<()> {
        let (ctld, slurmd) = (free_port()?, free_port()?);
        self.write_conf(ctld, slurmd)?;
        let _ = std::fs::remove_file(self.dir.path().join("log/slurmctld.log"));
        let _ = std::fs::remove_file(self.dir.path().join("log/slurmd.log"));
        self.slurmctld =
            Some(self.spawn_in_ns("slurmctld", &["slurmctld".into(), "-D".into(), "-i".into()])?);
        // slurmctld answers once it has bound its port.
        let mut answered = false;
        let up = wait_until(Duration::from_secs(20), || {
            if exited(&mut self.slurmctld) {
                return true;
            }
            answered = self.real("scontrol", &["ping"]).is_ok_and(|o| {
                o.status.success() && String::from_utf8_lossy(&o.stdout).contains("is UP")
            });
            answered
        });
        if !up || !answered {
            return Err(self.failure("slurmctld did not come up", "log/slurmctld.log"));
        }
        if self.compute.is_some() {
            return self.start_compute_slurmd();
        }
        self.slurmd = Some(self.spawn_in_ns(
            "slurmd",
            &[
                "slurmd".into(),
                "-D".into(),
                "-N".into(),
                "localhost".into(),
            ],
        )?);
        let mut idle = false;
        let ok = wait_until(Duration::from_secs(30), || {
            if exited(&mut self.slurmd) {
                return true;
            }
            idle = self.node_state() == "idle";
            idle
        });
        if !ok || !idle {
            let state = self.node_state();
            return Err(self.failure(
                &format!("the node never became idle (state '{state}')"),
                "log/slurmd.log",
            ));
        }
        Ok(())
    }

    /// Starts an sshd on the compute node (port 22 at [`Slurm::node_addr`]),
    /// run with the login node's `sshd_config` (its host key, its
    /// authorized keys; the home is shared anyway): the cluster then lets
    /// users SSH to compute nodes through the login node, as many do.
    /// Needs [`SlurmOptions::compute_node`]; stopped with the cluster.
    pub fn start_node_sshd(&mut self, login_sshd_config: &Path) -> io::Result<()> {
        let net = self
            .compute
            .as_ref()
            .ok_or_else(|| io::Error::other("no compute node (SlurmOptions::compute_node)"))?;
        let log = self.dir.path().join("log/node-sshd.log");
        // The login node's configuration, listening on the node's port 22.
        let login = std::fs::read_to_string(login_sshd_config)?;
        let mut conf = String::from("Port 22\nListenAddress 0.0.0.0\nPidFile none\n");
        for line in login.lines() {
            let key = line.split_whitespace().next().unwrap_or("");
            if !["Port", "ListenAddress", "PidFile"].contains(&key) {
                conf.push_str(line);
                conf.push('\n');
            }
        }
        let node_config = self.dir.path().join("node_sshd_config");
        std::fs::write(&node_config, conf)?;
        let child = Command::new("nsenter")
            .arg("-t")
            .arg(self.ns_pid.to_string())
            .arg("-m")
            .arg(format!("--net=/run/netns/{}", net.netns))
            .args(["--", "unshare", "-u", "sh", "-c"])
            .arg(format!(
                "hostname {NODE_NAME} && exec /usr/sbin/sshd -D -f {} -E {}",
                node_config.display(),
                log.display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let addr = net.node_addr();
        self.node_sshd = Some(child);
        // Listening once a connect from the root namespace succeeds.
        let up = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect_timeout(
                &format!("{addr}:22").parse().expect("an address"),
                Duration::from_millis(200),
            )
            .is_ok()
        });
        if !up {
            return Err(self.failure(
                "the compute node's sshd did not listen",
                "log/node-sshd.log",
            ));
        }
        Ok(())
    }

    /// The compute node's address (with [`SlurmOptions::compute_node`]).
    pub fn node_addr(&self) -> Option<String> {
        self.compute.as_ref().map(ComputeNet::node_addr)
    }

    /// The compute node's sshd log (after [`Slurm::start_node_sshd`]).
    pub fn node_sshd_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log/node-sshd.log")).unwrap_or_default()
    }

    /// The cluster's one node: `localhost` (the login node itself), or
    /// [`NODE_NAME`] with a compute node.
    pub fn node_name(&self) -> &'static str {
        if self.compute.is_some() || self.opts.compute_node {
            NODE_NAME
        } else {
            "localhost"
        }
    }

    /// slurmd of `node1`: in the login node's mount namespace, the compute
    /// network namespace, and a UTS namespace whose hostname is `node1`
    /// (nsenter and unshare exec without forking, and sh execs slurmd: the
    /// child's pid is slurmd's).
    fn start_compute_slurmd(&mut self) -> io::Result<()> {
        let netns = self
            .compute
            .as_ref()
            .map(|n| n.netns.clone())
            .unwrap_or_default();
        let out = std::fs::File::create(self.dir.path().join("log/slurmd.out"))?;
        let err = out.try_clone()?;
        self.slurmd = Some(
            Command::new("nsenter")
                .arg("-t")
                .arg(self.ns_pid.to_string())
                .arg("-m")
                .arg(format!("--net=/run/netns/{netns}"))
                .args(["--", "unshare", "-u", "sh", "-c"])
                .arg(format!(
                    "hostname {NODE_NAME} && exec slurmd -D -N {NODE_NAME}"
                ))
                .env("SLURM_CONF", self.conf())
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(|e| io::Error::new(e.kind(), format!("spawning node1's slurmd: {e}")))?,
        );
        let mut idle = false;
        let ok = wait_until(Duration::from_secs(30), || {
            if exited(&mut self.slurmd) {
                return true;
            }
            idle = self.state_of(NODE_NAME) == "idle";
            idle
        });
        if !ok || !idle {
            let state = self.state_of(NODE_NAME);
            return Err(self.failure(
                &format!("{NODE_NAME} never became idle (state '{state}')"),
                "log/slurmd.log",
            ));
        }
        Ok(())
    }

    /// `what` failed: an error with the tail of its log.
    fn failure(&self, what: &str, log: &str) -> io::Error {
        let text = std::fs::read_to_string(self.dir.path().join(log)).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        io::Error::other(format!("{what}; {log}:\n{}", tail.join("\n")))
    }

    fn spawn_in_ns(&self, name: &str, argv: &[String]) -> io::Result<Child> {
        let out = std::fs::File::create(self.dir.path().join(format!("log/{name}.out")))?;
        let err = out.try_clone()?;
        // nsenter enters a mount namespace without forking: the child's pid
        // is the daemon's.
        Command::new("nsenter")
            .arg("-t")
            .arg(self.ns_pid.to_string())
            .args(["-m", "--"])
            .args(argv)
            .env("SLURM_CONF", self.conf())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("spawning {name}: {e}")))
    }

    /// Runs the real (uncounted) Slurm command `cmd` against this cluster.
    fn real(&self, cmd: &str, args: &[&str]) -> io::Result<std::process::Output> {
        Command::new(format!("{REAL_BIN}/{cmd}"))
            .args(args)
            .env("SLURM_CONF", self.conf())
            .stdin(Stdio::null())
            .output()
    }

    /// Runs the real `cmd` and insists on success; its stdout.
    pub fn command(&self, cmd: &str, args: &[&str]) -> io::Result<String> {
        let out = self.real(cmd, args)?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "{cmd} {args:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The node's state as `sinfo -h -o %t` prints it (`idle`, `alloc`,
    /// `mix`, `down*`, …), or an empty string if sinfo fails.
    pub fn node_state(&self) -> String {
        self.state_of(self.node_name())
    }

    fn state_of(&self, name: &str) -> String {
        self.command("sinfo", &["-h", "-n", name, "-o", "%t"])
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    /// `scontrol show job ID` (empty once the job's record is gone).
    pub fn scontrol_show_job(&self, id: &str) -> String {
        self.real("scontrol", &["show", "job", id])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// One field of `scontrol show job ID` (`JobState`, `Partition`,
    /// `TimeLimit`, `NumCPUs`, `Comment`, `Reason`, …).
    pub fn job_field(&self, id: &str, field: &str) -> Option<String> {
        let text = self.scontrol_show_job(id);
        let key = format!("{field}=");
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(&key))
            .map(str::to_string)
    }

    /// Ids of the jobs Slurm still knows (any state) whose comment
    /// contains `substr` (`squeue -t all -h -o '%A|%k'`).
    pub fn jobs_with_comment(&self, substr: &str) -> Vec<String> {
        let out = self
            .command("squeue", &["-t", "all", "-h", "-o", "%A|%k"])
            .unwrap_or_default();
        out.lines()
            .filter_map(|l| l.split_once('|'))
            .filter(|(_, comment)| comment.contains(substr))
            .map(|(id, _)| id.trim().to_string())
            .collect()
    }

    /// `squeue -t all -h -o '%A|%T|%r|%k'`: every job Slurm still knows,
    /// as `id|STATE|reason|comment` lines (for assertion messages).
    pub fn queue(&self) -> String {
        self.command("squeue", &["-t", "all", "-h", "-o", "%A|%T|%r|%k"])
            .unwrap_or_else(|e| e.to_string())
    }

    /// The job completion records so far (one line per finished job;
    /// empty without [`SlurmOptions::jobcomp`]).
    pub fn jobcomp(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log/jobcomp.txt")).unwrap_or_default()
    }

    /// The slurmctld log so far.
    pub fn slurmctld_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log/slurmctld.log")).unwrap_or_default()
    }

    /// SIGKILLs slurmd alone (its jobs' steps and commands keep running, as
    /// after a slurmd crash; slurmctld gives up on the node after
    /// `SlurmdTimeout`). See [`Slurm::kill_node`] for a node that dies.
    pub fn kill_slurmd(&mut self) {
        if let Some(mut c) = self.slurmd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The node crashes: SIGKILL slurmd and everything its jobs run (every
    /// process in the login node's namespace that is not the sshd's nor a
    /// daemon: job steps, batch scripts, their commands). slurmctld learns
    /// of it only after `SlurmdTimeout`.
    pub fn kill_node(&mut self) {
        self.kill_slurmd();
        let strays = self.namespace_strays();
        for &p in &strays {
            signal(p, libc::SIGKILL);
        }
        wait_until(Duration::from_secs(5), || strays.iter().all(|&p| !alive(p)));
    }

    /// Pids of processes in the login node's mount namespace that are not
    /// the sshd's (job steps, jobs, detached wrappers) nor the daemons.
    fn namespace_strays(&self) -> Vec<u32> {
        let Some(ns) = &self.mnt_ns else {
            return Vec::new();
        };
        let mut keep = descendants(self.ns_pid);
        keep.push(self.ns_pid);
        for c in [&self.munged, &self.slurmctld, &self.slurmd, &self.node_sshd]
            .into_iter()
            .flatten()
        {
            keep.push(c.id());
        }
        let me = std::process::id();
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                if pid == me || keep.contains(&pid) {
                    continue;
                }
                if std::fs::read_link(format!("/proc/{pid}/ns/mnt")).is_ok_and(|l| &l == ns) {
                    out.push(pid);
                }
            }
        }
        out
    }

    fn stop_daemons(&mut self) {
        for child in [&mut self.node_sshd, &mut self.slurmd, &mut self.slurmctld] {
            if let Some(mut c) = child.take() {
                signal(c.id(), libc::SIGTERM);
                let pid = c.id();
                if !wait_until(Duration::from_secs(5), || {
                    matches!(c.try_wait(), Ok(Some(_))) || !alive(pid)
                }) {
                    let _ = c.kill();
                }
                let _ = c.wait();
            }
        }
    }
}

/// This machine's hostname (what slurmctld checks `SlurmctldHost`
/// against).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// True once the child in `slot` has exited (it is then reaped).
fn exited(slot: &mut Option<Child>) -> bool {
    match slot {
        Some(c) => matches!(c.try_wait(), Ok(Some(_))),
        None => true,
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        // The node first, so it starts nothing new, with whatever its steps
        // left in the namespace; then the controller and munge.
        self.kill_node();
        self.stop_daemons();
        if let Some(mut c) = self.munged.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A `PATH` for a login node without Slurm: a directory of links to
/// everything in `/usr/bin` except the Slurm commands, then the sbin
/// directories (which hold only the daemons). Lives as long as this value.
#[derive(Debug)]
pub struct NoSlurmPath {
    dir: tempfile::TempDir,
}

impl NoSlurmPath {
    pub fn create() -> io::Result<NoSlurmPath> {
        let dir = tempfile::Builder::new()
            .prefix("belay-noslurm.")
            .tempdir()?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let slurm_commands = [
            "sacct", "sacctmgr", "salloc", "sattach", "sbatch", "sbcast", "scancel", "scontrol",
            "scrontab", "sdiag", "sinfo", "sprio", "squeue", "sreport", "srun", "sshare", "sstat",
            "strigger", "sh5util",
        ];
        for e in std::fs::read_dir(REAL_BIN)?.flatten() {
            let name = e.file_name();
            if slurm_commands.iter().any(|c| name == *c) {
                continue;
            }
            std::os::unix::fs::symlink(e.path(), dir.path().join(&name))?;
        }
        Ok(NoSlurmPath { dir })
    }

    /// The `PATH` value.
    pub fn path(&self) -> String {
        format!(
            "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin",
            self.dir.path().display()
        )
    }

    /// sshd_config lines giving every session that `PATH`.
    pub fn sshd_config(&self) -> Vec<String> {
        vec![format!("SetEnv PATH={}", self.path())]
    }

    /// A `.profile` with that `PATH` for login shells (after
    /// `/etc/profile`, which would bring `/usr/bin` back).
    pub fn home_files(&self) -> Vec<(String, String)> {
        vec![(
            ".profile".into(),
            format!("PATH={}\nexport PATH\n", self.path()),
        )]
    }
}

/// A currently free TCP port on 127.0.0.1 (may be taken before use;
/// [`Slurm::start`] retries).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
