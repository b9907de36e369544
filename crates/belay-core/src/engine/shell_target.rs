//! Where `belay shell JOB|HOST` goes and what runs there: the host (a job's
//! own host, resolved like `show` resolves a job), the directory (the job's
//! working directory as recorded, its `inputs/` when it ran there, else the
//! home directory), the job's environment (`BELAY_JOB_ID`, `BELAY_JOB_DIR`,
//! its `--env` pairs), and the one remote command that sets all that up and
//! starts the user's login shell.
//!
//! Persistence: when the host has `tmux`, the shell is a tmux session named
//! after the job (`belay-<id>`, `--new` adds `-2`, `-3`…) or the host, so a
//! dropped link or a killed client leaves it running and the next `belay
//! shell` re-attaches with its screen. The shell's exit status reaches
//! belay through a status file written as the shell ends (a tmux client
//! exits 0 whatever its session did); a detach leaves none and exits 0.
//! Without tmux: a plain shell and one line saying it will not survive a
//! drop.
//!
//! A job whose connection reaches another node than the one it ran on (a
//! shared home behind a load balancer) gets one line saying so, as cancel
//! says `elsewhere`: its files are there, its processes are not.
//!
//! Every value reaches the host through [`crate::shell::quote`]; the whole
//! command is one `/bin/sh -c WORD`, so it means the same whatever the
//! user's login shell is.

use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::hosts::Hosts;
use crate::job::Job;
use crate::remote::scripts::job_dir_word;
use crate::remote::wrapper::workdir_word;
use crate::shell::quote;
use crate::transport::{TransportError, Workroot};

/// What `belay shell` was asked to do with the persistent session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShellMode {
    /// Attach to the session (starting it if there is none).
    Attach,
    /// Start another session beside the first.
    New,
    /// End the sessions (all of the job's or host's) and print their names.
    End,
}

/// Where a shell goes: resolved before anything is opened.
#[derive(Debug, Clone)]
pub struct ShellTarget {
    /// The SSH host (an ssh_config alias or destination).
    pub host: String,
    /// The job, when a job was named.
    pub job: Option<Job>,
    /// The job-directory root on the host.
    pub workroot: Workroot,
    /// A live Slurm job's compute node as the user's OpenSSH config names
    /// it (`slurm_step::node_alias`): tried first, by SSH; the login node
    /// and srun when it does not take the connection ([`ShellTarget::connect`]).
    pub node: Option<String>,
    /// This target is that node, reached by SSH: the shell runs there
    /// directly, not as an srun step.
    pub on_node: bool,
}

impl Engine {
    /// Resolves `reference`: a job (id, name or id prefix, reconciled as
    /// `show` does), else a host name. Neither: bad input naming it.
    pub fn shell_target(&mut self, reference: &str) -> Result<ShellTarget> {
        let (host, job) = match self.job(reference) {
            Ok((job, _problems)) => (job.host.clone(), Some(job)),
            Err(CoreError::UnknownJob(_)) => {
                if !Hosts::is_local(reference) {
                    self.hosts().validate(reference).map_err(|e| match e {
                        CoreError::Transport(TransportError::BadHost { message, .. }) => {
                            CoreError::BadInput(format!(
                                "'{reference}' is neither a job nor a host: {message}"
                            ))
                        }
                        other => other,
                    })?;
                }
                (reference.to_string(), None)
            }
            Err(e) => return Err(e),
        };
        if Hosts::is_local(&host) {
            return Err(CoreError::BadInput(match &job {
                Some(j) => format!(
                    "job {} runs on 'local', this machine: open a terminal in {} instead",
                    j.id,
                    j.remote_dir.as_deref().unwrap_or("its directory")
                ),
                None => "'local' is this machine: belay shell opens shells on SSH hosts".into(),
            }));
        }
        let workroot = self.hosts().config()?.host(&host).workroot();
        let node = job
            .as_ref()
            .filter(|j| crate::scheduler::slurm_step::live_job_id(j).is_some())
            .and_then(|j| crate::scheduler::slurm_step::node_alias(self.hosts(), &host, j));
        Ok(ShellTarget {
            host,
            job,
            workroot,
            node,
            on_node: false,
        })
    }
}

impl ShellTarget {
    /// The Slurm job id of a live (running or held) Slurm job: a shell for
    /// it enters its allocation.
    fn slurm_job_id(&self) -> Option<&str> {
        if self.on_node {
            return None;
        }
        crate::scheduler::slurm_step::live_job_id(self.job.as_ref()?)
    }

    /// The connection for this shell: to the job's compute node when the
    /// config names it and it takes the connection now (the target then
    /// becomes that node), else to the target's host, with a line saying
    /// why the node was not used. Blocking.
    pub fn connect(
        self,
        hosts: &Hosts,
    ) -> (
        ShellTarget,
        std::sync::Arc<belay_ssh::Client>,
        Option<String>,
    ) {
        let mut note = None;
        if let Some(node) = &self.node {
            let client = hosts.ssh(node).client().clone();
            match crate::transport::ssh::runtime().block_on(client.connect_info()) {
                Ok(_) => {
                    let on_node = ShellTarget {
                        host: node.clone(),
                        node: None,
                        on_node: true,
                        ..self
                    };
                    return (on_node, client, None);
                }
                Err(e) => {
                    note = Some(format!(
                        "no SSH to the job's node {node} ({e}); the shell is a step of the job's allocation through {}",
                        self.host
                    ))
                }
            }
        }
        let client = hosts.ssh(&self.host).client().clone();
        (self, client, note)
    }

    /// sh that sets `belay_step` to the words that run a command inside
    /// the job's Slurm allocation (`srun --overlap --jobid=ID`, with
    /// `--pty` on a terminal), or to nothing: not a live Slurm job, or no
    /// srun on the host (the shell then stays on the login node, and says
    /// so).
    fn slurm_step(&self) -> String {
        match self.slurm_job_id() {
            Some(id) => format!(
                "belay_step=\n\
                 if command -v srun >/dev/null 2>&1; then\n\
                 \x20 belay_step=\"srun --overlap --jobid={id} --quiet\"\n\
                 \x20 [ -t 0 ] && belay_step=\"$belay_step --pty\"\n\
                 else\n\
                 \x20 echo 'belay: no srun on this host: this shell is on the login node, outside the job'\\''s allocation' >&2\n\
                 fi\n"
            ),
            _ => "belay_step=\n".to_string(),
        }
    }

    /// The tmux session name: `belay-<job id>`, or `belay-<host>` with
    /// anything tmux would rewrite (`.`, `:`) or a shell would expand made
    /// `_`.
    pub fn session_name(&self) -> String {
        let tail = match &self.job {
            Some(j) => j.id.clone(),
            None => self
                .host
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect(),
        };
        format!("belay-{tail}")
    }

    /// The line to print before opening a shell for a job that has ended,
    /// or `None`.
    pub fn ended_note(&self) -> Option<String> {
        let job = self.job.as_ref()?;
        if job.state == crate::job::JobState::Held {
            // The banner of a debug hold: what failed, and how to end it.
            return Some(format!(
                "job {id} is held for debugging: `{cmd}` exited with code {code}{until}; `belay release {id}` ends the hold",
                id = job.id,
                cmd = job.command_line(),
                code = job.exit_code.map_or("?".into(), |c| c.to_string()),
                until = job.hold_until.map_or(String::new(), |t| format!(
                    " (held until {})",
                    crate::job::view::rfc3339(t)
                )),
            ));
        }
        if !job.state.is_terminal() {
            return None;
        }
        let how = match job.exit_status() {
            Some(code) if job.state != crate::job::JobState::Lost => {
                format!("{}, exit {code}", job.state)
            }
            _ => job.state.to_string(),
        };
        Some(format!(
            "job {} ended ({how}); opening a shell in its directory",
            job.id
        ))
    }

    /// The remote command: `/bin/sh -c` with the whole set-up as one word.
    /// `command`: run it (in the login shell, no tmux) instead of an
    /// interactive shell.
    pub fn remote_command(&self, mode: ShellMode, command: Option<&str>) -> String {
        format!("exec /bin/sh -c {}", quote(&self.script(mode, command)))
    }

    /// The POSIX sh script [`ShellTarget::remote_command`] runs.
    pub fn script(&self, mode: ShellMode, command: Option<&str>) -> String {
        let name = self.session_name();
        let qname = quote(&name);
        if mode == ShellMode::End {
            // Only this target's sessions: `NAME` and `NAME-<n>`.
            return format!(
                "command -v tmux >/dev/null 2>&1 || exit 0\n\
                 for s in $(tmux list-sessions -F '#{{session_name}}' 2>/dev/null); do\n\
                 \x20 case $s in {qname}|{qname}-[0-9]*) tmux kill-session -t \"=$s\" && echo \"$s\" ;; esac\n\
                 done\n\
                 exit 0\n"
            );
        }
        let mut setup = String::from("cd \"$HOME\" 2>/dev/null\n");
        let mut env = String::new();
        if let Some(job) = &self.job {
            let dir = job_dir_word(&self.workroot, &job.key, job.remote_dir.as_deref());
            let workdir = if job.runs_in_inputs() {
                format!("{dir}/inputs")
            } else {
                workdir_word(job.workdir.as_deref())
            };
            let shown = quote(&match (&job.workdir, job.runs_in_inputs()) {
                (_, true) => "the job's inputs directory".to_string(),
                (Some(w), _) => w.clone(),
                (None, _) => "~".to_string(),
            });
            setup.push_str(&format!(
                "cd {workdir} 2>/dev/null || echo \"belay: cannot enter \"{shown}\" on this host; staying in $HOME\" >&2\n"
            ));
            // The node the job ran on, from its `started` record (a live
            // Slurm job is entered through srun, wherever it runs).
            if self.slurm_job_id().is_none() {
                setup.push_str(&format!(
                "belay_jn=; belay_n=\n\
                 if [ -r {dir}/started ]; then\n\
                 \x20 while IFS='=' read -r k v; do [ \"$k\" = node ] && belay_jn=$v; done < {dir}/started\n\
                 \x20 read -r belay_n 2>/dev/null < /proc/sys/kernel/hostname\n\
                 \x20 if [ -n \"$belay_jn\" ] && [ -n \"$belay_n\" ] && [ \"$belay_jn\" != \"$belay_n\" ]; then\n\
                 \x20   echo \"belay: job {id} ran on $belay_jn, and this connection reached $belay_n: this shell is on $belay_n\" >&2\n\
                 \x20 fi\n\
                 fi\n",
                id = job.id
            ));
            }
            for (k, v) in &job.env {
                env.push_str(&format!("{k}={}; export {k}\n", quote(v)));
            }
            env.push_str(&format!(
                "BELAY_JOB_ID={}; export BELAY_JOB_ID\nBELAY_JOB_DIR={dir}; export BELAY_JOB_DIR\n",
                quote(&job.id)
            ));
        }
        setup.push_str(&env);
        setup.push_str("belay_sh=${SHELL:-/bin/sh}\n");
        // Into a live Slurm job's allocation (its node, its GPUs, its
        // cgroup): the shell runs as a step beside the job (`srun
        // --overlap`), wherever Slurm placed it.
        let step = self.slurm_step();
        setup.push_str(&step);
        if let Some(command) = command {
            setup.push_str(&format!(
                "exec $belay_step \"$belay_sh\" -lc {}\n",
                quote(command)
            ));
            return setup;
        }
        // Inside tmux: a new session's panes get the tmux server's
        // environment, not this one, so the session's command sets the
        // job's variables and directory itself, then writes the shell's
        // exit status where the waiting client finds it ($1). The client
        // runs without BELAY_JOB_*: a tmux server it starts serves every
        // session, and must not be swept when this job is cancelled.
        let inner = format!(
            "cd \"$2\" 2>/dev/null\n{env}{step}$belay_step \"${{SHELL:-/bin/sh}}\" -l\nbelay_c=$?\nprintf '%s\\n' \"$belay_c\" > \"$1\"\n"
        );
        let pick = match mode {
            ShellMode::New => format!(
                "belay_s={qname}; belay_i=2\n\
                 while tmux has-session -t \"=$belay_s\" 2>/dev/null; do belay_s={qname}-$belay_i; belay_i=$((belay_i + 1)); done\n"
            ),
            _ => format!("belay_s={qname}\n"),
        };
        setup.push_str(&format!(
            "if command -v tmux >/dev/null 2>&1; then\n\
             \x20 belay_st=\"$HOME/.cache/belay/shells\"\n\
             \x20 mkdir -p \"$belay_st\" 2>/dev/null && chmod 700 \"$belay_st\" 2>/dev/null\n\
             {pick}\
             \x20 rm -f \"$belay_st/$belay_s.status\"\n\
             \x20 (unset BELAY_JOB_ID BELAY_JOB_DIR; exec tmux new-session -A -s \"$belay_s\" /bin/sh -c {inner} belay-shell \"$belay_st/$belay_s.status\" \"$PWD\")\n\
             \x20 belay_c=0\n\
             \x20 if [ -f \"$belay_st/$belay_s.status\" ]; then read -r belay_c < \"$belay_st/$belay_s.status\"; rm -f \"$belay_st/$belay_s.status\"; fi\n\
             \x20 exit \"${{belay_c:-0}}\"\n\
             fi\n\
             echo 'belay: no tmux on this host: this shell will not survive a dropped connection' >&2\n\
             exec $belay_step \"$belay_sh\" -l\n",
            inner = quote(&inner)
        ));
        setup
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobState;

    fn job() -> Job {
        Job {
            id: "0a1b2c3d".into(),
            key: "0a1b2c3d-inst".into(),
            name: None,
            host: "h".into(),
            state: JobState::Running,
            command: vec!["true".into()],
            workdir: Some("~/w d".into()),
            env: vec![("X".into(), "it's".into())],
            scheduler: "direct".into(),
            scheduler_id: None,
            remote_dir: Some("/home/u/.belay/jobs/0a1b2c3d-inst".into()),
            exit_code: None,
            reason: None,
            created_at: 0,
            updated_at: 0,
            started_at: None,
            ended_at: None,
            last_seen: None,
            submitter: None,
            owner: None,
            gpus: None,
            liveness: None,
            login_shell: true,
            inputs: vec![],
            outputs: vec![],
            hold_secs: None,
            hold_until: None,
            sbatch: Vec::new(),
            secrets: Vec::new(),
        }
    }

    fn target(job: Option<Job>, host: &str) -> ShellTarget {
        ShellTarget {
            host: host.into(),
            job,
            workroot: Workroot("\"$HOME\"/.belay/jobs".into()),
            node: None,
            on_node: false,
        }
    }

    #[test]
    fn session_names_are_the_job_id_or_a_tame_host_name() {
        assert_eq!(target(Some(job()), "h").session_name(), "belay-0a1b2c3d");
        assert_eq!(
            target(None, "me@login.example.org:22").session_name(),
            "belay-me_login_example_org_22"
        );
    }

    #[test]
    fn a_held_job_gets_the_banner_of_its_hold() {
        let mut j = job();
        j.state = JobState::Held;
        j.exit_code = Some(3);
        let note = target(Some(j), "h").ended_note().unwrap();
        assert!(
            note.contains("held for debugging")
                && note.contains("code 3")
                && note.contains("belay release"),
            "{note}"
        );
    }

    #[test]
    fn an_ended_job_gets_a_note_and_a_running_one_none() {
        let mut j = job();
        assert_eq!(target(Some(j.clone()), "h").ended_note(), None);
        j.state = JobState::Failed;
        j.exit_code = Some(3);
        assert_eq!(
            target(Some(j), "h").ended_note().as_deref(),
            Some("job 0a1b2c3d ended (failed, exit 3); opening a shell in its directory")
        );
    }

    /// Runs the script with /bin/sh here: a fake `tmux`-less PATH, the
    /// user's "shell" a script that reports where it is and what it has.
    #[test]
    fn the_command_lands_in_the_workdir_with_the_job_environment() {
        let tmp = tempfile::tempdir().expect("tmp");
        let home = tmp.path();
        std::fs::create_dir_all(home.join("w d")).expect("mkdir");
        let mut j = job();
        j.remote_dir = Some(home.join("jobdir").to_string_lossy().into_owned());
        let script = target(Some(j), "h").remote_command(
            ShellMode::Attach,
            Some("pwd; echo \"$X|$BELAY_JOB_ID|$BELAY_JOB_DIR\""),
        );
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .env_clear()
            .env("HOME", home)
            .env("SHELL", "/bin/sh")
            .env("PATH", "/usr/bin:/bin")
            .output()
            .expect("sh");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text,
            format!(
                "{}\nit's|0a1b2c3d|{}\n",
                home.join("w d").display(),
                home.join("jobdir").display()
            ),
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
