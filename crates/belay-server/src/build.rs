//! A build's identity: the package version plus the executable's size and
//! modification time. A CLI that finds a daemon of another build (an
//! upgrade, a rebuilt binary) says so and restarts it, so the two never
//! disagree about the store's schema or the API.

use std::sync::OnceLock;

pub fn identity() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let exe = std::env::current_exe()
            .and_then(std::fs::metadata)
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                format!("{}.{}", m.len(), m.mtime())
            })
            .unwrap_or_else(|_| "unknown".into());
        format!("{}+{exe}", env!("CARGO_PKG_VERSION"))
    })
}
