//! The stable JSON shape of a job (README "JSON output"): what `--json`
//! prints and what the daemon's API (`/v1/jobs`) carries. One definition
//! serves both directions, so the CLI renders a job it got from the daemon
//! exactly as one it read from the store.
//!
//! [`JobView`] borrows the job and is serialised straight to the writer
//! (`ps --all --json` over 10,000 jobs never builds a document tree);
//! [`JobRecord`] is the same shape, owned, read back into a [`Job`].
//! Times are RFC 3339 UTC strings with milliseconds, so the round trip is
//! exact.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{Input, Job, JobEvent, JobState};

/// `2023-11-14T22:13:20.123Z` for milliseconds since the epoch.
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Milliseconds since the epoch for an RFC 3339 time; `None` if malformed.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(text).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_millis() as i64)
}

#[derive(Serialize)]
pub struct JobView<'a> {
    id: &'a str,
    name: Option<&'a str>,
    host: &'a str,
    state: JobState,
    exit_code: Option<i32>,
    reason: Option<&'a str>,
    command: &'a [String],
    workdir: Option<&'a str>,
    env: BTreeMap<&'a str, &'a str>,
    scheduler: &'a str,
    scheduler_id: Option<&'a str>,
    /// Under Slurm: the job's sbatch options (its `#SBATCH` lines).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    sbatch: &'a [String],
    /// `run --secret`: the names (never the values).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    secrets: &'a [String],
    job_dir: Option<&'a str>,
    key: &'a str,
    inputs: &'a [Input],
    outputs: &'a [String],
    created_at: String,
    started_at: Option<String>,
    ended_at: Option<String>,
    last_seen: Option<String>,
    /// `run --hold-on-failure`, in seconds (absent: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    hold_on_failure: Option<u32>,
    /// While `held`: when the hold ends by itself, and the seconds left.
    #[serde(skip_serializing_if = "Option::is_none")]
    hold_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hold_left_s: Option<i64>,
    /// The API token's name that submitted it (absent: the local user).
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<&'a str>,
    /// The GPU processes the last probe saw of it (null: not seen).
    gpus: Option<&'a [crate::hosts::gpus::JobGpu]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<EventView<'a>>>,
}

#[derive(Serialize)]
pub struct EventView<'a> {
    at: String,
    from: Option<JobState>,
    to: JobState,
    reason: &'a str,
}

impl<'a> JobView<'a> {
    pub fn new(job: &'a Job) -> Self {
        // Only while held: after it, `hold_until` is history.
        let hold_until = job.hold_until.filter(|_| job.state == JobState::Held);
        JobView {
            id: &job.id,
            name: job.name.as_deref(),
            host: &job.host,
            state: job.state,
            exit_code: job.exit_code,
            reason: job.reason.as_deref(),
            command: &job.command,
            workdir: job.workdir.as_deref(),
            env: job
                .env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            scheduler: &job.scheduler,
            scheduler_id: job.scheduler_id.as_deref(),
            sbatch: &job.sbatch,
            secrets: &job.secrets,
            job_dir: job.remote_dir.as_deref(),
            key: &job.key,
            inputs: &job.inputs,
            outputs: &job.outputs,
            created_at: rfc3339(job.created_at),
            started_at: job.started_at.map(rfc3339),
            ended_at: job.ended_at.map(rfc3339),
            last_seen: job.last_seen.map(rfc3339),
            hold_on_failure: job.hold_secs,
            hold_until: hold_until.map(rfc3339),
            hold_left_s: hold_until.map(|t| ((t - crate::time::now_ms()) / 1000).max(0)),
            owner: job.owner.as_deref(),
            // Only while it runs: after it, the last probe's list is history.
            gpus: job
                .gpus
                .as_deref()
                .filter(|_| job.state == JobState::Running),
            events: None,
        }
    }

    /// The job with its event log (`show --json`, `GET /v1/jobs/{id}`).
    pub fn with_events(job: &'a Job, events: &'a [JobEvent]) -> Self {
        let mut v = Self::new(job);
        v.events = Some(
            events
                .iter()
                .map(|e| EventView {
                    at: rfc3339(e.at),
                    from: e.from,
                    to: e.to,
                    reason: &e.reason,
                })
                .collect(),
        );
        v
    }
}

/// A job view read back (from the daemon's API).
#[derive(Debug, Clone, Deserialize)]
pub struct JobRecord {
    id: String,
    name: Option<String>,
    host: String,
    state: JobState,
    exit_code: Option<i32>,
    reason: Option<String>,
    command: Vec<String>,
    workdir: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    scheduler: String,
    scheduler_id: Option<String>,
    #[serde(default)]
    sbatch: Vec<String>,
    #[serde(default)]
    secrets: Vec<String>,
    job_dir: Option<String>,
    key: String,
    #[serde(default)]
    inputs: Vec<Input>,
    #[serde(default)]
    outputs: Vec<String>,
    created_at: String,
    started_at: Option<String>,
    ended_at: Option<String>,
    last_seen: Option<String>,
    #[serde(default)]
    hold_on_failure: Option<u32>,
    #[serde(default)]
    hold_until: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    gpus: Option<Vec<crate::hosts::gpus::JobGpu>>,
    #[serde(default)]
    events: Option<Vec<EventRecord>>,
}

#[derive(Debug, Clone, Deserialize)]
struct EventRecord {
    at: String,
    from: Option<JobState>,
    to: JobState,
    reason: String,
}

impl JobRecord {
    /// The job as the store would give it. What the view leaves out (who
    /// submitted it, its liveness token) is not needed to show a job.
    pub fn into_job(self) -> (Job, Vec<JobEvent>) {
        let time = |t: Option<String>| t.as_deref().and_then(parse_rfc3339);
        let created_at = parse_rfc3339(&self.created_at).unwrap_or(0);
        let events = self
            .events
            .unwrap_or_default()
            .into_iter()
            .map(|e| JobEvent {
                at: parse_rfc3339(&e.at).unwrap_or(0),
                from: e.from,
                to: e.to,
                reason: e.reason,
            })
            .collect();
        let job = Job {
            id: self.id,
            key: self.key,
            name: self.name,
            host: self.host,
            state: self.state,
            command: self.command,
            workdir: self.workdir,
            env: self.env.into_iter().collect(),
            scheduler: self.scheduler,
            scheduler_id: self.scheduler_id,
            sbatch: self.sbatch,
            secrets: self.secrets,
            remote_dir: self.job_dir,
            exit_code: self.exit_code,
            reason: self.reason,
            created_at,
            updated_at: created_at,
            started_at: time(self.started_at),
            ended_at: time(self.ended_at),
            last_seen: time(self.last_seen),
            submitter: None,
            owner: self.owner,
            gpus: self.gpus,
            liveness: None,
            login_shell: true,
            inputs: self.inputs,
            outputs: self.outputs,
            hold_secs: self.hold_on_failure,
            hold_until: time(self.hold_until),
        };
        (job, events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_and_read_back_exactly() {
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000_123)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn a_job_survives_the_round_trip_through_its_view() {
        let job = Job {
            id: "1a2b3c4d".into(),
            key: "1a2b3c4d-inst".into(),
            name: Some("train".into()),
            host: "gpu1".into(),
            state: JobState::Failed,
            command: vec!["sh".into(), "-c".into(), "exit 3".into()],
            workdir: Some("~/proj".into()),
            env: vec![("LR".into(), "0.1".into())],
            scheduler: "direct".into(),
            scheduler_id: Some("4242".into()),
            remote_dir: Some("/home/u/.belay/jobs/1a2b3c4d-inst".into()),
            exit_code: Some(3),
            reason: Some("exit 3".into()),
            created_at: 1_700_000_000_123,
            updated_at: 1_700_000_000_123,
            started_at: Some(1_700_000_001_000),
            ended_at: Some(1_700_000_002_500),
            last_seen: Some(1_700_000_002_600),
            submitter: None,
            owner: None,
            gpus: None,
            liveness: None,
            login_shell: true,
            inputs: vec![Input {
                local: "/data/x".into(),
                name: "x".into(),
            }],
            outputs: vec!["out".into()],
            hold_secs: Some(600),
            hold_until: None,
            sbatch: Vec::new(),
            secrets: Vec::new(),
        };
        let events = vec![JobEvent {
            at: 1_700_000_000_200,
            from: None,
            to: JobState::Queued,
            reason: "recorded".into(),
        }];
        let text = serde_json::to_string(&JobView::with_events(&job, &events)).unwrap();
        let record: JobRecord = serde_json::from_str(&text).unwrap();
        let (back, back_events) = record.into_job();
        assert_eq!(format!("{back:?}"), format!("{job:?}"));
        assert_eq!(back_events.len(), 1);
        assert_eq!(back_events[0].at, 1_700_000_000_200);
        assert_eq!(back_events[0].reason, "recorded");
    }
}
