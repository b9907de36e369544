//! Benchmark helper: fill a store with N ended jobs on `local`.
//! Usage: BELAY_HOME=DIR cargo run --release -p belay-core --features bench --example seed_store -- N

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .ok_or("usage: seed_store N")?
        .parse()?;
    let home = belay_core::home::BelayHome::from_env()?;
    let mut store = belay_core::store::Store::open(&home.store_path())?;
    store.seed_finished_jobs("local", n)?;
    Ok(())
}
