//! What kind of filesystem the store lives on. `BELAY_HOME` defaults under
//! `$HOME`, which HPC login nodes share over NFS (or SMB, sshfs, Lustre…).
//! There SQLite's WAL is unsafe (its shared-memory index assumes one
//! machine) and so is reading another node's `/proc`; the store then uses a
//! rollback journal with full syncs (see `Store::open`), and submitter
//! tokens name their machine (see `engine/submitter.rs`).
//!
//! Detection is `statfs(2)`'s filesystem magic: a short list of network and
//! cluster filesystems, and FUSE (sshfs and most other FUSE mounts are
//! remote; a rollback journal is safe anywhere, only a little slower).

use std::path::Path;

/// Where the store's directory lives, as far as locking is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    /// A disk of this machine: WAL is safe.
    Local,
    /// Shared with other machines (the name is for messages).
    Network(&'static str),
}

/// `f_type` magics of filesystems that other machines may share.
const NETWORK_MAGICS: &[(i64, &str)] = &[
    (0x6969, "nfs"),
    (0x517B, "smb"),
    (0xFF53_4D42, "cifs"),
    (0xFE53_4D42, "smb2"),
    (0x6573_5546, "fuse (sshfs?)"),
    (0x00C3_6400, "ceph"),
    (0x5346_414F, "afs"),
    (0x6B41_4653, "kafs"),
    (0x7375_7245, "coda"),
    (0x0102_1997, "9p"),
    (0x4750_4653, "gpfs"),
    (0x0BD0_0BD0, "lustre"),
    (0x7461_636F, "ocfs2"),
    (0x0116_1970, "gfs2"),
    (0x0000_564C, "ncp"),
];

/// Classify a `statfs` magic.
pub fn classify(magic: i64) -> FsKind {
    NETWORK_MAGICS
        .iter()
        .find(|(m, _)| *m == magic)
        .map_or(FsKind::Local, |(_, name)| FsKind::Network(name))
}

/// The kind of filesystem holding `dir` (an existing directory). A
/// filesystem that cannot be asked is taken as local (today's behaviour).
pub fn kind_of(dir: &Path) -> FsKind {
    if let Some(name) = injected() {
        return match name.as_str() {
            "local" => FsKind::Local,
            other => NETWORK_MAGICS
                .iter()
                .find(|(_, n)| n.starts_with(other))
                .map_or(FsKind::Network("injected"), |(_, n)| FsKind::Network(n)),
        };
    }
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return FsKind::Local;
    };
    // SAFETY: `c` is a valid NUL-terminated path; `st` is written by the
    // kernel only on success.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return FsKind::Local;
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs by platform
    classify(st.f_type as i64)
}

/// Tests pretend the store is on a given filesystem
/// (`BELAY_HOME_FSTYPE=nfs|local`), only in builds with the `failpoints`
/// feature.
fn injected() -> Option<String> {
    if !crate::failpoint::LIVE {
        return None;
    }
    std::env::var("BELAY_HOME_FSTYPE")
        .ok()
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_magics_are_network_and_the_rest_local() {
        assert_eq!(classify(0x6969), FsKind::Network("nfs"));
        assert_eq!(classify(0xFF53_4D42), FsKind::Network("cifs"));
        assert_eq!(classify(0x6573_5546), FsKind::Network("fuse (sshfs?)"));
        assert_eq!(classify(0xEF53), FsKind::Local, "ext4");
        assert_eq!(classify(0x0102_1994), FsKind::Local, "tmpfs");
        assert_eq!(classify(0x5846_5342), FsKind::Local, "xfs");
    }

    #[test]
    fn a_local_temp_dir_is_local() {
        let d = tempfile::tempdir().unwrap();
        if std::env::var_os("BELAY_HOME_FSTYPE").is_none() {
            // The test's own temp dir: on CI a local disk or a tmpfs.
            assert_eq!(kind_of(d.path()), FsKind::Local);
        }
    }
}
