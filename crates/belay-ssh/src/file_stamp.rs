//! What a set of files looked like at one moment — each one's size and
//! modification time, a folder's number of entries and modification time —
//! so that a long-lived process can tell later whether any of them changed,
//! appeared or went, without reading them again.
//!
//! Used for the files a connection's trust came from ([`crate::trust_stamp`])
//! and for the ssh config files a host name was checked against (belay-core's
//! `hosts/validated.rs`). Two writes of the same size within one tick of the
//! file system's clock look alike: callers that must not miss those bound
//! how long they trust a stamp.

use std::path::PathBuf;
use std::time::SystemTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp(Vec<(PathBuf, Option<(u64, SystemTime)>)>);

fn look(path: &PathBuf) -> Option<(u64, SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    // A folder's size says little (a block, on most file systems); its
    // entries say whether a file was added or removed.
    let size = if m.is_dir() {
        std::fs::read_dir(path).ok()?.count() as u64
    } else {
        m.len()
    };
    Some((size, m.modified().ok()?))
}

impl FileStamp {
    /// The files (and folders) as they are now; each path once.
    pub fn of(paths: impl IntoIterator<Item = PathBuf>) -> Self {
        let mut paths: Vec<PathBuf> = paths.into_iter().collect();
        paths.sort();
        paths.dedup();
        FileStamp(
            paths
                .into_iter()
                .map(|p| {
                    let seen = look(&p);
                    (p, seen)
                })
                .collect(),
        )
    }

    /// Has any of them changed (or appeared, or gone) since?
    pub fn changed(&self) -> bool {
        self.0.iter().any(|(path, seen)| look(path) != *seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_file_and_a_file_added_to_a_folder_are_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config");
        std::fs::write(&file, "Host a\n").unwrap();
        let paths = || [file.clone(), dir.path().to_path_buf()];
        let stamp = FileStamp::of(paths());
        assert!(!stamp.changed());
        std::fs::write(&file, "Host a b\n").unwrap();
        assert!(stamp.changed(), "rewritten");
        let stamp = FileStamp::of(paths());
        std::fs::write(dir.path().join("extra.conf"), "Host c\n").unwrap();
        assert!(stamp.changed(), "a file added to the folder");
        let stamp = FileStamp::of(paths());
        std::fs::remove_file(&file).unwrap();
        assert!(stamp.changed(), "gone");
    }
}
