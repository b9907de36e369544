//! Pull: a remote file or tree into a local destination. The host's
//! listing and archive are untrusted: every name is checked before it
//! touches the disk ([`crate::paths`]), nothing is written through a
//! symlink, and each file is written as `.NAME.belay-part`, verified
//! against the host's checksum, then renamed with its mode and mtime.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{archive, scripts};
use crate::error::{CoreError, Result};
use crate::paths::{join, remote_word};
use crate::transfer::checksum::{Cksum, Sum, file_sum};
use crate::transfer::landing::{
    Checked, already_there, io_error, land, landing_name, local_destination, open_for_writing,
    open_partial, partial_for, refuse, restore_modes, safe_dir, tree_destination,
};
use crate::transfer::listing::{self, Entry, Kind};
use crate::transfer::plan::{PulledKind, PulledName, pulled_kind, pulled_name};
use crate::transfer::progress::{Meter, Progress};
use crate::transfer::streamio::StreamReader;
use crate::transfer::{BIG_FILE, Summary, remote_failure};
use crate::transport::Transport;

/// One thing to fetch.
#[derive(Clone)]
pub(super) struct Item {
    pub(super) entry: Entry,
    /// Name relative to the remote base directory (what scripts use).
    pub(super) remote: String,
    /// Path relative to the local destination root (empty: the root).
    pub(super) local_rel: PathBuf,
}

pub(crate) fn run(
    t: &dyn Transport,
    remote: &str,
    local: &Path,
    progress: &mut dyn Progress,
    summary: &mut Summary,
) -> Result<()> {
    let (src_abs, entries) = list_source(t, remote)?;
    let root = entries.first().ok_or_else(|| CoreError::Protocol {
        host: t.host().into(),
        message: format!("empty listing for '{remote}'"),
    })?;
    if !matches!(root.kind, Kind::File | Kind::Dir) {
        return Err(CoreError::BadInput(format!(
            "'{remote}' on {} is not a regular file or directory",
            t.host()
        )));
    }
    // The name the copy lands under comes from what the user typed, never
    // from the host's answer: a hostile host must not pick `.bashrc`.
    let landing = landing_name(remote, &src_abs);
    let dest = local_destination(local, landing.as_deref(), remote)?;
    // The source's own name on the host, for the host's scripts only.
    let src_base = src_abs.rsplit('/').next().unwrap_or_default().to_string();
    summary.destination = dest.display().to_string();
    let tree = root.kind == Kind::Dir;
    let remote_base = if tree {
        src_abs.clone()
    } else {
        crate::paths::parent(&src_abs).to_string()
    };
    // A tree destination this run creates holds nothing yet: no file in it
    // needs looking at to know it is not complete.
    let fresh = tree && tree_destination(&dest)?;

    let (mut small, mut big, mut dirs) = (Vec::new(), Vec::new(), Vec::new());
    summary.files = 0;
    summary.bytes = 0;
    summary.files_skipped = 0;
    summary.refused.clear();
    let mut to_copy = 0;
    for (i, e) in entries.iter().enumerate() {
        if i > 0 && (!tree || e.rel.is_empty()) {
            // A file has no entries below it, and only the first is the
            // root: anything else is a listing we did not ask for.
            refuse(summary, progress, &e.rel, "not part of what was asked for");
            continue;
        }
        let item = if i == 0 {
            Item {
                entry: e.clone(),
                remote: if tree {
                    String::new()
                } else {
                    src_base.clone()
                },
                local_rel: PathBuf::new(),
            }
        } else {
            match pulled_name(&e.rel, e.name_not_utf8) {
                PulledName::Lands(rel) => Item {
                    entry: e.clone(),
                    remote: e.rel.clone(),
                    local_rel: rel,
                },
                PulledName::Temporary => continue,
                PulledName::Refused(why) => {
                    refuse(summary, progress, &e.rel, why);
                    continue;
                }
            }
        };
        match pulled_kind(e, &item.local_rel) {
            Ok(PulledKind::Dir) => dirs.push(item),
            Ok(PulledKind::Link) => small.push(item),
            Err(why) => refuse(summary, progress, &e.rel, why),
            Ok(PulledKind::File) => {
                summary.files += 1;
                summary.bytes += e.size;
                let target = if item.local_rel.as_os_str().is_empty() {
                    dest.clone()
                } else {
                    dest.join(&item.local_rel)
                };
                let complete = !fresh && already_there(&target, e);
                if complete {
                    summary.files_skipped += 1;
                } else {
                    to_copy += e.size;
                    if e.size >= BIG_FILE {
                        big.push(item);
                    } else {
                        small.push(item);
                    }
                }
            }
        }
    }
    progress.begin(
        (small.iter().filter(|i| i.entry.kind == Kind::File).count() + big.len()) as u64,
        to_copy,
    );

    let mut meter = Meter::new(progress);
    let mut checked = Checked::new();
    // Directories of an earlier copy that are read-only (0555) are opened
    // for writing while this run fills them (a non-root user could not),
    // and get their modes back whatever happens.
    let mut opened: Vec<(PathBuf, u32)> = Vec::new();
    let result: Result<()> = (|| {
        for d in &dirs {
            let path = safe_dir(&dest, &d.local_rel, &mut checked)?;
            open_for_writing(&path, &mut opened)?;
        }
        for batch in crate::transfer::plan::batches(&small, |i| i.entry.size) {
            pull_batch(
                t,
                &remote_base,
                &dest,
                batch,
                &mut meter,
                summary,
                &mut checked,
            )?;
        }
        for item in &big {
            pull_big(
                t,
                &remote_base,
                &dest,
                item,
                &mut meter,
                summary,
                &mut checked,
            )?;
        }
        // Directory modes last: a read-only directory is filled first.
        for d in dirs.iter().rev() {
            let path = dest.join(&d.local_rel);
            fs::set_permissions(&path, fs::Permissions::from_mode(d.entry.mode & 0o777))
                .map_err(|e| io_error(&path, e))?;
        }
        Ok(())
    })();
    if result.is_err() {
        restore_modes(&opened);
    }
    summary.bytes_sent += meter.sent;
    // Refused entries are in the summary; the caller decides what they
    // mean (the CLI exits 1 after printing it).
    result
}

/// The source's absolute path and its listing.
fn list_source(t: &dyn Transport, remote: &str) -> Result<(String, Vec<Entry>)> {
    let word = remote_word(remote);
    let script = scripts::list_source(&word);
    let out = t.run_script(&script)?;
    if out.status == scripts::SOURCE_MISSING {
        return Err(CoreError::BadInput(format!(
            "no such file or directory '{remote}' on {}",
            t.host()
        )));
    }
    if out.status != 0 {
        return Err(remote_failure(
            t.host(),
            &format!("cannot list '{remote}'"),
            &out.stderr,
        ));
    }
    let split = out.stdout.iter().position(|b| *b == 0).unwrap_or(0);
    let abs = String::from_utf8_lossy(&out.stdout[..split]).into_owned();
    let abs = abs.replace("//", "/");
    let entries =
        listing::parse_find(&out.stdout[(split + 1).min(out.stdout.len())..]).map_err(|m| {
            CoreError::Protocol {
                host: t.host().into(),
                message: format!("listing '{remote}': {m}"),
            }
        })?;
    Ok((abs, entries))
}

fn pull_batch(
    t: &dyn Transport,
    remote_base: &str,
    dest: &Path,
    batch: &[Item],
    meter: &mut Meter,
    summary: &mut Summary,
    checked: &mut Checked,
) -> Result<()> {
    // The names go to tar on stdin, NUL-separated: no argument limit,
    // however many names a batch holds or however long they are.
    let mut names = Vec::new();
    for i in batch {
        names.extend_from_slice(b"./");
        names.extend_from_slice(i.remote.as_bytes());
        names.push(0);
    }
    let mut stream = t.open_stream(&scripts::pack_batch(remote_base))?;
    if let Err(e) = stream.write_all(&names).and_then(|()| stream.close_input()) {
        // The script ended before reading its names (`cd` failed): its own
        // error says why, not the broken pipe.
        let out = stream.finish()?;
        if out.status != 0 {
            return Err(remote_failure(
                t.host(),
                &format!("cannot read '{remote_base}'"),
                &out.stderr,
            ));
        }
        return Err(e.into());
    }
    let wanted: HashMap<&str, &Item> = batch.iter().map(|i| (i.remote.as_str(), i)).collect();
    receive(t, stream, remote_base, |reader| {
        archive::receive_batch(reader, t.host(), &wanted, dest, meter, summary, checked)
    })
}

/// Reads a script's output with `read`, then ends the stream: a lost link
/// stays a (retryable) transport error, a failure on our side (a full
/// disk) stops the host at once, and the host's own failure is reported
/// with its stderr.
fn receive<T>(
    t: &dyn Transport,
    mut stream: Box<dyn crate::transport::DataStream>,
    what: &str,
    read: impl FnOnce(&mut StreamReader) -> Result<T>,
) -> Result<T> {
    let received = {
        let mut reader = StreamReader::new(stream.as_mut());
        let r = read(&mut reader);
        match (r, reader.failed.take()) {
            (Err(_), Some(te)) => Err(CoreError::Transport(te)),
            (r, _) => r,
        }
    };
    if let Err(e @ CoreError::Io { .. }) = received {
        stream.abort();
        return Err(e);
    }
    let out = stream.finish()?;
    if out.status != 0 {
        return Err(remote_failure(
            t.host(),
            &format!("cannot read '{what}'"),
            &out.stderr,
        ));
    }
    received
}

fn pull_big(
    t: &dyn Transport,
    remote_base: &str,
    dest: &Path,
    item: &Item,
    meter: &mut Meter,
    summary: &mut Summary,
    checked: &mut Checked,
) -> Result<()> {
    let (partial, target) = partial_for(dest, &item.local_rel, checked)?;
    let remote_file = join(remote_base, &item.remote);
    let mut allow_resume = true;
    for _attempt in 0..2 {
        let have = fs::symlink_metadata(&partial)
            .ok()
            .filter(|m| m.is_file() && allow_resume)
            .map(|m| m.len())
            .filter(|n| *n > 0 && *n <= item.entry.size);
        let prefix = match have {
            Some(n) => Some(file_sum(&partial, Some(n)).map_err(|e| io_error(&partial, e))?),
            None => None,
        };
        let (p, expect) = match &prefix {
            Some(c) => (c.len(), c.sum().to_string()),
            None => (0, String::new()),
        };
        // The size the listing saw, no more: a live log that grows while
        // it is read is copied as listed (its first bytes do not change).
        let script = scripts::send_big(&remote_file, item.entry.size, p, &expect);
        let mut stream = t.open_stream(&script)?;
        stream.close_input()?;
        let (file, got, whole, _) = receive(t, stream, &remote_file, |reader| {
            receive_big(reader, t.host(), &partial, prefix, meter, summary)
        })?;
        if got == whole {
            land(&partial, &target, &item.entry, file)?;
            summary.files_transferred += 1;
            meter.progress.file_done();
            return Ok(());
        }
        drop(file);
        let _ = fs::remove_file(&partial);
        // Tried once more from the start: a resumed partial may have been
        // the wrong one, or the file was being rewritten.
        allow_resume = false;
    }
    // Twice a different file from what its sum said: it is being rewritten
    // (a checkpoint). The rest of the copy goes on; this one is named.
    let name = if item.entry.rel.is_empty() {
        &remote_file
    } else {
        &item.entry.rel
    };
    refuse(
        summary,
        meter.progress,
        name,
        &format!(
            "'{remote_file}' kept changing while it was read: not copied; run again when it is still"
        ),
    );
    Ok(())
}

/// Receives one big file into its partial: (file, our sum, host's sum,
/// whether the partial was extended).
fn receive_big(
    reader: &mut StreamReader,
    host: &str,
    partial: &Path,
    prefix: Option<Cksum>,
    meter: &mut Meter,
    summary: &mut Summary,
) -> Result<(File, Sum, Sum, bool)> {
    let proto = |m: String| CoreError::Protocol {
        host: host.to_string(),
        message: m,
    };
    let head = reader
        .line()
        .map_err(|e| proto(format!("reading '{}': {e}", partial.display())))?
        .unwrap_or_default();
    let whole = Sum::parse(&String::from_utf8_lossy(&head))
        .ok_or_else(|| proto("the host sent no checksum".into()))?;
    let mode = reader
        .line()
        .map_err(|e| proto(format!("reading '{}': {e}", partial.display())))?
        .unwrap_or_default();
    let resumed = mode == b"resume";
    let (mut file, mut sum) = match (resumed, prefix) {
        (true, Some(c)) => {
            meter.kept(c.len());
            summary.bytes_resumed += c.len();
            (open_partial(partial, true)?, c)
        }
        _ => (open_partial(partial, false)?, Cksum::default()),
    };
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| proto(format!("reading '{}': {e}", partial.display())))?;
        if n == 0 {
            break;
        }
        sum.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| io_error(partial, e))?;
        meter.moved(n as u64);
    }
    Ok((file, sum.sum(), whole, resumed))
}
