//! Push over SFTP, for hosts that refuse commands. Same rules as the exec
//! push ([`crate::transfer::exec::push`]): `cp -r` destinations (decided
//! once, in [`crate::transfer::destination`]), complete files skipped,
//! each file written to `.NAME.belay-part`, verified, given its mode and
//! mtime, then renamed over the final name (OpenSSH's `posix-rename`).
//!
//! What differs, because the host can run nothing: the host cannot sum a
//! file, so every written file is read back and summed here (that doubles
//! the bytes on the link, downstream); a partial is checked the same way
//! before it is extended. Small files are not archived: up to
//! [`FILES_IN_FLIGHT`] are written at once, each with its requests
//! pipelined.

use std::cell::RefCell;
use std::io::{Seek, SeekFrom};

use belay_ssh::Sftp;
use futures_util::stream::{self, FuturesUnordered, StreamExt};

use super::files::Files;
use crate::error::{CoreError, Result};
use crate::paths::{join, partial_beside, partial_name};
use crate::transfer::checksum::{Cksum, file_sum};
use crate::transfer::destination::{self, Destination};
use crate::transfer::listing::{Entry, Kind};
use crate::transfer::plan::{Step, plan_push};
use crate::transfer::progress::{Meter, Progress};
use crate::transfer::source::{local_error, local_source};
use crate::transfer::{PushRequest, Summary};
use crate::transport::ssh::runtime;

/// Small files written at once.
pub(crate) const FILES_IN_FLIGHT: usize = 16;

/// One step of the plan and the absolute path of its final name on the
/// host.
struct Item<'a> {
    step: &'a Step<'a>,
    target: String,
}

impl<'a> Item<'a> {
    fn at(step: &'a Step<'a>, dest: &Destination, tree: bool) -> Item<'a> {
        let target = if tree {
            join(&dest.path, &step.entry.rel)
        } else {
            dest.path.clone()
        };
        Item { step, target }
    }
}

impl<'a> std::ops::Deref for Item<'a> {
    type Target = Step<'a>;
    fn deref(&self) -> &Step<'a> {
        self.step
    }
}

/// Carries out one push (see [`PushRequest`]) over SFTP.
pub(crate) fn run(
    sftp: &Sftp,
    host: &str,
    request: PushRequest,
    progress: &mut dyn Progress,
    summary: &mut Summary,
) -> Result<()> {
    let (local, remote, exact) = (request.local, request.remote, request.exact);
    let (entries, local_base) = local_source(local)?;
    let root = &entries[0];
    let fs = Files::new(sftp, host);
    runtime().block_on(async {
        let dest = destination(&fs, remote, &local_base, root.kind, exact).await?;
        summary.destination = dest.path.clone();
        let tree = root.kind == Kind::Dir;
        let there = list_there(&fs, &dest, tree).await?;
        let plan = plan_push(
            local,
            &entries,
            (!tree).then_some(dest.base.as_str()),
            &there,
        );
        let item = |step| Item::at(step, &dest, tree);
        let dirs: Vec<Item> = plan.dirs.iter().map(item).collect();
        if let Some(d) = dirs
            .iter()
            .find(|d| d.there.is_some_and(|k| k != Kind::Dir))
        {
            return Err(CoreError::BadInput(format!(
                "'{}' on {host} exists and is not a directory",
                d.target
            )));
        }
        for warning in &plan.warnings {
            progress.warn(warning);
        }
        summary.files = plan.files;
        summary.bytes = plan.bytes;
        summary.files_skipped = plan.skipped;
        let (links, small): (Vec<Item>, Vec<Item>) = plan
            .small
            .iter()
            .map(item)
            .partition(|i| i.entry.kind == Kind::Symlink);
        let big: Vec<Item> = plan.big.iter().map(item).collect();
        let to_copy = plan.to_copy;
        progress.begin((small.len() + big.len() + links.len()) as u64, to_copy);
        let meter = RefCell::new(Meter::new(progress));
        let result = async {
            make_dirs(&fs, &dirs).await?;
            let mut writes = stream::iter(small.iter().map(|i| push_file(&fs, i, false, &meter)))
                .buffer_unordered(FILES_IN_FLIGHT);
            while let Some(done) = writes.next().await {
                done?;
                landed(summary, &meter);
            }
            drop(writes);
            for item in &big {
                push_file(&fs, item, true, &meter).await?;
                landed(summary, &meter);
            }
            for item in &links {
                let partial = partial_beside(&item.target);
                fs.remove(&partial).await?;
                fs.symlink(&partial, &item.entry.link).await?;
                fs.replace(&partial, &item.target).await?;
                meter.borrow_mut().progress.file_done();
            }
            // Directory modes last, deepest first: a read-only directory is
            // filled before it becomes read-only.
            for d in dirs.iter().rev() {
                fs.set_attrs(&d.target, d.entry.mode, None).await?;
            }
            Ok(())
        }
        .await;
        summary.bytes_sent += meter.borrow().sent;
        summary.bytes_resumed += meter.borrow().resumed;
        result
    })
}

fn landed(summary: &mut Summary, meter: &RefCell<Meter<'_>>) {
    summary.files_transferred += 1;
    meter.borrow_mut().progress.file_done();
}

/// A remote path as SFTP takes it: relative paths are relative to the
/// login directory already, so `~` and `~/` only need stripping.
pub(crate) fn sftp_path(remote: &str) -> String {
    let rest = match remote.strip_prefix("~/") {
        // `~//x` is `$HOME/x` to a shell, not `/x`.
        Some(r) => r.trim_start_matches('/'),
        None if remote == "~" => "",
        None => remote,
    };
    if rest.is_empty() {
        ".".to_string()
    } else {
        rest.to_string()
    }
}

/// `cp -r` rules ([`crate::transfer::destination`], shared with the exec
/// push) on what SFTP `stat`s find at the destination.
async fn destination(
    fs: &Files<'_>,
    remote: &str,
    local_base: &str,
    kind: Kind,
    exact: bool,
) -> Result<Destination> {
    let host = fs.host;
    let path = sftp_path(remote);
    let mut there = fs.stat(&path, true).await?;
    if there.is_none() && remote.ends_with('/') && !exact {
        // `DEST/` means "into this directory": made if missing (as the
        // exec path's `mkdir -p`).
        make_dir_all(fs, &path).await?;
        there = fs.stat(&path, true).await?;
    }
    if there.as_ref().is_some_and(|e| e.kind == Kind::Dir) {
        let abs = fs.realpath(&path).await?;
        return destination::into_existing_directory(&abs, remote, local_base, kind, exact, host);
    }
    destination::refuse_before_parent(remote, kind, there.is_some(), host)?;
    let parent = match path.rsplit_once('/') {
        Some(("", _)) => "/".to_string(),
        Some((p, _)) => p.to_string(),
        None => ".".to_string(),
    };
    if !fs
        .stat(&parent, true)
        .await?
        .is_some_and(|e| e.kind == Kind::Dir)
    {
        return Err(destination::parent_must_exist(&parent, host));
    }
    let abs = fs.realpath(&parent).await?;
    Ok(destination::as_the_named_path(&abs, remote, local_base))
}

/// `mkdir -p`: each missing component of `path` (relative to the login
/// directory, or absolute), parents first.
async fn make_dir_all(fs: &Files<'_>, path: &str) -> Result<()> {
    let trimmed = path.trim_end_matches('/');
    let mut prefix = if path.starts_with('/') { "/" } else { "" }.to_string();
    for part in trimmed.split('/').filter(|p| !p.is_empty()) {
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        prefix.push_str(part);
        if fs.stat(&prefix, true).await?.is_none() {
            fs.mkdir(&prefix, 0o755).await?;
        }
    }
    Ok(())
}

/// What the destination holds: the tree (names relative to it), or the
/// file and its partial (by their names).
async fn list_there(fs: &Files<'_>, dest: &Destination, tree: bool) -> Result<Vec<Entry>> {
    if tree {
        return Ok(match fs.stat(&dest.path, false).await? {
            Some(root) if root.kind == Kind::Dir => fs.list_tree(&dest.path, root).await?.entries,
            Some(root) => vec![root],
            None => Vec::new(),
        });
    }
    let mut there = Vec::new();
    for name in [dest.base.clone(), partial_name(&dest.base)] {
        if let Some(mut e) = fs.stat(&join(&dest.parent, &name), false).await? {
            e.rel = name;
            there.push(e);
        }
    }
    Ok(there)
}

/// Creates the missing directories (0700 until their modes are set at the
/// end), a level at a time: parents before children. Existing directories
/// that are read-only (an earlier copy of a 0555 directory) are opened for
/// writing: the modes set at the end close them again.
async fn make_dirs(fs: &Files<'_>, dirs: &[Item<'_>]) -> Result<()> {
    for i in dirs {
        if let Some(mode) = i.there_mode.filter(|m| m & 0o300 != 0o300) {
            fs.set_attrs(&i.target, mode | 0o700, None).await?;
        }
    }
    let depth = |i: &Item| i.entry.rel.matches('/').count() + usize::from(!i.entry.rel.is_empty());
    let deepest = dirs.iter().map(depth).max().unwrap_or(0);
    for level in 0..=deepest {
        let mut made: FuturesUnordered<_> = dirs
            .iter()
            .filter(|i| i.there.is_none() && depth(i) == level)
            .map(|i| fs.mkdir(&i.target, 0o700))
            .collect();
        while let Some(r) = made.next().await {
            r?;
        }
    }
    Ok(())
}

/// Writes one file to its partial (extending a verified one), reads it
/// back to verify, then gives it its mode and mtime and its final name.
async fn push_file(
    fs: &Files<'_>,
    item: &Item<'_>,
    flush: bool,
    meter: &RefCell<Meter<'_>>,
) -> Result<()> {
    let size = item.entry.size;
    let partial = partial_beside(&item.target);
    let mut resume = item.partial.filter(|p| *p > 0 && *p <= size);
    for _attempt in 0..2 {
        let (offset, mut sum) = match resume.take() {
            Some(p) => {
                let prefix =
                    file_sum(&item.local, Some(p)).map_err(|e| local_error(&item.local, e))?;
                let there = fs.sum(&partial, p).await?;
                if there.sum() == prefix.sum() {
                    meter.borrow_mut().kept(p);
                    (p, prefix)
                } else {
                    (0, Cksum::default())
                }
            }
            None => (0, Cksum::default()),
        };
        let mut file = std::fs::File::open(&item.local).map_err(|e| local_error(&item.local, e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| local_error(&item.local, e))?;
        if item.partial.is_some() {
            // A run cut between giving the partial its final mode and the
            // rename left it read-only, maybe: writable again first.
            fs.set_attrs(&partial, 0o600, None).await?;
        }
        let handle = fs.open_write(&partial, offset > 0).await?;
        let written = async {
            fs.write_from(
                &handle,
                &partial,
                &mut file,
                offset,
                size - offset,
                &mut sum,
                meter,
            )
            .await?;
            let (now, _) = fs.fstat(&handle, &partial).await?;
            Ok::<u64, CoreError>(now)
        }
        .await;
        let closed = fs.close(&handle, &partial, flush).await;
        let now = written?;
        closed?;
        let back = fs.sum(&partial, size).await?;
        if now == size && back.sum() == sum.sum() {
            fs.set_attrs(&partial, item.entry.mode, Some(item.entry.mtime))
                .await?;
            if let Err(e) = fs.replace(&partial, &item.target).await {
                // Partials stay writable (0600) until they are renamed.
                let _ = fs.set_attrs(&partial, 0o600, None).await;
                return Err(e);
            }
            return Ok(());
        }
        if offset == 0 {
            break;
        }
        // The resumed copy does not read back right after all: start over.
    }
    fs.remove(&partial).await?;
    Err(CoreError::Protocol {
        host: fs.host.into(),
        message: format!(
            "'{}' arrived damaged (checksum mismatch reading it back; was '{}' changing?)",
            item.target,
            item.local.display()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sftp_paths_are_relative_to_the_login_directory() {
        assert_eq!(sftp_path("~"), ".");
        assert_eq!(sftp_path("~/a/b"), "a/b");
        assert_eq!(sftp_path("a"), "a");
        assert_eq!(sftp_path("/x/y"), "/x/y");
        assert_eq!(sftp_path("~//x"), "x");
        assert_eq!(sftp_path("~/"), ".");
    }
}
