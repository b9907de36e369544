//! Pull over SFTP, for hosts that refuse commands. Same rules as the exec
//! pull ([`crate::transfer::exec::pull`]) and the same local code for everything that
//! touches the disk: names checked before use, nothing written through a
//! symlink, `.NAME.belay-part` (0600) made durable before it is renamed.
//!
//! What differs, because the host can run nothing:
//! - Nothing on the host can sum a file. Each file's bytes are protected
//!   on the way by SSH's own integrity check (every packet is
//!   authenticated), and the source is checked not to have changed during
//!   the copy (size and mtime, before and after).
//! - A big file's partial is extended only if it was made from the same
//!   version of the file (size and mtime, recorded on the partial) and its
//!   last [`RESUME_CHECK`] bytes equal the host's (re-read: at most one
//!   chunk sent again) — not by a sum of the whole prefix, which would cost
//!   as much as sending it again.

use std::cell::RefCell;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use belay_ssh::Sftp;
use futures_util::stream::{self, StreamExt};

use super::files::{Files, Listing};
use super::push::{FILES_IN_FLIGHT, sftp_path};
use crate::error::{CoreError, Result};
use crate::paths::join;
use crate::transfer::landing::{
    Checked, already_there, finish_partial, io_error, land, land_all, landing_name,
    local_destination, make_durable, open_for_writing, open_partial, partial_for, refuse,
    restore_modes, safe_dir, tree_destination,
};
use crate::transfer::listing::{Entry, Kind};
use crate::transfer::plan::{PulledKind, PulledName, pulled_kind, pulled_name};
use crate::transfer::progress::{Meter, Progress};
use crate::transfer::{BIG_FILE, Summary};
use crate::transport::ssh::runtime;

/// Bytes at the end of a partial compared with the host's before resuming.
const RESUME_CHECK: u64 = 1 << 20;

/// One file to fetch.
struct Item {
    entry: Entry,
    /// Absolute path on the host.
    remote: String,
    partial: PathBuf,
    target: PathBuf,
}

pub(crate) fn run(
    sftp: &Sftp,
    host: &str,
    remote: &str,
    local: &Path,
    progress: &mut dyn Progress,
    summary: &mut Summary,
) -> Result<()> {
    let fs = Files::new(sftp, host);
    runtime().block_on(async {
        let path = sftp_path(remote);
        let Some(root) = fs.stat(&path, true).await? else {
            return Err(CoreError::BadInput(format!(
                "no such file or directory '{remote}' on {host}"
            )));
        };
        if !matches!(root.kind, Kind::File | Kind::Dir) {
            return Err(CoreError::BadInput(format!(
                "'{remote}' on {host} is not a regular file or directory"
            )));
        }
        let src_abs = fs.realpath(&path).await?;
        let tree = root.kind == Kind::Dir;
        let listing = if tree {
            fs.list_tree(&src_abs, root).await?
        } else {
            Listing {
                entries: vec![root],
                bad_names: Vec::new(),
            }
        };
        // The landing name comes from what the user typed (see landing.rs).
        let landing = landing_name(remote, &src_abs);
        let dest = local_destination(local, landing.as_deref(), remote)?;
        summary.destination = dest.display().to_string();
        if tree {
            tree_destination(&dest)?;
        }

        summary.files = 0;
        summary.bytes = 0;
        summary.files_skipped = 0;
        summary.refused.clear();
        for bad in &listing.bad_names {
            refuse(summary, progress, bad, "a name with '/' in it");
        }
        let mut checked = Checked::new();
        let mut opened = Vec::new();
        let (mut small, mut big, mut links, mut dirs) = (vec![], vec![], vec![], vec![]);
        let mut to_copy = 0;
        for e in listing.entries {
            let rel = match pulled_name(&e.rel, e.name_not_utf8) {
                PulledName::Lands(rel) => rel,
                PulledName::Temporary => continue,
                PulledName::Refused(why) => {
                    refuse(summary, progress, &e.rel, why);
                    continue;
                }
            };
            match pulled_kind(&e, &rel) {
                Ok(PulledKind::Dir) => {
                    // Read-only directories of an earlier copy are opened
                    // while filled (see the exec pull).
                    let path = safe_dir(&dest, &rel, &mut checked)?;
                    open_for_writing(&path, &mut opened)?;
                    dirs.push((dest.join(&rel), e.mode));
                }
                Ok(PulledKind::Link) => {
                    let (partial, target) = partial_for(&dest, &rel, &mut checked)?;
                    links.push((e.link, partial, target));
                }
                Err(why) => refuse(summary, progress, &e.rel, why),
                Ok(PulledKind::File) => {
                    summary.files += 1;
                    summary.bytes += e.size;
                    let (partial, target) = partial_for(&dest, &rel, &mut checked)?;
                    if already_there(&target, &e) {
                        summary.files_skipped += 1;
                        continue;
                    }
                    to_copy += e.size;
                    let item = Item {
                        remote: join(&src_abs, &e.rel),
                        entry: e,
                        partial,
                        target,
                    };
                    if item.entry.size >= BIG_FILE {
                        big.push(item);
                    } else {
                        small.push(item);
                    }
                }
            }
        }
        progress.begin((small.len() + big.len()) as u64, to_copy);
        let meter = RefCell::new(Meter::new(progress));
        let result = async {
            // Small files land a batch at a time (as on the exec path), so a
            // cut link loses at most one batch's work.
            for batch in crate::transfer::plan::batches(&small, |i| i.entry.size) {
                let mut fetches =
                    stream::iter(batch.iter().map(|i| pull_file(&fs, i, false, &meter)))
                        .buffer_unordered(FILES_IN_FLIGHT);
                let mut written = Vec::new();
                while let Some(done) = fetches.next().await {
                    let (item, file) = done?;
                    finish_partial(&item.partial, &item.entry, &file)?;
                    written.push((item.partial.clone(), item.target.clone(), item.entry.mode));
                }
                drop(fetches);
                // One sync for the batch, then the final names.
                make_durable(&written)?;
                let (landed, result) = land_all(&written);
                summary.files_transferred += landed;
                for _ in 0..landed {
                    meter.borrow_mut().progress.file_done();
                }
                result?;
            }
            for item in &big {
                let (item, file) = pull_file(&fs, item, true, &meter).await?;
                land(&item.partial, &item.target, &item.entry, file)?;
                summary.files_transferred += 1;
                meter.borrow_mut().progress.file_done();
            }
            for (link, partial, target) in &links {
                let _ = fs::remove_file(partial);
                std::os::unix::fs::symlink(link, partial).map_err(|e| io_error(partial, e))?;
                fs::rename(partial, target).map_err(|e| io_error(target, e))?;
            }
            // Directory modes last, deepest first.
            for (path, mode) in dirs.iter().rev() {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o777))
                    .map_err(|e| io_error(path, e))?;
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            restore_modes(&opened);
        }
        summary.bytes_sent += meter.borrow().sent;
        summary.bytes_resumed += meter.borrow().resumed;
        result
    })
}

/// Fetches one file into its partial (extending it when `resumable` and
/// its tail matches the host's), checking the source did not change.
async fn pull_file<'i>(
    fs: &Files<'_>,
    item: &'i Item,
    resumable: bool,
    meter: &RefCell<Meter<'_>>,
) -> Result<(&'i Item, File)> {
    let handle = fs.open_read(&item.remote).await?;
    let fetched = async {
        let changed = || CoreError::Protocol {
            host: fs.host.to_string(),
            message: format!(
                "'{}' changed while being copied; run the same command again",
                item.remote
            ),
        };
        let size = item.entry.size;
        if fs.fstat(&handle, &item.remote).await? != (size, item.entry.mtime) {
            return Err(changed());
        }
        let offset = if resumable {
            resumable_prefix(fs, &handle, item).await?
        } else {
            0
        };
        if offset > 0 {
            meter.borrow_mut().kept(offset);
        }
        let mut file = open_partial(&item.partial, offset > 0)?;
        if offset == 0 && resumable {
            // What the partial is a copy of, for the next run to check.
            tag(&file, &version(&item.entry));
        }
        fs.read_into(&handle, &item.remote, offset, size - offset, |d| {
            file.write_all(d).map_err(|e| io_error(&item.partial, e))?;
            meter.borrow_mut().moved(d.len() as u64);
            Ok(())
        })
        .await?;
        if fs.fstat(&handle, &item.remote).await? != (size, item.entry.mtime) {
            return Err(changed());
        }
        Ok(file)
    }
    .await;
    let _ = fs.close(&handle, &item.remote, false).await;
    Ok((item, fetched?))
}

/// How much of a partial left by an earlier run can be kept: all of it
/// when it was made from this version of the file (size and mtime, kept
/// in an extended attribute of the partial) and its last [`RESUME_CHECK`]
/// bytes are the host's, else none. A file edited in place since keeps
/// its size but not its mtime; a torn write at a crash shows in the tail.
async fn resumable_prefix(fs: &Files<'_>, handle: &str, item: &Item) -> Result<u64> {
    let have = match fs::symlink_metadata(&item.partial) {
        Ok(m) if m.is_file() && m.len() > 0 && m.len() <= item.entry.size => m.len(),
        _ => return Ok(0),
    };
    if tag_of(&item.partial).as_deref() != Some(version(&item.entry).as_str()) {
        return Ok(0);
    }
    let from = have - have.min(RESUME_CHECK);
    let mut mine = vec![0u8; (have - from) as usize];
    let read_mine = File::open(&item.partial).and_then(|mut f| {
        f.seek(SeekFrom::Start(from))?;
        f.read_exact(&mut mine)
    });
    if read_mine.is_err() {
        return Ok(0);
    }
    let mut theirs = Vec::with_capacity(mine.len());
    fs.read_into(handle, &item.remote, from, have - from, |d| {
        theirs.extend_from_slice(d);
        Ok(())
    })
    .await?;
    Ok(if theirs == mine { have } else { 0 })
}

/// The extended attribute naming the source version a partial copies.
const SOURCE_ATTR: &std::ffi::CStr = c"user.belay.source";

fn version(e: &Entry) -> String {
    format!("{} {}", e.size, e.mtime)
}

/// Tags a partial with its source version. Where the file system has no
/// user attributes the partial is simply not resumable (it is restarted).
fn tag(file: &File, value: &str) {
    use std::os::fd::AsRawFd;
    // SAFETY: fsetxattr(2) on a descriptor we own, with a NUL-terminated
    // name and a buffer of the given length.
    unsafe {
        libc::fsetxattr(
            file.as_raw_fd(),
            SOURCE_ATTR.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        );
    }
}

/// A partial's source version, if it has one (never through a symlink).
fn tag_of(path: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = [0u8; 64];
    // SAFETY: lgetxattr(2) with NUL-terminated strings and a buffer of the
    // length given; it writes at most that many bytes.
    let n = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            SOURCE_ATTR.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n > 0).then(|| String::from_utf8_lossy(&buf[..n as usize]).into_owned())
}
