//! The CLI's requests to the daemon (`/v1`, see belay-server's `api`),
//! each returning what the engine would have returned in direct mode, so
//! commands render and exit the same way either way.

use std::ops::ControlFlow;

use anyhow::Result;
use belay_core::engine::HostProblem;
use belay_core::job::view::JobRecord;
use belay_core::job::{Job, JobEvent, JobSpec};
use belay_core::transfer::Progress;
use belay_server::client::{ErrorFields, Frame, FrameReader, HttpMethod, JsonLines};
use belay_server::{Client, ClientError};
use serde::Deserialize;

use crate::follow::{Outcome, Streams};
use crate::interrupt;

#[derive(Deserialize)]
struct WarningDoc {
    host: String,
    job: Option<String>,
    error: String,
}

fn problems(warnings: Vec<WarningDoc>) -> Vec<HostProblem> {
    warnings
        .into_iter()
        .map(|w| HostProblem {
            host: w.host,
            job: w.job,
            error: w.error,
        })
        .collect()
}

/// `%XX` for every byte outside `[A-Za-z0-9._~-]`: job references and host
/// names in paths and queries.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._~-".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[derive(Deserialize)]
struct JobList {
    jobs: Vec<JobRecord>,
    warnings: Vec<WarningDoc>,
}

/// `ps`: live jobs (or all), reconciled by the daemon.
pub fn list(
    client: &Client,
    all: bool,
    host: Option<&str>,
) -> Result<(Vec<Job>, Vec<HostProblem>)> {
    let mut path = format!("/v1/jobs?all={all}");
    if let Some(h) = host {
        path.push_str(&format!("&host={}", encode(h)));
    }
    let reply: JobList = client.get(&path)?;
    let jobs = reply.jobs.into_iter().map(|r| r.into_job().0).collect();
    Ok((jobs, problems(reply.warnings)))
}

#[derive(Deserialize)]
struct JobAnswer {
    job: JobRecord,
    warnings: Vec<WarningDoc>,
}

/// One job with its events, reconciled by the daemon.
pub fn job(client: &Client, reference: &str) -> Result<(Job, Vec<JobEvent>, Vec<HostProblem>)> {
    let reply: JobAnswer = client.get(&format!("/v1/jobs/{}", encode(reference)))?;
    let (job, events) = reply.job.into_job();
    Ok((job, events, problems(reply.warnings)))
}

/// Block until the job ends (the daemon answers a long poll) or Ctrl-C.
pub fn wait(client: &Client, job: Job) -> Result<Outcome> {
    interrupt::install();
    let path = format!("/v1/jobs/{}?wait=10", encode(&job.id));
    let mut job = job;
    loop {
        let mut body = Vec::new();
        let ended = client.stream(
            HttpMethod::GET,
            &path,
            None,
            &mut |piece| {
                body.extend_from_slice(piece);
                ControlFlow::Continue(())
            },
            &interrupt::requested,
        )?;
        if !ended {
            return Ok(Outcome::Detached(job));
        }
        let reply: JobAnswer = serde_json::from_slice(&body)?;
        job = reply.job.into_job().0;
        if job.state.command_over() {
            return Ok(Outcome::Ended(job));
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum SubmitEvent {
    Recorded {
        id: String,
    },
    Progress {
        begin: Option<Begin>,
        advance: Option<u64>,
        file_done: Option<bool>,
        warn: Option<String>,
    },
    Submitted {
        job: Box<JobRecord>,
    },
    Error {
        error: ErrorFields,
    },
    /// A question from the host's connection, for this terminal.
    Prompt {
        id: u64,
        #[serde(flatten)]
        question: Question,
    },
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Question {
    Passphrase {
        key_file: String,
    },
    KeyboardInteractive {
        name: String,
        instructions: String,
        prompts: Vec<PromptLine>,
    },
    HostKey {
        name: String,
        key_type: String,
        fingerprint: String,
    },
}

#[derive(Deserialize)]
struct PromptLine {
    text: String,
    echo: bool,
}

/// Ask the question on this terminal, as a direct connection would.
fn ask(question: Question) -> Option<Vec<String>> {
    use belay_ssh::Prompter;
    let tty = crate::prompt::TtyPrompter;
    match question {
        Question::Passphrase { key_file } => tty
            .passphrase(std::path::Path::new(&key_file))
            .map(|p| vec![p]),
        Question::KeyboardInteractive {
            name,
            instructions,
            prompts,
        } => {
            let prompts: Vec<(String, bool)> =
                prompts.into_iter().map(|p| (p.text, p.echo)).collect();
            tty.keyboard_interactive(&name, &instructions, &prompts)
        }
        Question::HostKey {
            name,
            key_type,
            fingerprint,
        } => Some(vec![
            if tty.confirm_host_key(&name, &key_type, &fingerprint) {
                "yes"
            } else {
                "no"
            }
            .to_string(),
        ]),
    }
}

/// Send an answer on its own connection (the submit's stream is busy), from
/// a thread of its own (the stream's runtime is in use on this one).
fn send_answer(socket: &std::path::Path, id: u64, answers: Option<Vec<String>>) -> Result<()> {
    let socket = socket.to_path_buf();
    std::thread::spawn(move || {
        Client::new(&socket).post::<serde_json::Value>(
            &format!("/v1/prompts/{id}"),
            &serde_json::json!({ "answers": answers }),
        )
    })
    .join()
    .map_err(|_| anyhow::anyhow!("sending an answer to the belay daemon failed"))??;
    Ok(())
}

/// Does this process have a terminal the daemon may relay its
/// connection's questions to? Then the request says so.
pub fn terminal_headers() -> &'static [(&'static str, &'static str)] {
    use belay_ssh::Prompter;
    if crate::prompt::TtyPrompter.has_terminal() {
        &[(belay_server::prompts::TERMINAL_HEADER, "1")]
    } else {
        &[]
    }
}

/// A question the daemon relayed outside a submit's stream (a shell's
/// frames carry the same `prompt` document): asked on this terminal, the
/// answer sent back.
pub fn answer_prompt(client: &Client, document: &str) -> Result<()> {
    #[derive(Deserialize)]
    struct Relayed {
        id: u64,
        #[serde(flatten)]
        question: Question,
    }
    let relayed: Relayed = serde_json::from_str(document)
        .map_err(|e| anyhow::anyhow!("the belay daemon relayed an unreadable question: {e}"))?;
    send_answer(client.socket(), relayed.id, ask(relayed.question))
}

#[derive(Deserialize)]
struct Begin {
    files: u64,
    bytes: u64,
}

/// What a submit through the daemon came to.
pub enum Submitted {
    Job(Job),
    /// Ctrl-C before the daemon answered: the submit was stopped before
    /// its launch if it had not been sent (the job, if recorded, is
    /// `cancelled`), else the job runs and the caller detaches.
    Interrupted(Option<Job>),
}

/// Submit through the daemon, drawing input-copy progress on `progress`.
/// Ctrl-C drops the request: the daemon stops the submit before its
/// launch, as the engine does for Ctrl-C without a daemon.
pub fn submit(
    client: &Client,
    spec: &JobSpec,
    secrets: &[belay_core::secrets::SecretValue],
    queue: bool,
    mut progress: Option<&mut dyn Progress>,
) -> Result<Submitted> {
    interrupt::install();
    // Secret values go in the body, over the 0600 socket, to the daemon's
    // memory (never its log or store).
    let body = serde_json::json!({ "spec": spec, "queue": queue, "secrets": secrets });
    let mut lines = JsonLines::default();
    let mut recorded: Option<String> = None;
    let mut outcome: Option<Result<Job, ClientError>> = None;
    let mut bad_line: Option<String> = None;
    // A terminal here: the daemon may relay its connection's questions.
    let headers = terminal_headers();
    let ended = client.stream_with(
        HttpMethod::POST,
        "/v1/jobs",
        Some(&body),
        headers,
        &mut |piece| {
            let events: Vec<serde_json::Value> = match lines.feed(piece) {
                Ok(e) => e,
                Err(e) => {
                    bad_line = Some(e);
                    return ControlFlow::Break(());
                }
            };
            for value in events {
                let event = match serde_json::from_value::<SubmitEvent>(value) {
                    Ok(e) => e,
                    Err(e) => {
                        bad_line = Some(e.to_string());
                        return ControlFlow::Break(());
                    }
                };
                match event {
                    SubmitEvent::Recorded { id } => recorded = Some(id),
                    SubmitEvent::Progress {
                        begin,
                        advance,
                        file_done,
                        warn,
                    } => {
                        if let Some(p) = progress.as_deref_mut() {
                            if let Some(b) = &begin {
                                p.begin(b.files, b.bytes);
                            }
                            if let Some(n) = advance {
                                p.advance(n);
                            }
                            if file_done == Some(true) {
                                p.file_done();
                            }
                            if let Some(w) = &warn {
                                p.warn(w);
                            }
                        }
                    }
                    SubmitEvent::Prompt { id, question } => {
                        let answers = ask(question);
                        if let Err(e) = send_answer(client.socket(), id, answers) {
                            bad_line = Some(e.to_string());
                            return ControlFlow::Break(());
                        }
                    }
                    SubmitEvent::Submitted { job } => outcome = Some(Ok(job.into_job().0)),
                    SubmitEvent::Error { error } => outcome = Some(Err(error.into())),
                }
            }
            ControlFlow::Continue(())
        },
        &interrupt::requested,
    )?;
    if let Some(e) = bad_line {
        anyhow::bail!("the belay daemon's answer to a submit is unreadable: {e}");
    }
    match outcome {
        Some(Ok(job)) => Ok(Submitted::Job(job)),
        Some(Err(e)) => Err(e.into()),
        None if !ended => {
            // Interrupted: the daemon saw us go and settles the job; read
            // what it came to once it has.
            let job = match recorded {
                Some(id) => Some(settled(client, &id)?),
                None => None,
            };
            Ok(Submitted::Interrupted(job))
        }
        None => anyhow::bail!(
            "the belay daemon ended a submit without saying how it went (see `belay ps`)"
        ),
    }
}

/// The job once its submit is no longer under way (bounded wait).
fn settled(client: &Client, id: &str) -> Result<Job> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (job, _, _) = job(client, id)?;
        let under_way = matches!(
            job.state,
            belay_core::job::JobState::Queued | belay_core::job::JobState::Submitting
        );
        if !under_way || std::time::Instant::now() >= deadline {
            return Ok(job);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Print the job's output as it is written until it ends, or Ctrl-C. The
/// daemon follows both streams from byte offsets with one follower on the
/// host; a cut answer is asked again from the offsets reached, so each
/// byte is printed once.
pub fn follow(client: &Client, job: Job, streams: Streams) -> Result<Outcome> {
    interrupt::install();
    if !streams.stdout && !streams.stderr {
        return wait(client, job);
    }
    crate::secrets::remember_from_env(&job.secrets);
    let mut out = streams.stdout.then_some(0u64);
    let mut err = streams.stderr.then_some(0u64);
    let mut failures = 0;
    let mut warned_at: Option<std::time::Instant> = None;
    loop {
        let mut path = format!(
            "/v1/jobs/{}/output?follow=true&with_job=true",
            encode(&job.id)
        );
        if let Some(o) = out {
            path.push_str(&format!("&stdout={o}"));
        }
        if let Some(e) = err {
            path.push_str(&format!("&stderr={e}"));
        }
        let mut frames = FrameReader::default();
        let mut broken: Option<String> = None;
        // A body whose last frame is a warning was cut by the daemon (an
        // error on its side): asked again from the offsets, never taken
        // for the job's end.
        let mut last_was_warning = false;
        let mut ended_as: Option<Vec<u8>> = None;
        let result = client.stream(
            HttpMethod::GET,
            &path,
            None,
            &mut |piece| {
                let parsed = match frames.feed(piece) {
                    Ok(f) => f,
                    Err(e) => {
                        broken = Some(e);
                        return ControlFlow::Break(());
                    }
                };
                for frame in parsed {
                    last_was_warning = matches!(frame, Frame::Retrying(_));
                    let written = match frame {
                        // A secret's value this process knows prints as `***`.
                        Frame::Stdout(bytes) => {
                            *out.get_or_insert(0) += bytes.len() as u64;
                            crate::secrets::write_masked(0, &mut std::io::stdout().lock(), &bytes)
                        }
                        Frame::Stderr(bytes) => {
                            *err.get_or_insert(0) += bytes.len() as u64;
                            crate::secrets::write_masked(1, &mut std::io::stderr().lock(), &bytes)
                        }
                        Frame::Retrying(why) => {
                            // At most every 30 s, as without the daemon.
                            if warned_at.is_none_or(|w| w.elapsed().as_secs() >= 30) {
                                let why = belay_ssh::terminal_safe(&why);
                                eprintln!(
                                    "belay: {why}; retrying (Ctrl-C detaches, the job keeps running)"
                                );
                                warned_at = Some(std::time::Instant::now());
                            }
                            Ok(())
                        }
                        Frame::Job(json) => {
                            ended_as = Some(json);
                            Ok(())
                        }
                    };
                    if written.is_err() {
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            },
            &interrupt::requested,
        );
        if let Some(e) = broken {
            anyhow::bail!("the belay daemon's output stream is unreadable: {e}");
        }
        match result {
            Ok(false) => return Ok(Outcome::Detached(job)),
            Ok(true) if last_was_warning && failures < 3 => {
                failures += 1;
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Ok(true) if last_was_warning => {
                anyhow::bail!(
                    "the belay daemon could not stream job {}'s output (see its serve.log); `belay logs {}` reads it",
                    job.id,
                    job.id
                );
            }
            Ok(true) => {
                // The job as the answer's end left it: no second request
                // for it (an answer without one, or one not understood,
                // is asked for below).
                if let Some(answer) =
                    ended_as.and_then(|json| serde_json::from_slice::<JobAnswer>(&json).ok())
                {
                    let job = answer.job.into_job().0;
                    if job.state.command_over() && !interrupt::requested() {
                        let _ = crate::secrets::flush_held(0, &mut std::io::stdout().lock());
                        let _ = crate::secrets::flush_held(1, &mut std::io::stderr().lock());
                        return Ok(Outcome::Ended(job));
                    }
                }
                break;
            }
            Err(ClientError::Unavailable { .. }) if failures < 3 => {
                // The daemon went away (restarted, killed): ask again from
                // the offsets reached.
                failures += 1;
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let _ = crate::secrets::flush_held(0, &mut std::io::stdout().lock());
    let _ = crate::secrets::flush_held(1, &mut std::io::stderr().lock());
    if interrupt::requested() {
        return Ok(Outcome::Detached(job));
    }
    let (job, _, _) = self::job(client, &job.id)?;
    if !job.state.command_over() {
        // The answer ended but the job has not (a daemon going away mid-
        // answer ends it too): wait for the state to catch up.
        return wait(client, job);
    }
    Ok(Outcome::Ended(job))
}

/// `logs` without -f: the stream as it is now.
pub fn print_log(client: &Client, id: &str, stderr: bool) -> Result<()> {
    let name = if stderr { "stderr" } else { "stdout" };
    let path = format!("/v1/jobs/{}/logs/{name}", encode(id));
    let mut failure = None;
    client.stream(
        HttpMethod::GET,
        &path,
        None,
        &mut |piece| {
            if let Err(e) = crate::secrets::write_masked(0, &mut std::io::stdout().lock(), piece) {
                failure = Some(e);
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        },
        &|| false,
    )?;
    crate::secrets::flush_held(0, &mut std::io::stdout().lock())?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    Ok(())
}

/// One cancelled job's result: ended already, its state after, or why not.
pub enum CancelResult {
    Already,
    After(Box<Job>),
    Failed(String),
}

#[derive(Deserialize)]
struct CancelDoc {
    results: Vec<CancelEntry>,
}

#[derive(Deserialize)]
struct CancelEntry {
    job: JobRecord,
    after: Option<JobRecord>,
    error: Option<ErrorFields>,
}

pub fn cancel(client: &Client, jobs: &[String], grace: u32) -> Result<Vec<(Job, CancelResult)>> {
    let doc: CancelDoc = client.post(
        "/v1/cancellations",
        &serde_json::json!({ "jobs": jobs, "grace": grace }),
    )?;
    Ok(doc
        .results
        .into_iter()
        .map(|e| {
            let job = e.job.into_job().0;
            let result = match (e.after, e.error) {
                (_, Some(err)) => CancelResult::Failed(err.message),
                (Some(after), None) => CancelResult::After(Box::new(after.into_job().0)),
                (None, None) => CancelResult::Already,
            };
            (job, result)
        })
        .collect())
}

#[derive(Deserialize)]
struct ReleaseDoc {
    job: JobRecord,
}

/// `release`: end a held job's debug hold; the job as the daemon then has it.
pub fn release(client: &Client, reference: &str) -> Result<Job> {
    let doc: ReleaseDoc = client.post("/v1/releases", &serde_json::json!({ "job": reference }))?;
    Ok(doc.job.into_job().0)
}

#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum RelayedEvent {
    Progress {
        output: String,
        begin: Option<Begin>,
        advance: Option<u64>,
        file_done: Option<bool>,
        warn: Option<String>,
    },
    Prompt {
        id: u64,
        #[serde(flatten)]
        question: Question,
    },
    Done {
        result: serde_json::Value,
    },
    Error {
        error: ErrorFields,
    },
}

/// Makes the progress bar of one output.
type BarFor<'a> = &'a mut dyn FnMut(&str) -> Box<dyn Progress>;

/// A request the daemon answers as JSON lines because it connects for
/// this client (belay-server's `api::relayed`): the connection's questions
/// are asked on this terminal, copy progress is drawn by a bar per output
/// (`bar_for`), and the `done` result (or the error) is returned.
fn relayed<T: serde::de::DeserializeOwned>(
    client: &Client,
    method: HttpMethod,
    path: &str,
    body: Option<&serde_json::Value>,
    mut bar_for: Option<BarFor<'_>>,
) -> Result<T> {
    let mut lines = JsonLines::default();
    let mut outcome: Option<Result<serde_json::Value, ClientError>> = None;
    let mut bad_line: Option<String> = None;
    let mut bars: Vec<(String, Box<dyn Progress>)> = Vec::new();
    client.stream_with(
        method,
        path,
        body,
        terminal_headers(),
        &mut |piece| {
            let events: Vec<serde_json::Value> = match lines.feed(piece) {
                Ok(e) => e,
                Err(e) => {
                    bad_line = Some(e);
                    return ControlFlow::Break(());
                }
            };
            for value in events {
                let event = match serde_json::from_value::<RelayedEvent>(value) {
                    Ok(e) => e,
                    Err(e) => {
                        bad_line = Some(e.to_string());
                        return ControlFlow::Break(());
                    }
                };
                match event {
                    RelayedEvent::Progress {
                        output,
                        begin,
                        advance,
                        file_done,
                        warn,
                    } => {
                        let Some(make) = bar_for.as_deref_mut() else {
                            continue;
                        };
                        if bars.last().is_none_or(|(o, _)| *o != output) {
                            // The previous output is done: its bar goes.
                            bars.clear();
                            bars.push((output.clone(), make(&output)));
                        }
                        let p = &mut bars.last_mut().expect("just pushed").1;
                        if let Some(b) = &begin {
                            p.begin(b.files, b.bytes);
                        }
                        if let Some(n) = advance {
                            p.advance(n);
                        }
                        if file_done == Some(true) {
                            p.file_done();
                        }
                        if let Some(w) = &warn {
                            p.warn(w);
                        }
                    }
                    RelayedEvent::Prompt { id, question } => {
                        let answers = ask(question);
                        if let Err(e) = send_answer(client.socket(), id, answers) {
                            bad_line = Some(e.to_string());
                            return ControlFlow::Break(());
                        }
                    }
                    RelayedEvent::Done { result } => outcome = Some(Ok(result)),
                    RelayedEvent::Error { error } => outcome = Some(Err(error.into())),
                }
            }
            ControlFlow::Continue(())
        },
        &|| false,
    )?;
    drop(bars);
    if let Some(e) = bad_line {
        anyhow::bail!("the belay daemon's answer to {path} is unreadable: {e}");
    }
    match outcome {
        Some(Ok(value)) => serde_json::from_value(value)
            .map_err(|e| anyhow::anyhow!("the belay daemon's answer to {path} is unreadable: {e}")),
        Some(Err(e)) => Err(e.into()),
        None => anyhow::bail!("the belay daemon ended its answer to {path} without a result"),
    }
}

/// What a fetch through the daemon did.
#[derive(Deserialize)]
pub struct Fetched {
    pub dir: std::path::PathBuf,
    /// False: fetched already (by the daemon's own pass, say).
    pub copied: bool,
    pub problems: Vec<String>,
    /// What `belay fetch --json` prints (`None` when not copied).
    pub report: Option<serde_json::Value>,
    warnings: Vec<WarningDoc>,
}

impl Fetched {
    /// Host problems met while the daemon looked the job up.
    pub fn warnings(&mut self) -> Vec<HostProblem> {
        problems(std::mem::take(&mut self.warnings))
    }
}

/// Have the daemon copy a job's declared outputs: into `results/<id>/`
/// (once, unless `again`) or into `to` (absolute), a bar per output drawn
/// here from its progress.
pub fn fetch_outputs(
    client: &Client,
    id: &str,
    again: bool,
    to: Option<&std::path::Path>,
    bar_for: &mut dyn FnMut(&str) -> Box<dyn Progress>,
) -> Result<Fetched> {
    relayed(
        client,
        HttpMethod::POST,
        &format!("/v1/jobs/{}/fetches", encode(id)),
        Some(&serde_json::json!({ "again": again, "to": to })),
        Some(bar_for),
    )
}

/// `GET /v1/hosts`: one row per host, as `host list --json` prints them.
pub fn hosts(client: &Client) -> Result<Vec<serde_json::Value>> {
    #[derive(Deserialize)]
    struct Doc {
        hosts: Vec<serde_json::Value>,
    }
    Ok(client.get::<Doc>("/v1/hosts")?.hosts)
}

/// `GET /v1/hosts/{host}`: how it is reached, as `host show --json`.
pub fn host(client: &Client, name: &str) -> Result<serde_json::Value> {
    Ok(client.get(&format!("/v1/hosts/{}", encode(name)))?)
}

/// Connect to `name` afresh and time it, as `host check --json` shows.
pub fn check_host(client: &Client, name: &str) -> Result<serde_json::Value> {
    relayed(
        client,
        HttpMethod::POST,
        &format!("/v1/hosts/{}/checks", encode(name)),
        Some(&serde_json::json!({})),
        None,
    )
}

/// The key a host offers now, and what known_hosts holds for it.
#[derive(Deserialize)]
pub struct OfferedKey {
    pub hostname: String,
    pub port: u16,
    pub algorithm: String,
    pub fingerprint: String,
    pub recorded: RecordedDoc,
}

#[derive(Deserialize)]
pub struct RecordedDoc {
    /// `nothing`, `same`, `different`, `revoked`.
    pub state: String,
    pub file: Option<std::path::PathBuf>,
    pub line: Option<usize>,
}

pub fn offered_key(client: &Client, name: &str) -> Result<OfferedKey> {
    relayed(
        client,
        HttpMethod::GET,
        &format!("/v1/hosts/{}/key", encode(name)),
        None,
        None,
    )
}

/// A key recorded by the daemon (only if it still has `fingerprint`).
#[derive(Deserialize)]
pub struct Trusted {
    pub file: std::path::PathBuf,
    pub line: usize,
    pub already: bool,
}

pub fn trust_key(client: &Client, name: &str, fingerprint: &str, replace: bool) -> Result<Trusted> {
    relayed(
        client,
        HttpMethod::PUT,
        &format!("/v1/hosts/{}/key", encode(name)),
        Some(&serde_json::json!({ "fingerprint": fingerprint, "replace": replace })),
        None,
    )
}

/// The known_hosts entries removed for `name`.
pub fn forget_key(client: &Client, name: &str) -> Result<Vec<(std::path::PathBuf, usize)>> {
    #[derive(Deserialize)]
    struct Removed {
        file: std::path::PathBuf,
        line: usize,
    }
    #[derive(Deserialize)]
    struct Doc {
        removed: Vec<Removed>,
    }
    let doc: Doc = client.delete(&format!("/v1/hosts/{}/key", encode(name)))?;
    Ok(doc.removed.into_iter().map(|r| (r.file, r.line)).collect())
}
