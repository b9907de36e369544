//! Fetching a job's declared outputs (`run --output`) to this machine —
//! the counterpart of input upload in [`super::submit`]. Each output is
//! pulled (resumable, verified) into the results directory at its landing
//! path ([`crate::job::spec::output_landing`]): a relative output keeps its
//! directories, so `a/x` and `b/x` do not overwrite each other. Fetched
//! into their own place (`results/<id>/`), the fetch is recorded in the
//! store so that the daemon's pass and an attached run copy them once.

use std::path::Path;

use super::Engine;
use crate::error::{CoreError, Result};
use crate::failpoint;
use crate::home::BelayHome;
use crate::job::Job;
use crate::job::spec::output_landing;
use crate::transfer::{self, Progress, Summary};

/// What became of one declared output.
pub enum OutputOutcome {
    /// Copied (its summary says where, and lists any refused entries).
    Copied(Summary),
    /// Not on the host (the error says what the host answered).
    NotFound(CoreError),
}

pub struct OutputFetched {
    /// The output as declared.
    pub output: String,
    pub outcome: OutputOutcome,
}

/// Every declared output of a job, in declaration order.
pub struct FetchReport {
    pub outputs: Vec<OutputFetched>,
}

impl FetchReport {
    /// One line per output that did not come whole: not found on `host`,
    /// or remote entries refused (the lines that make `fetch` exit 1).
    pub fn problems(&self, host: &str) -> Vec<String> {
        let mut lines = Vec::new();
        for o in &self.outputs {
            match &o.outcome {
                OutputOutcome::Copied(s) => {
                    if let Some(line) = s.refused_line() {
                        lines.push(format!("output '{}': {line}", o.output));
                    }
                }
                OutputOutcome::NotFound(e) => {
                    lines.push(format!("output '{}' not found on {host} ({e})", o.output));
                }
            }
        }
        lines
    }

    /// `belay fetch --json`: where each output landed and the totals
    /// (one shape whether the CLI fetched or the daemon did).
    pub fn json(&self, job_id: &str, to: &Path) -> serde_json::Value {
        let t = self.total();
        let outputs: Vec<serde_json::Value> = self
            .outputs
            .iter()
            .map(|o| match &o.outcome {
                OutputOutcome::Copied(s) => serde_json::json!({
                    "path": o.output, "local": s.destination, "found": true,
                }),
                OutputOutcome::NotFound(_) => serde_json::json!({
                    "path": o.output, "local": null, "found": false,
                }),
            })
            .collect();
        serde_json::json!({
            "job": job_id,
            "to": to.display().to_string(),
            "outputs": outputs,
            "files": t.files,
            "files_transferred": t.files_transferred,
            "files_skipped": t.files_skipped,
            "bytes": t.bytes,
            "bytes_sent": t.bytes_sent,
            "bytes_resumed": t.bytes_resumed,
        })
    }

    /// The copied outputs' summaries added up (files, bytes, resumed…).
    pub fn total(&self) -> Summary {
        let mut total = Summary::default();
        for s in self.outputs.iter().filter_map(|o| match &o.outcome {
            OutputOutcome::Copied(s) => Some(s),
            OutputOutcome::NotFound(_) => None,
        }) {
            total.files += s.files;
            total.files_transferred += s.files_transferred;
            total.files_skipped += s.files_skipped;
            total.bytes += s.bytes;
            total.bytes_sent += s.bytes_sent;
            total.bytes_resumed += s.bytes_resumed;
        }
        total
    }
}

impl Engine {
    /// Pulls `job`'s declared outputs into their own place here,
    /// `$BELAY_HOME/results/<id>/`, and records that they are there (with
    /// the outputs not found, which are not looked for again): the daemon's
    /// pass and an attached run do not copy them twice. `None`: they were
    /// fetched already (unless `again`: a user's `belay fetch`).
    ///
    /// One fetch of a job at a time across processes (a lock file beside
    /// the results, released by the kernel if the holder dies): a second
    /// waits, then finds the first's record.
    pub fn fetch_outputs_home(
        &mut self,
        home: &BelayHome,
        job: &Job,
        again: bool,
        progress_for: &mut dyn FnMut(&str) -> Box<dyn Progress>,
    ) -> Result<Option<FetchReport>> {
        let lock = FetchLock::take(home, &job.id)?;
        if !again && self.store.outputs_fetch(&job.id)?.fetched_at.is_some() {
            return Ok(None);
        }
        let report = self.fetch_outputs(job, &home.results_dir(&job.id), progress_for)?;
        failpoint::hit("after-output-fetch");
        let problems = report.problems(&job.host);
        let error = (!problems.is_empty()).then(|| problems.join("; "));
        self.store
            .record_outputs_fetched(&job.id, error.as_deref())?;
        lock.release();
        Ok(Some(report))
    }

    /// Pulls every declared output of `job` into `to` (created if needed),
    /// each reported to the progress `progress_for(output)` makes. Missing
    /// outputs are reported, not fatal; any other failure is.
    pub fn fetch_outputs(
        &mut self,
        job: &Job,
        to: &Path,
        progress_for: &mut dyn FnMut(&str) -> Box<dyn Progress>,
    ) -> Result<FetchReport> {
        let t = self.transport(&job.host)?;
        let mut outputs = Vec::new();
        for output in &job.outputs {
            let into = match output_landing(output) {
                Some((dir, _)) if !dir.is_empty() => to.join(dir),
                _ => to.to_path_buf(),
            };
            std::fs::create_dir_all(&into).map_err(|source| CoreError::Io {
                what: format!("cannot create '{}'", into.display()),
                source,
            })?;
            let remote = job.output_path(output);
            let mut progress = progress_for(output);
            let outcome = match transfer::pull(
                t.as_ref(),
                &remote,
                &into,
                transfer::Via::Auto,
                &mut *progress,
            ) {
                Ok(s) => OutputOutcome::Copied(s),
                Err(e @ CoreError::BadInput(_)) => OutputOutcome::NotFound(e),
                Err(e) => return Err(e),
            };
            outputs.push(OutputFetched {
                output: output.clone(),
                outcome,
            });
            failpoint::hit("during-output-fetch");
        }
        Ok(FetchReport { outputs })
    }
}

/// `results/.<id>.fetching`, held with `flock` while a job's outputs are
/// copied to their own place. Removed once the fetch is recorded (a waiter
/// that then gets the old file's lock re-reads the record and stops).
struct FetchLock {
    path: std::path::PathBuf,
    _file: std::fs::File,
}

impl FetchLock {
    fn take(home: &BelayHome, job_id: &str) -> Result<Self> {
        use std::os::fd::AsRawFd;
        let dir = home.root().join("results");
        let path = dir.join(format!(".{job_id}.fetching"));
        let io = |what: String| move |source| CoreError::Io { what, source };
        std::fs::create_dir_all(&dir).map_err(io(format!("cannot create '{}'", dir.display())))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(format!("cannot open '{}'", path.display())))?;
        // SAFETY: flock on a descriptor this function owns.
        while unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(io(format!("cannot lock '{}'", path.display()))(e));
            }
        }
        Ok(Self { path, _file: file })
    }

    fn release(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
