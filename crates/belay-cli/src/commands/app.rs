//! `belay app`: a server run as a job and reached through a forward
//! (templates and the job's side: belay-core `apps`; forwards: the
//! daemon's, belay-server `forwards`).
//!
//! `app run` submits the app's job, waits until it listens on its node
//! (its socket exists), forwards to it, waits until it answers HTTP
//! through that forward, and prints the URL (with the app's token, read
//! from its 0600 file on the node: printed here, kept nowhere). Through
//! the daemon the forward outlives this command; with `--no-daemon` the
//! command holds it until Ctrl-C.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use belay_core::apps::scripts::{Listening, Readiness};
use belay_core::apps::{AppTemplate, app_of};
use belay_core::engine::Engine;
use belay_core::job::{Job, JobSpec, JobState};
use belay_core::secrets::SecretValue;
use belay_server::Client;
use belay_server::forwards::{ForwardView, Forwards};
use serde::{Deserialize, Serialize};

use super::{Ctx, UsageError};
use crate::cli::AppCommand;
use crate::daemon::{self, Submitted, encode};

pub fn app(ctx: &Ctx, cmd: AppCommand) -> Result<u8> {
    match cmd {
        AppCommand::Run {
            host,
            app,
            name,
            open,
            timeout,
            json,
            scheduler,
            secrets,
            slurm,
            args,
        } => run(
            ctx,
            &RunRequest {
                host,
                app,
                name,
                args,
                scheduler,
                secrets,
                slurm: slurm.resources(),
            },
            Show { open, json },
            timeout,
        ),
        AppCommand::List { json, templates } => {
            if templates {
                list_templates(ctx, json)
            } else {
                list(ctx, json)
            }
        }
        AppCommand::Open { job, open, json } => open_existing(ctx, &job, Show { open, json }),
        AppCommand::Stop { job } => stop(ctx, &job),
    }
}

struct RunRequest {
    host: String,
    app: String,
    name: Option<String>,
    args: Vec<String>,
    scheduler: Option<String>,
    secrets: Vec<String>,
    slurm: belay_core::config::SlurmResources,
}

/// How the URL is given.
#[derive(Clone, Copy)]
struct Show {
    open: bool,
    json: bool,
}

/// What `app run` / `app open` print with `--json`.
#[derive(Serialize)]
struct AppUrl<'a> {
    job: &'a str,
    app: &'a str,
    host: &'a str,
    url: String,
    local: &'a str,
    remote: &'a str,
}

/// How long an app has to answer HTTP once its socket exists.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// The daemon, or this process (`--no-daemon`): an engine of its own and
/// forwards that live as long as this command.
enum Via<'a> {
    Daemon(&'a Client),
    Direct {
        engine: Box<Engine>,
        forwards: Forwards,
    },
}

impl<'a> Via<'a> {
    fn new(ctx: &'a Ctx) -> Result<Via<'a>> {
        Ok(match ctx.daemon(true) {
            Some(client) => Via::Daemon(client),
            None => {
                belay_core::transport::ssh::drive_in_background();
                Via::Direct {
                    engine: Box::new(ctx.engine()?),
                    forwards: Forwards::new(false),
                }
            }
        })
    }

    fn live_jobs(&mut self, host: Option<&str>) -> Result<Vec<Job>> {
        Ok(match self {
            Via::Daemon(client) => daemon::list(client, false, host)?.0,
            Via::Direct { engine, .. } => {
                let filter = belay_core::store::JobFilter {
                    all: false,
                    host: host.map(str::to_string),
                    owner: None,
                    page: None,
                };
                engine.list(&filter)?.0
            }
        })
    }

    fn job(&mut self, reference: &str) -> Result<Job> {
        Ok(match self {
            Via::Daemon(client) => daemon::job(client, reference)?.0,
            Via::Direct { engine, .. } => engine.job(reference)?.0,
        })
    }

    fn submit(&mut self, spec: &JobSpec, secrets: Vec<SecretValue>) -> Result<Job> {
        match self {
            Via::Daemon(client) => match daemon::submit(client, spec, &secrets, false, None)? {
                Submitted::Job(job) => Ok(job),
                Submitted::Interrupted(_) => {
                    Err(belay_core::CoreError::SubmitInterrupted { id: None }.into())
                }
            },
            Via::Direct { engine, .. } => {
                Ok(engine.submit_with_secrets(spec, Default::default(), secrets)?)
            }
        }
    }

    fn readiness(&mut self, job: &Job) -> Result<Readiness> {
        match self {
            Via::Daemon(client) => {
                let doc: ReadinessDoc = client.get(&format!("/v1/jobs/{}/app", encode(&job.id)))?;
                Ok(match doc.state.as_str() {
                    "ready" => Readiness::Ready(Listening {
                        remote: doc.remote.unwrap_or_default(),
                        path: doc.path.unwrap_or_else(|| "/".into()),
                        token: doc.token,
                    }),
                    "ended" => Readiness::Ended,
                    _ => Readiness::Starting,
                })
            }
            Via::Direct { engine, .. } => Ok(engine.app_readiness(job)?),
        }
    }

    /// A forward to `remote` on the job's node: one already listening for
    /// this job and remote (the daemon's), else a new one.
    fn forward(&mut self, job: &Job, remote: &str) -> Result<ForwardView> {
        match self {
            Via::Daemon(client) => {
                let list: ForwardList = client.get("/v1/forwards")?;
                if let Some(v) = list.forwards.into_iter().find(|v| {
                    v.record.job_id.as_deref() == Some(job.id.as_str())
                        && v.record.remote == remote
                        && v.state == "listening"
                }) {
                    return Ok(v);
                }
                Ok(client.post(
                    "/v1/forwards",
                    &serde_json::json!({ "to": job.id, "spec": remote }),
                )?)
            }
            Via::Direct { engine, forwards } => forwards
                .open(engine, &job.id, remote)
                .map_err(|e| anyhow::anyhow!(e.to_string())),
        }
    }

    /// `--no-daemon`: the forward lives in this command; hold it until
    /// Ctrl-C or the app's end.
    fn hold(&mut self, job: &Job) -> Result<()> {
        let Via::Direct { engine, forwards } = self else {
            return Ok(());
        };
        eprintln!(
            "belay: forwarding until Ctrl-C (without the daemon the forward lives only as long as this command)"
        );
        super::forward::serve_here(engine, forwards, &job.id)
    }
}

#[derive(Deserialize)]
struct ReadinessDoc {
    state: String,
    remote: Option<String>,
    path: Option<String>,
    token: Option<String>,
}

#[derive(Deserialize)]
struct ForwardList {
    forwards: Vec<ForwardView>,
}

fn run(ctx: &Ctx, req: &RunRequest, show: Show, timeout: Duration) -> Result<u8> {
    // Everything checked before anything is opened or recorded.
    let template = AppTemplate::find(&ctx.home, &req.app)?;
    let hosts = belay_core::hosts::Hosts::new(&ctx.home, ctx.hosts.clone())?;
    hosts.validate(&req.host)?;
    let spec = template
        .job_spec(
            &req.host,
            req.name.clone(),
            &req.args,
            &hosts.config()?.host(&req.host),
        )?
        .with_scheduler(req.scheduler.clone(), req.slurm.clone())?;
    let (names, secrets) = crate::secrets::resolve(&req.secrets)?;
    let spec = spec.with_secrets(names)?;
    let name = spec.name.clone().unwrap_or_default();
    let mut via = Via::new(ctx)?;
    // One app of a name per host.
    if let Some(running) = via
        .live_jobs(Some(&req.host))?
        .into_iter()
        .find(|j| j.name.as_deref() == Some(name.as_str()) && app_of(j).is_some())
    {
        eprintln!(
            "belay: app {name} already runs on {} as job {} (`belay app stop {}` ends it; `--name` starts another)",
            req.host, running.id, running.id
        );
        return connect(&template.ready_path, &mut via, &running, show, timeout);
    }
    let job = via.submit(&spec, secrets)?;
    if !show.json {
        eprintln!(
            "belay: {} starting on {} as job {} …",
            template.name, req.host, job.id
        );
    }
    connect(&template.ready_path, &mut via, &job, show, timeout)
}

fn open_existing(ctx: &Ctx, reference: &str, show: Show) -> Result<u8> {
    let mut via = Via::new(ctx)?;
    let job = via.job(reference)?;
    if app_of(&job).is_none() {
        bail!(UsageError(format!(
            "job {} is not an app (see `belay app list`)",
            job.id
        )));
    }
    if !job.state.is_live() || job.state == JobState::Held {
        bail!(
            "app job {} is {}: nothing to open (`belay app run` starts it again)",
            job.id,
            job.state
        );
    }
    // The template it was started from (gone or renamed since: `/`).
    let ready_path = app_of(&job)
        .and_then(|name| AppTemplate::find(&ctx.home, name).ok())
        .map_or_else(|| "/".to_string(), |t| t.ready_path);
    connect(&ready_path, &mut via, &job, show, Duration::from_secs(30))
}

/// Waits until `job`'s app listens, forwards to it, waits until it
/// answers, prints the URL; then (`--no-daemon`) holds the forward.
fn connect(
    ready_path: &str,
    via: &mut Via<'_>,
    job: &Job,
    show: Show,
    timeout: Duration,
) -> Result<u8> {
    let deadline = Instant::now() + timeout;
    let listening = loop {
        match via.readiness(job)? {
            Readiness::Ready(l) => break l,
            Readiness::Ended => {
                let ended = via.job(&job.id)?;
                bail!(
                    "app job {} ended before it listened ({}{}); see `belay logs --stderr {}`",
                    job.id,
                    ended.state,
                    ended
                        .exit_code
                        .map(|c| format!(", exit code {c}"))
                        .unwrap_or_default(),
                    job.id
                );
            }
            Readiness::Starting if Instant::now() >= deadline => bail!(
                "app job {} did not listen within {} (it keeps running: `belay logs --stderr {}`, `belay app stop {}`)",
                job.id,
                humantime::format_duration(timeout),
                job.id,
                job.id
            ),
            Readiness::Starting => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let forward = via.forward(job, &listening.remote)?;
    let local = forward.record.local.clone();
    let template = app_of(job).unwrap_or("app");
    let query = listening
        .token
        .as_ref()
        .map(|t| format!("?token={t}"))
        .unwrap_or_default();
    answers_http(&local, &format!("{ready_path}{query}"), ANSWER_WITHIN).map_err(|e| {
        anyhow::anyhow!(
            "app job {} listens on {} but does not answer HTTP through {local}: {e}",
            job.id,
            listening.remote
        )
    })?;
    let url = format!("http://{local}{}{query}", listening.path);
    if show.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&AppUrl {
                job: &job.id,
                app: template,
                host: &job.host,
                url: url.clone(),
                local: &local,
                remote: &listening.remote,
            })?
        );
    } else {
        println!("{url}");
    }
    if show.open {
        open_browser(&url);
    }
    via.hold(job)?;
    Ok(0)
}

/// Asks `GET path` of the server at `local` (`127.0.0.1:PORT`) until it
/// sends an HTTP status line (any status: a 403 without a token is an
/// answer), or `within` passes. A probe, not a client: one request, the
/// first line read.
fn answers_http(local: &str, path: &str, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        match probe_once(local, path) {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last)
}

fn probe_once(local: &str, path: &str) -> Result<(), String> {
    let mut s = std::net::TcpStream::connect(local).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {local}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).map_err(|e| e.to_string())?;
    if head.starts_with(b"HTTP/") {
        Ok(())
    } else {
        Err("the answer is not HTTP".into())
    }
}

fn open_browser(url: &str) {
    let browser = std::env::var("BROWSER").unwrap_or_else(|_| "xdg-open".into());
    // The URL goes to the browser's argv: it holds the app's token, as
    // every browser launcher's argv does; never to a log.
    match std::process::Command::new(&browser)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => {}
        Err(e) => eprintln!("belay: could not start {browser} ({e}); open the URL yourself"),
    }
}

#[derive(Serialize)]
struct AppRow {
    job: String,
    app: String,
    name: Option<String>,
    host: String,
    state: JobState,
    /// Where it is forwarded here (the daemon's forwards), if it is.
    local: Option<String>,
}

fn list(ctx: &Ctx, json: bool) -> Result<u8> {
    let (jobs, forwards) = match ctx.daemon(ctx.home.store_exists()) {
        Some(client) => (
            daemon::list(client, false, None)?.0,
            client.get::<ForwardList>("/v1/forwards")?.forwards,
        ),
        None if ctx.home.store_exists() => {
            let filter = belay_core::store::JobFilter::default();
            (ctx.engine()?.list(&filter)?.0, Vec::new())
        }
        None => (Vec::new(), Vec::new()),
    };
    let rows: Vec<AppRow> = jobs
        .iter()
        .filter_map(|j| {
            let app = app_of(j)?;
            let local = forwards
                .iter()
                .find(|f| f.record.job_id.as_deref() == Some(j.id.as_str()))
                .map(|f| f.record.local.clone());
            Some(AppRow {
                job: j.id.clone(),
                app: app.to_string(),
                name: j.name.clone(),
                host: j.host.clone(),
                state: j.state,
                local,
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    if rows.is_empty() {
        println!("no apps running (`belay app run HOST jupyter` starts one)");
        return Ok(0);
    }
    println!(
        "{:<10} {:<10} {:<16} {:<16} {:<9} LOCAL",
        "JOB", "APP", "NAME", "HOST", "STATE"
    );
    for r in &rows {
        println!(
            "{:<10} {:<10} {:<16} {:<16} {:<9} {}",
            r.job,
            r.app,
            r.name.as_deref().unwrap_or("-"),
            r.host,
            r.state.to_string(),
            r.local
                .as_deref()
                .unwrap_or("- (`belay app open` forwards again)")
        );
    }
    Ok(0)
}

fn list_templates(ctx: &Ctx, json: bool) -> Result<u8> {
    let all = AppTemplate::all(&ctx.home)?;
    if json {
        let v: Vec<_> = all
            .iter()
            .map(|t| serde_json::json!({"name": t.name, "description": t.description, "source": t.source}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    for t in &all {
        println!("{:<12} {}  ({})", t.name, t.description, t.source);
    }
    Ok(0)
}

#[derive(Deserialize, Serialize)]
struct Stopped {
    job: String,
    state: JobState,
    forwards_stopped: usize,
    socket: String,
}

fn stop(ctx: &Ctx, reference: &str) -> Result<u8> {
    let stopped: Stopped = match ctx.daemon(ctx.home.store_exists()) {
        Some(client) => client.delete(&format!("/v1/jobs/{}/app", encode(reference)))?,
        None => {
            let mut engine = ctx.existing_engine(reference)?;
            let forwards = Forwards::new(false);
            let s = belay_server::apps::stop(
                &mut engine,
                &forwards,
                reference,
                belay_core::engine::cancel::DEFAULT_GRACE_SECS,
            )
            .map_err(|e| match e {
                belay_server::apps::AppStopError::Core(core) => anyhow::Error::from(core),
                other => anyhow::anyhow!(other.to_string()),
            })?;
            Stopped {
                job: s.job,
                state: s.state,
                forwards_stopped: s.forwards_stopped,
                socket: s.socket,
            }
        }
    };
    println!(
        "{}: {}; {} forward(s) stopped; {}",
        stopped.job, stopped.state, stopped.forwards_stopped, stopped.socket
    );
    Ok(0)
}
