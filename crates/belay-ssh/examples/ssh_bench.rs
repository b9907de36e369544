//! Times belay-ssh operations through the public API and prints one JSON
//! object per line on stdout, for `bench/ssh.py` (which sets up the sshd,
//! keys and ssh config, runs the OpenSSH side, and computes the ratios).
//!
//! ```text
//! ssh_bench --config FILE --host ALIAS --mode MODE [--n N] [--warmup K] [--threads T]
//! ```
//!
//! Modes (every sample is one line `{"mode":…,"i":…,"ms":…,…}`):
//!
//! * `warm`  — one `Client`, one `run_script("true")` to connect and start
//!   the persistent shell, then `N` timed `run_script("true")` calls: the
//!   protocol round trip belay pays per call on an established connection.
//! * `cold`  — `N` times: a new `Client` (fresh `ssh -G` resolution, TCP,
//!   key exchange, auth, every jump) + its first `run_script("true")`,
//!   timed together. Each line also carries the engine's own breakdown from
//!   `last_connect_info()` (per hop: stream/kex/auth; first round trip).
//! * `once`  — a single cold connect + `run_script("true")`, then exit: the
//!   caller times the whole process (start-up included), as a CLI would pay.
//! * `rtt`   — `N` times: a new `Client` connects (`connect_info()`), then
//!   `run_script("true")` twice; prints the connect breakdown and both
//!   script times, to see whether the first round trips on a fresh
//!   connection are slower than later ones (the ~45 ms question).
//!
//! `--threads 0` uses tokio's current-thread runtime; the default is a
//! multi-thread runtime with 2 workers (the machine has 2 cores).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use belay_ssh::{Client, ClientOptions, ConnectInfo};

struct Args {
    config: PathBuf,
    host: String,
    mode: String,
    n: usize,
    warmup: usize,
    threads: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: ssh_bench --config FILE --host ALIAS --mode warm|cold|once|rtt \
         [--n N] [--warmup K] [--threads T]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        config: PathBuf::new(),
        host: String::new(),
        mode: String::new(),
        n: 50,
        warmup: 3,
        threads: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let Some(v) = it.next() else { usage() };
        let num = || v.parse::<usize>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--config" => a.config = PathBuf::from(&v),
            "--host" => a.host = v,
            "--mode" => a.mode = v,
            "--n" => a.n = num(),
            "--warmup" => a.warmup = num(),
            "--threads" => a.threads = num(),
            _ => usage(),
        }
    }
    if a.host.is_empty() || a.mode.is_empty() || a.config.as_os_str().is_empty() {
        usage()
    }
    a
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The engine's connect breakdown as JSON fields (no serde: a few numbers).
fn info_json(info: Option<ConnectInfo>) -> String {
    let Some(info) = info else {
        return String::new();
    };
    let hops: Vec<String> = info
        .hops
        .iter()
        .map(|h| {
            format!(
                "{{\"alias\":\"{}\",\"stream_ms\":{:.3},\"kex_ms\":{:.3},\"auth_ms\":{:.3}}}",
                h.alias,
                ms(h.stream),
                ms(h.kex),
                ms(h.auth)
            )
        })
        .collect();
    format!(
        ",\"connect_ms\":{:.3},\"first_rtt_ms\":{},\"hops\":[{}]",
        ms(info.total),
        info.first_round_trip
            .map_or("null".to_string(), |d| format!("{:.3}", ms(d))),
        hops.join(",")
    )
}

fn client(a: &Args) -> Client {
    Client::new(
        &a.host,
        ClientOptions {
            config_file: Some(a.config.clone()),
            ..ClientOptions::default()
        },
    )
}

async fn true_ok(c: &Client) -> Result<(), String> {
    let out = c.run_script("true").await.map_err(|e| e.to_string())?;
    if out.status != 0 {
        return Err(format!(
            "`true` exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

async fn bench(a: &Args) -> Result<(), String> {
    match a.mode.as_str() {
        "warm" => {
            let c = client(a);
            true_ok(&c).await?;
            for _ in 0..a.warmup {
                true_ok(&c).await?;
            }
            for i in 0..a.n {
                let t = Instant::now();
                true_ok(&c).await?;
                println!(
                    "{{\"mode\":\"warm\",\"i\":{i},\"ms\":{:.3}}}",
                    ms(t.elapsed())
                );
            }
            c.disconnect().await;
        }
        "cold" | "once" => {
            let n = if a.mode == "once" { 1 } else { a.n };
            for i in 0..n {
                let t = Instant::now();
                let c = client(a);
                true_ok(&c).await?;
                let el = t.elapsed();
                println!(
                    "{{\"mode\":\"{}\",\"i\":{i},\"ms\":{:.3}{}}}",
                    a.mode,
                    ms(el),
                    info_json(c.last_connect_info())
                );
                c.disconnect().await;
            }
        }
        "rtt" => {
            for i in 0..a.n {
                let c = client(a);
                let info = c.connect_info().await.map_err(|e| e.to_string())?;
                let t = Instant::now();
                true_ok(&c).await?;
                let first = t.elapsed();
                let t = Instant::now();
                true_ok(&c).await?;
                let second = t.elapsed();
                println!(
                    "{{\"mode\":\"rtt\",\"i\":{i},\"first_script_ms\":{:.3},\
                     \"second_script_ms\":{:.3}{}}}",
                    ms(first),
                    ms(second),
                    info_json(Some(info))
                );
                c.disconnect().await;
            }
        }
        _ => usage(),
    }
    Ok(())
}

fn main() {
    let a = parse_args();
    let rt = if a.threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(a.threads)
            .enable_all()
            .build()
    };
    let rt = rt.unwrap_or_else(|e| {
        eprintln!("ssh_bench: tokio runtime: {e}");
        std::process::exit(1)
    });
    if let Err(e) = rt.block_on(bench(&a)) {
        eprintln!("ssh_bench: {e}");
        std::process::exit(1);
    }
}
