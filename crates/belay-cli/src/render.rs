//! How jobs look: the `ps` table, `show`'s detail view, and the stable JSON
//! shape (times as RFC 3339 UTC strings; see README "JSON output").

use belay_core::job::view::JobView;
pub use belay_core::job::view::rfc3339;
use belay_core::job::{Job, JobEvent, JobState};

/// "5s ago", "3m ago", "2h ago", "4d ago".
pub fn ago(ms: i64, now: i64) -> String {
    let s = ((now - ms).max(0)) / 1000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

/// The stable JSON shape of a job (README "JSON output").
pub fn job_view(job: &Job) -> JobView<'_> {
    JobView::new(job)
}

/// A job with its event log, for `show --json`.
pub fn job_view_with_events<'a>(job: &'a Job, events: &'a [JobEvent]) -> JobView<'a> {
    JobView::with_events(job, events)
}

/// The `ps` table: fixed columns, command last and unpadded.
pub fn table(jobs: &[Job], now: i64) -> String {
    let rows: Vec<[String; 6]> = jobs
        .iter()
        .map(|j| {
            [
                j.id.clone(),
                j.name.clone().unwrap_or_else(|| "-".into()),
                j.host.clone(),
                state_cell(j),
                j.exit_code.map_or("-".into(), |c| c.to_string()),
                ago(j.created_at, now),
            ]
        })
        .collect();
    let header = ["ID", "NAME", "HOST", "STATE", "EXIT", "CREATED"];
    let mut width = header.map(str::len);
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::with_capacity(64 * (rows.len() + 1));
    let mut line = |cells: [&str; 6], cmd: &str| {
        for (cell, w) in cells.iter().zip(width) {
            out.push_str(cell);
            out.push_str(&" ".repeat(w - cell.chars().count() + 2));
        }
        out.push_str(cmd);
        out.push('\n');
    };
    line(header, "COMMAND");
    for (r, j) in rows.iter().zip(jobs) {
        let cells = [
            r[0].as_str(),
            r[1].as_str(),
            r[2].as_str(),
            r[3].as_str(),
            r[4].as_str(),
            r[5].as_str(),
        ];
        line(cells, &j.command_line());
    }
    out
}

/// A job's state in the `ps` table: with the scheduler's reason while it
/// waits in a batch queue (`pending (Resources)`).
fn state_cell(j: &Job) -> String {
    let queue_reason = j
        .reason
        .as_deref()
        .filter(|_| j.state == JobState::Pending)
        .and_then(|r| r.strip_prefix(belay_core::engine::SLURM_QUEUE_REASON));
    match queue_reason {
        Some(r) => format!("{} ({r})", j.state),
        None => j.state.to_string(),
    }
}

/// One line per job a submit left `submitting` for a reason (its launch
/// may have run; the next reconcile settles it): the table has no room for
/// the reason, and the user must see the id and why.
pub fn stuck_submits(jobs: &[Job]) -> Vec<String> {
    jobs.iter()
        .filter(|j| j.state == JobState::Submitting)
        .filter_map(|j| {
            let reason = j.reason.as_deref()?;
            Some(format!(
                "job {} is still submitting: {reason} (`belay show {}`)",
                j.id, j.id
            ))
        })
        .collect()
}

/// "45s", "12m", "3h05m", "2d04h".
pub fn span(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// Time from `now` to `until` (ms), as [`span`] says it.
fn left(until: i64, now: i64) -> String {
    span((until - now) / 1000)
}

/// What `run` and `wait` say when the job they followed is held: its
/// command ended, its machine is kept for debugging, and how to use it.
pub fn held_line(job: &Job) -> String {
    let code = job.exit_code.map_or("?".into(), |c| c.to_string());
    let until = job.hold_until.map_or(String::new(), |t| {
        format!(" for {}", left(t, belay_core::time::now_ms()))
    });
    format!(
        "job {id} exited with code {code} and is held{until} on {host}: `belay shell {id}` opens a shell in its directory, `belay release {id}` ends the hold",
        id = job.id,
        host = job.host,
    )
}

/// `show`'s human view.
pub fn detail(job: &Job, events: &[JobEvent], now: i64) -> String {
    let mut s = String::new();
    let mut kv = |k: &str, v: String| s.push_str(&format!("{k:<10} {v}\n"));
    kv("job", job.id.clone());
    if let Some(n) = &job.name {
        kv("name", n.clone());
    }
    kv("host", job.host.clone());
    let state = match &job.reason {
        Some(r) => format!("{} ({r})", job.state),
        None => job.state.to_string(),
    };
    kv("state", state);
    if let Some(c) = job.exit_code {
        kv("exit code", c.to_string());
    }
    if let (JobState::Held, Some(until)) = (job.state, job.hold_until) {
        kv(
            "held",
            format!(
                "until {} ({} left; enforced on the host)",
                rfc3339(until),
                left(until, now)
            ),
        );
    } else if let Some(secs) = job.hold_secs {
        kv(
            "hold",
            format!("{} if it fails (--hold-on-failure)", span(secs.into())),
        );
    }
    kv("command", job.command_line());
    kv("workdir", job.workdir.clone().unwrap_or_else(|| "~".into()));
    for (k, v) in &job.env {
        kv("env", format!("{k}={v}"));
    }
    let when = |ms: i64| format!("{} ({})", rfc3339(ms), ago(ms, now));
    kv("created", when(job.created_at));
    if let Some(t) = job.started_at {
        kv("started", when(t));
    }
    if let Some(t) = job.ended_at {
        kv("ended", when(t));
    }
    if let Some(t) = job.last_seen {
        kv("last seen", when(t));
    }
    if let Some(d) = &job.remote_dir {
        kv("job dir", d.clone());
    }
    match (job.scheduler.as_str(), &job.scheduler_id) {
        ("direct", Some(p)) => kv("pid", format!("{p} (direct)")),
        ("slurm", Some(id)) => kv("slurm job", id.clone()),
        ("slurm", None) => kv("scheduler", "slurm (not submitted yet)".into()),
        (other, Some(id)) => kv("scheduler", format!("{other} job {id}")),
        _ => {}
    }
    if !job.sbatch.is_empty() {
        kv("sbatch", job.sbatch.join(" "));
    }
    if !job.secrets.is_empty() {
        kv("secrets", job.secrets.join(" "));
    }
    if let (JobState::Running, Some(gpus)) = (job.state, &job.gpus) {
        if gpus.is_empty() {
            kv("gpus", "none held".into());
        }
        for g in gpus {
            let index = g.gpu_index.map_or("?".to_string(), |i| i.to_string());
            let mem = g
                .used_memory_mib
                .map_or("?".to_string(), |m| format!("{m} MiB"));
            kv(
                "gpu",
                format!(
                    "{index} ({}): pid {}, {mem}",
                    belay_ssh::terminal_safe(&g.gpu_uuid),
                    g.pid
                ),
            );
        }
    }
    s.push_str("events:\n");
    for e in events {
        s.push_str(&format!(
            "  {}  {:<10}  {}\n",
            rfc3339(e.at),
            e.to,
            e.reason
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(ago(0, 5_000), "5s ago");
        assert_eq!(ago(0, 120_000), "2m ago");
        assert_eq!(ago(0, 7_200_000), "2h ago");
        assert_eq!(ago(10, 0), "0s ago");
    }

    fn job(id: &str, state: JobState, reason: Option<&str>) -> Job {
        Job {
            id: id.into(),
            key: format!("{id}-i"),
            name: None,
            host: "gpu1".into(),
            state,
            command: vec!["true".into()],
            workdir: None,
            env: Vec::new(),
            scheduler: "direct".into(),
            scheduler_id: None,
            remote_dir: None,
            exit_code: None,
            reason: reason.map(str::to_string),
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
            inputs: Vec::new(),
            outputs: Vec::new(),
            hold_secs: None,
            hold_until: None,
            sbatch: Vec::new(),
            secrets: Vec::new(),
        }
    }

    #[test]
    fn a_submit_left_with_a_reason_is_named_with_its_reason() {
        let jobs = [
            job(
                "aaaa0001",
                JobState::Submitting,
                Some("launch gave no report"),
            ),
            job("aaaa0002", JobState::Submitting, None),
            job(
                "aaaa0003",
                JobState::Failed,
                Some("submit failed before launch"),
            ),
        ];
        assert_eq!(
            stuck_submits(&jobs),
            ["job aaaa0001 is still submitting: launch gave no report (`belay show aaaa0001`)"]
        );
    }
}
