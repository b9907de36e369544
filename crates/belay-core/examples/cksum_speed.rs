//! How fast belay's `cksum` runs here (development aid): `cksum_speed FILE`
//! (the file is read into memory first, so only the checksum is timed).
fn main() {
    let path = std::env::args().nth(1).expect("FILE");
    let data = std::fs::read(&path).expect("readable");
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let mut c = belay_core::transfer::checksum::Cksum::default();
        for chunk in data.chunks(256 * 1024) {
            c.update(chunk);
        }
        let sum = c.sum();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{sum} in {secs:.3} s ({:.2} GB/s)",
            sum.len as f64 / secs / 1e9
        );
    }
}
