//! Benchmark helper: N live jobs on one host, then time the status probe.
//!
//! Submits N `sleep 600` jobs through one engine (one SSH connection), then
//! reconciles all of them R times — each reconcile is one probe script in
//! one round trip — and prints one JSON line with the timings. Finally it
//! kills the jobs' sessions in one script (cleanup, not a belay feature).
//!
//! Usage: BELAY_HOME=DIR BELAY_SSH_CONFIG=FILE probe_bench HOST N [R]

use std::time::Instant;

use belay_core::engine::Engine;
use belay_core::home::BelayHome;
use belay_core::hosts::HostsOptions;
use belay_core::job::JobSpec;
use belay_core::store::JobFilter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let host = args.next().ok_or("usage: probe_bench HOST N [R]")?;
    let n: usize = args
        .next()
        .ok_or("usage: probe_bench HOST N [R]")?
        .parse()?;
    let rounds: usize = args.next().map_or(Ok(10), |r| r.parse())?;
    let home = BelayHome::from_env()?;
    let mut engine = Engine::open(&home, HostsOptions::default())?;
    let spec = JobSpec::new(&host, None, vec!["sleep 600".into()], None, &[])?;
    let t = Instant::now();
    for _ in 0..n {
        engine.submit(&spec)?;
    }
    let submit_ms = t.elapsed().as_secs_f64() * 1000.0;
    // Every job must be seen running before timing the steady state.
    let filter = JobFilter {
        all: false,
        host: Some(host.clone()),
        owner: None,
        page: None,
    };
    for _ in 0..50 {
        let (jobs, _) = engine.list(&filter)?;
        if jobs.iter().all(|j| j.state.as_str() == "running") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut probe_ms = Vec::new();
    let mut running = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let (jobs, problems) = engine.list(&filter)?;
        probe_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        if !problems.is_empty() {
            return Err(format!("probe problems: {problems:?}").into());
        }
        running = jobs
            .iter()
            .filter(|j| j.state.as_str() == "running")
            .count();
    }
    let (jobs, _) = engine.list(&filter)?;
    let sids: Vec<String> = jobs
        .iter()
        .filter_map(|j| j.scheduler_id.as_ref().map(|s| format!("-{s}")))
        .collect();
    let transport = engine.hosts().get(&host)?;
    for chunk in sids.chunks(200) {
        transport.run_script(&format!("kill -KILL {} 2>/dev/null; true", chunk.join(" ")))?;
    }
    println!(
        "{{\"jobs\": {n}, \"running\": {running}, \"submit_ms_total\": {submit_ms:.1}, \"probe_ms\": {probe_ms:?}}}"
    );
    Ok(())
}
