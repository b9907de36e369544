//! The local side of a pull, shared by the exec and SFTP movers: where a
//! pulled copy lands (`cp -r` rules), safe directories (never through a
//! symlink the host planted), partials beside their final names, and
//! landing — verified bytes first, then mtime, durability, mode and the
//! final name last. The host is untrusted: nothing here believes a name it
//! sent without [`crate::paths::safe_relative`].

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use crate::error::{CoreError, Result};
use crate::paths::{base_name, partial_name, safe_relative};
use crate::transfer::Summary;
use crate::transfer::listing::Entry;
use crate::transfer::progress::Progress;

/// A local file with the entry's size and mtime is a complete copy.
pub(crate) fn already_there(target: &Path, e: &Entry) -> bool {
    fs::symlink_metadata(target).is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.is_file() && m.len() == e.size && m.mtime() == e.mtime
    })
}

pub(crate) fn refuse(summary: &mut Summary, progress: &mut dyn Progress, name: &str, why: &str) {
    progress.warn(&format!(
        "refused remote entry '{}': {why}",
        name.escape_debug()
    ));
    summary.refused.push(name.to_string());
}

pub(crate) fn io_error(path: &Path, e: std::io::Error) -> CoreError {
    CoreError::Io {
        what: format!("writing '{}'", path.display()),
        source: e,
    }
}

/// The name a pulled copy takes inside a local directory: the last
/// component of REMOTE as typed; for `~`, `/` or `.`, the host's name for it
/// if that is a plain name (no dot-names, no separators).
pub(crate) fn landing_name(remote: &str, src_abs: &str) -> Option<String> {
    if let Some(b) = base_name(remote) {
        return Some(b.to_string());
    }
    let answer = src_abs.rsplit('/').next()?;
    let plain = !answer.is_empty()
        && !answer.starts_with('.')
        && safe_relative(answer).is_ok_and(|p| p.components().count() == 1);
    plain.then(|| answer.to_string())
}

/// `cp -r` rules on the local side.
pub(crate) fn local_destination(
    local: &Path,
    landing: Option<&str>,
    remote: &str,
) -> Result<PathBuf> {
    let text = local.to_string_lossy();
    if local.is_dir() {
        let name = landing.ok_or_else(|| {
            CoreError::BadInput(format!(
                "cannot name a copy of '{remote}' inside '{}': give the destination's own name",
                local.display()
            ))
        })?;
        return Ok(local.join(name));
    }
    if text.ends_with('/') {
        return Err(CoreError::BadInput(format!(
            "no such local directory '{}'",
            local.display()
        )));
    }
    let parent = match local.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(CoreError::BadInput(format!(
            "no such local directory '{}' (the destination's parent must exist)",
            parent.display()
        )));
    }
    Ok(local.to_path_buf())
}

/// A tree's local destination `dest`: an existing directory, or made now.
/// Returns whether it was made (a fresh one holds nothing yet: no file in
/// it needs looking at to know it is not complete).
pub(crate) fn tree_destination(dest: &Path) -> Result<bool> {
    match fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => Ok(false),
        Ok(_) => Err(CoreError::BadInput(format!(
            "'{}' exists and is not a directory",
            dest.display()
        ))),
        Err(_) => {
            fs::create_dir(dest).map_err(|e| io_error(dest, e))?;
            Ok(true)
        }
    }
}

/// Makes an existing directory writable by its owner (us) if it is not,
/// remembering its mode in `opened`: read-only directories of an earlier
/// copy (0555) are filled by an update, then closed again.
pub(crate) fn open_for_writing(path: &Path, opened: &mut Vec<(PathBuf, u32)>) -> Result<()> {
    let mode = fs::symlink_metadata(path)
        .map_err(|e| io_error(path, e))?
        .permissions()
        .mode()
        & 0o7777;
    if mode & 0o300 != 0o300 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o700))
            .map_err(|e| io_error(path, e))?;
        opened.push((path.to_path_buf(), mode));
    }
    Ok(())
}

/// Gives directories opened by [`open_for_writing`] their modes back
/// (best effort: a run that failed already says why).
pub(crate) fn restore_modes(opened: &[(PathBuf, u32)]) {
    for (path, mode) in opened.iter().rev() {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(*mode));
    }
}

/// Directories under the destination already checked (or made) by
/// [`safe_dir`] in this run: each is looked at once, not once per file.
pub(crate) type Checked = std::collections::HashSet<PathBuf>;

/// Makes `root/rel` a directory, creating missing components, refusing to
/// go through anything that is not a real directory (a symlink planted by
/// the remote side, or a file). Only belay creates entries under the
/// destination during a pull, and it never replaces a directory, so a
/// component once checked stays a directory.
pub(crate) fn safe_dir(root: &Path, rel: &Path, checked: &mut Checked) -> Result<PathBuf> {
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        if checked.contains(&cur) {
            continue;
        }
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(CoreError::Local {
                    path: cur.display().to_string(),
                    message: "not a directory: refusing to write through it".into(),
                });
            }
            Err(_) => {
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&cur)
                    .map_err(|e| io_error(&cur, e))?;
            }
        }
        checked.insert(cur.clone());
    }
    Ok(cur)
}

/// The partial beside `target`, and the directory both live in (checked).
pub(crate) fn partial_for(
    dest: &Path,
    rel: &Path,
    checked: &mut Checked,
) -> Result<(PathBuf, PathBuf)> {
    let (dir, target) = if rel.as_os_str().is_empty() {
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        (parent, dest.to_path_buf())
    } else {
        let dir = safe_dir(dest, rel.parent().unwrap_or(Path::new("")), checked)?;
        (dir, dest.join(rel))
    };
    let base = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((dir.join(partial_name(&base)), target))
}

/// Opens a partial (0600, never through a symlink). A fresh copy is a new
/// file (`O_EXCL`: not a symlink or hard link planted there); whatever an
/// older run left under that name is removed first, only when it is there.
pub(crate) fn open_partial(path: &Path, append: bool) -> Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).mode(0o600).custom_flags(libc::O_NOFOLLOW);
    if append {
        return o
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| io_error(path, e));
    }
    o.create_new(true);
    match o.open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            match fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_error(path, e));
                }
                _ => {}
            }
            o.open(path).map_err(|e| io_error(path, e))
        }
        r => r.map_err(|e| io_error(path, e)),
    }
}

/// Gives a partial its final mtime (through its open handle). Its mode
/// stays 0600 until the rename, so a run cut here can still extend or
/// replace it, whatever the final mode (0444, 0040) is.
pub(crate) fn finish_partial(partial: &Path, e: &Entry, file: &File) -> Result<()> {
    let mtime = UNIX_EPOCH + Duration::from_secs(e.mtime.max(0) as u64);
    file.set_times(fs::FileTimes::new().set_modified(mtime).set_accessed(mtime))
        .map_err(|er| io_error(partial, er))
}

/// Gives a verified partial its mode and its final name. rename(2)
/// replaces a file or symlink itself (never what a symlink points to) and
/// refuses to replace a directory.
pub(crate) fn rename_into_place(partial: &Path, target: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(partial, fs::Permissions::from_mode(mode & 0o777))
        .map_err(|er| io_error(partial, er))?;
    fs::rename(partial, target).map_err(|er| io_error(target, er))
}

/// A big file: mtime, on disk, then its mode and final name.
pub(crate) fn land(partial: &Path, target: &Path, e: &Entry, file: File) -> Result<()> {
    finish_partial(partial, e, &file)?;
    file.sync_all().map_err(|er| io_error(partial, er))?;
    drop(file);
    rename_into_place(partial, target, e.mode)
}

/// Makes a batch of written files durable before any of them is renamed:
/// one file-system sync instead of one fsync (one journal commit) per file.
pub(crate) fn make_durable(files: &[(PathBuf, PathBuf, u32)]) -> Result<()> {
    #[cfg(target_os = "linux")]
    if let Some(dir) = files.first().and_then(|(first, ..)| first.parent()) {
        use std::os::fd::AsRawFd;
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let f = File::open(dir).map_err(|e| io_error(dir, e))?;
        // SAFETY: syncfs(2) on a descriptor we own; no memory is passed.
        if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
            return Err(io_error(dir, std::io::Error::last_os_error()));
        }
    }
    #[cfg(not(target_os = "linux"))]
    for (partial, ..) in files {
        File::open(partial)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_error(partial, e))?;
    }
    Ok(())
}

/// Gives verified partials their modes and final names, on two threads
/// (a rename costs the kernel more than anything else left here, and the
/// host has nothing to do meanwhile). Returns how many landed, and the
/// first failure.
pub(crate) fn land_all(written: &[(PathBuf, PathBuf, u32)]) -> (u64, Result<()>) {
    let land = |part: &[(PathBuf, PathBuf, u32)]| {
        let mut landed = 0;
        for (partial, target, mode) in part {
            if let Err(e) = rename_into_place(partial, target, *mode) {
                return (landed, Err(e));
            }
            landed += 1;
        }
        (landed, Ok(()))
    };
    if written.len() < 256 {
        return land(written);
    }
    let (first, second) = written.split_at(written.len() / 2);
    std::thread::scope(|s| {
        let other = s.spawn(|| land(second));
        let (a, ra) = land(first);
        let (b, rb) = other
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (a + b, ra.and(rb))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_in_the_way_is_named_by_its_path_not_an_invented_host() {
        let root = std::env::temp_dir().join(format!("belay-landing-{}", std::process::id()));
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("f"), "x").unwrap();
        let err = safe_dir(&root, Path::new("f/sub"), &mut Checked::new()).unwrap_err();
        fs::remove_dir_all(&root).unwrap();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{}: not a directory", root.join("f").display())),
            "{text}"
        );
        assert!(!text.contains("host local"), "{text}");
    }

    #[test]
    fn the_landing_name_comes_from_what_the_user_typed() {
        // A host answering `/x/.bashrc` for `notes.txt` does not choose it.
        assert_eq!(
            landing_name("notes.txt", "/x/.bashrc").as_deref(),
            Some("notes.txt")
        );
        assert_eq!(landing_name("a/run7/", "/x/.ssh").as_deref(), Some("run7"));
        // Only `~`, `/`, `.` ask the host, and only a plain name is taken.
        assert_eq!(landing_name("~", "/home/me").as_deref(), Some("me"));
        assert_eq!(landing_name("~", "/x/.ssh"), None);
        assert_eq!(landing_name(".", "/"), None);
    }
}
