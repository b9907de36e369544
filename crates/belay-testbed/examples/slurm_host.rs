//! A Slurm cluster and its login node for benchmarks (bench/slurm.py):
//! starts both, writes `ssh_config` (alias `cluster`) and its key and
//! known_hosts into DIR, prints one JSON line, and keeps everything up
//! until its stdin closes; then stops all it started.
//!
//!     cargo run --release -p belay-testbed --example slurm_host -- DIR

use std::io::Read;
use std::path::PathBuf;

use belay_testbed::{HostBlock, KeyKind, KeyPair, Slurm, SlurmOptions, Sshd, SshdOptions};

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: slurm_host DIR"));
    let key = KeyPair::generate(&dir, "id", KeyKind::Ed25519)?;
    let mut slurm = Slurm::prepare(SlurmOptions::default())?;
    let sshd = Sshd::start(SshdOptions {
        authorized_keys: vec![key.public_line()?],
        extra_config: slurm.sshd_config(),
        home_files: slurm.home_files(),
        ..SshdOptions::default()
    })?;
    slurm.start(sshd.pid())?;
    let known = dir.join("known_hosts");
    std::fs::write(&known, format!("{}\n", sshd.known_hosts_line("127.0.0.1")))?;
    let config = dir.join("ssh_config");
    std::fs::write(
        &config,
        HostBlock::new("cluster")
            .hostname("127.0.0.1")
            .port(sshd.port())
            .test_client(&key, &known)
            .to_string(),
    )?;
    println!(
        "{{\"ssh_config\": \"{}\", \"calls_log\": \"{}\", \"slurm_conf\": \"{}\"}}",
        config.display(),
        slurm.dir().join("calls.log").display(),
        slurm.conf().display()
    );
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink)?;
    drop(slurm);
    drop(sshd);
    Ok(())
}
