//! The job model: what a job is ([`Job`]), what was asked ([`JobSpec`]),
//! how it is named ([`id`]) and which states it may move between
//! ([`state`]).

pub mod id;
pub mod spec;
pub mod state;
pub mod view;

pub use id::JobId;
pub use spec::{Command, Input, JobSpec};
pub use state::{InvalidTransition, JobState};

/// A job as the store knows it. (The CLI's `--json` shape is a view of it.)
#[derive(Debug, Clone)]
pub struct Job {
    /// Short id, unique in this installation (8 hex digits).
    pub id: String,
    /// Directory name on the host: unique across installations sharing an
    /// account (`<id>-<installation id>`).
    pub key: String,
    pub name: Option<String>,
    pub host: String,
    pub state: JobState,
    /// The command as given (argv); see [`Command`] for how it is run.
    pub command: Vec<String>,
    pub workdir: Option<String>,
    pub env: Vec<(String, String)>,
    /// Scheduler that runs it on the host (`direct` or `slurm`).
    pub scheduler: String,
    /// The scheduler's own id for the job (the process id under `direct`,
    /// the Slurm job id under `slurm`).
    pub scheduler_id: Option<String>,
    /// Absolute job directory on the host, once staged.
    pub remote_dir: Option<String>,
    pub exit_code: Option<i32>,
    /// Why the job is in its state, when that is not obvious (lost, failed
    /// to submit, cancelled before launch).
    pub reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// Last time the host answered about this job.
    pub last_seen: Option<i64>,
    pub submitter: Option<String>,
    /// The started job's identity on its host ("pid ticks boot node
    /// pidns"): lets a probe check it with one /proc read.
    pub liveness: Option<String>,
    /// Run the command in the user's login shell (profile, `module`).
    pub login_shell: bool,
    /// Copied into the job directory's `inputs/` before launch.
    pub inputs: Vec<Input>,
    /// Declared outputs, relative to the working directory.
    pub outputs: Vec<String>,
    /// `run --hold-on-failure`: seconds a failed job's machine is kept.
    pub hold_secs: Option<u32>,
    /// While `held`: when the hold ends by itself (the host's clock).
    pub hold_until: Option<i64>,
    /// Under Slurm: the sbatch options of its `#SBATCH` lines
    /// (`--partition=debug`, …), resolved at submit from the flags and the
    /// host's defaults, so a resumed submit stages the same script.
    pub sbatch: Vec<String>,
    /// `run --secret`: the names of its secrets (never their values).
    pub secrets: Vec<String>,
    /// The API token's name that submitted it; `None`: the local user.
    pub owner: Option<String>,
    /// While running: the GPU processes the last probe saw of it (`None`:
    /// not seen, or the host has no nvidia-smi).
    pub gpus: Option<Vec<crate::hosts::gpus::JobGpu>>,
}

impl Job {
    /// The exit status `belay run`/`belay wait` finish with for this job:
    /// the job's own code (128+N for signal N, as the shell reports it).
    pub fn exit_status(&self) -> Option<i32> {
        match self.state {
            JobState::Succeeded => Some(0),
            JobState::Failed | JobState::Cancelled => Some(self.exit_code.unwrap_or(1)),
            // The command has ended; its machine is kept for debugging.
            JobState::Held => Some(self.exit_code.unwrap_or(1)),
            JobState::Lost => Some(1),
            _ => None,
        }
    }

    /// The job runs in its `inputs/` directory: it has inputs and no
    /// working directory of its own.
    pub fn runs_in_inputs(&self) -> bool {
        self.workdir.is_none() && !self.inputs.is_empty()
    }

    /// Where a declared output is on the host, as a path for
    /// `transfer::pull` (absolute, or relative to the home directory).
    pub fn output_path(&self, output: &str) -> String {
        if output.starts_with('/') || output == "~" || output.starts_with("~/") {
            return output.to_string();
        }
        let base = match (&self.workdir, &self.remote_dir) {
            (None, Some(dir)) if !self.inputs.is_empty() => format!("{dir}/inputs"),
            (None, _) => "~".to_string(),
            (Some(w), _) => w.trim_end_matches('/').to_string(),
        };
        if base.is_empty() {
            format!("/{output}")
        } else {
            format!("{base}/{output}")
        }
    }

    /// The command as one line for tables.
    pub fn command_line(&self) -> String {
        Command::from_argv(self.command.clone()).display()
    }
}

/// One entry of a job's event log: every state transition, with its reason.
#[derive(Debug, Clone)]
pub struct JobEvent {
    pub at: i64,
    pub from: Option<JobState>,
    pub to: JobState,
    pub reason: String,
}
