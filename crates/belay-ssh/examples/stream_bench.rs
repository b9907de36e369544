//! Throughput of one streaming exec channel (development aid):
//! `stream_bench CONFIG ALIAS MIB` pushes MIB MiB into `cat > /dev/null`
//! and pulls MIB MiB from `head -c`, printing MB/s for each.

use std::time::{Duration, Instant};

use belay_ssh::{Client, ClientOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (config, alias, mib): (&str, &str, usize) =
        (&args[1], &args[2], args[3].parse().expect("MiB"));
    let client = Client::new(
        alias,
        ClientOptions {
            config_file: Some(config.into()),
            ..ClientOptions::default()
        },
    );
    let idle = Duration::from_secs(30);
    let buf = vec![7u8; 256 * 1024];
    let mut s = client
        .exec_stream("cat > /dev/null", idle)
        .await
        .expect("stream");
    let t = Instant::now();
    for _ in 0..mib * 4 {
        s.write_all(&buf).await.expect("write");
    }
    let end = s.finish().await.expect("finish");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "push {:.0} MB/s (status {})",
        (mib << 20) as f64 / secs / 1e6,
        end.status
    );
    let mut s = client
        .exec_stream(&format!("head -c {} /dev/zero", mib << 20), idle)
        .await
        .expect("stream");
    s.close_input().await.expect("eof");
    let t = Instant::now();
    let mut n = 0usize;
    while let Some(c) = s.read().await.expect("read") {
        n += c.len();
    }
    let secs = t.elapsed().as_secs_f64();
    println!("pull {:.0} MB/s ({n} bytes)", n as f64 / secs / 1e6);
}
