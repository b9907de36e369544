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

use crate::error::{CoreError, Result};
use crate::paths::{remote_word, symlink_stays_inside};
use crate::shell::quote;
use crate::transfer::checksum::{Cksum, Sum, file_sum};
use crate::transfer::landing::{
    Checked, already_there, finish_partial, io_error, land, land_all, landing_name,
    local_destination, make_durable, open_for_writing, open_partial, partial_for, refuse,
    restore_modes, safe_dir,
};
use crate::transfer::listing::{self, Entry, FIND_FORMAT, Kind};
use crate::transfer::plan::{PulledName, pulled_name};
use crate::transfer::progress::{Meter, Progress};
use crate::transfer::streamio::StreamReader;
use crate::transfer::{BIG_FILE, Summary, remote_failure};
use crate::transport::Transport;

/// Ends a pulled batch's archive; the host's checksums follow it.
const SUMS_MARK: &str = "BELAY-SUMS-FOLLOW";
/// After the sum: tar saw files change while it read them.
const CHANGED_MARK: &str = "BELAY-FILES-CHANGED";

/// One thing to fetch.
#[derive(Clone)]
struct Item {
    entry: Entry,
    /// Name relative to the remote base directory (what scripts use).
    remote: String,
    /// Path relative to the local destination root (empty: the root).
    local_rel: PathBuf,
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
    let mut fresh = false;
    if tree {
        match fs::symlink_metadata(&dest) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(CoreError::BadInput(format!(
                    "'{}' exists and is not a directory",
                    dest.display()
                )));
            }
            Err(_) => {
                fs::create_dir(&dest).map_err(|e| io_error(&dest, e))?;
                fresh = true;
            }
        }
    }

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
        match e.kind {
            Kind::Dir => dirs.push(item),
            Kind::Symlink => {
                if symlink_stays_inside(&item.local_rel, &e.link) {
                    small.push(item);
                } else {
                    refuse(
                        summary,
                        progress,
                        &e.rel,
                        "symlink pointing outside the destination",
                    );
                }
            }
            Kind::Other => refuse(
                summary,
                progress,
                &e.rel,
                "not a regular file, directory or symlink",
            ),
            Kind::File => {
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
    let script = format!(
        r#"cd "$HOME" || exit 1
s={word}
if [ -e "$s" ]; then
  printf '%s\0' "$(cd -- "$(dirname -- "$s")" && pwd -P)/$(basename -- "$s")"
  find -H "$s" -printf {FIND_FORMAT}
else exit 3; fi"#
    );
    let out = t.run_script(&script)?;
    if out.status == 3 {
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
    let mut stream = t.open_stream(&batch_script(remote_base))?;
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
        receive_batch(reader, t.host(), &wanted, dest, meter, summary, checked)
    })
}

/// The host's side of a batch: tar of the names on stdin (kept in a file
/// first: while tar's output waits to be read, nothing reads our input,
/// so input and output never wait on each other). The host sums
/// the archive as tar writes it (tee into a fifo: no second pass over its
/// files) and sends the sum after it; the sum of what arrived must match.
/// It covers every byte of every file and every header naming them. (Big
/// files are summed one by one.) A file that changed while tar read it
/// (tar's status 1: a live log, a checkpoint being written) is no failure:
/// the archive holds what tar read, consistently; `changed` after the sum
/// says so.
fn batch_script(remote_base: &str) -> String {
    format!(
        r#"cd {base} || exit 1
d=$(mktemp -d "${{TMPDIR:-/tmp}}/belay-pull.XXXXXX") || exit 1
trap 'rm -rf "$d"' 0
cat > "$d/names" || exit 1
mkfifo "$d/f" || exit 1
cksum < "$d/f" > "$d/sum" &
{{ tar -cf - --no-recursion --hard-dereference --null -T "$d/names" 2>"$d/err"; echo $? > "$d/st"; }} | tee "$d/f" || exit 1
wait $! || exit 1
st=$(cat "$d/st")
[ "$st" -le 1 ] || {{ cat "$d/err" >&2; exit 1; }}
printf '\n{SUMS_MARK}\n'
cat "$d/sum"
[ "$st" = 0 ] || echo {CHANGED_MARK}"#,
        base = quote(remote_base),
    )
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

fn receive_batch(
    reader: &mut StreamReader,
    host: &str,
    wanted: &HashMap<&str, &Item>,
    dest: &Path,
    meter: &mut Meter,
    summary: &mut Summary,
    checked: &mut Checked,
) -> Result<()> {
    let proto = |m: String| CoreError::Protocol {
        host: host.to_string(),
        message: m,
    };
    // Files are verified and renamed once the whole batch is on disk and
    // the host's sums are in (see make_durable).
    let mut written: Vec<(PathBuf, PathBuf, u32)> = Vec::new();
    let mut links: Vec<(String, PathBuf, PathBuf)> = Vec::new();
    // Files whose archived size or mtime is not what the listing saw.
    let mut changed: Vec<String> = Vec::new();
    // One buffer for the whole batch: a small file goes to disk in one
    // write. Bounded, whatever size the (untrusted) archive claims.
    let mut data = Vec::new();
    let mut archive = tar::Archive::new(&mut *reader);
    let mut entries = archive
        .entries()
        .map_err(|e| proto(format!("reading the archive: {e}")))?
        .raw(true);
    while let Some(named) = next_named(&mut entries) {
        let Named {
            path,
            link,
            mut entry,
        } = named.map_err(|e| proto(format!("reading the archive: {e}")))?;
        let raw = String::from_utf8_lossy(&path).into_owned();
        let name = raw.strip_prefix("./").unwrap_or(&raw).to_string();
        let Some(item) = wanted.get(name.as_str()) else {
            refuse(
                summary,
                meter.progress,
                &raw,
                "not an entry that was asked for",
            );
            continue;
        };
        match entry.header().entry_type() {
            tar::EntryType::Regular if item.entry.kind == Kind::File => {
                let (partial, target) = partial_for(dest, &item.local_rel, checked)?;
                let mut file = open_partial(&partial, false)?;
                // Mode and mtime as tar read the file (it may have changed
                // since the listing; the archive's sum covers what came).
                let mut landed = item.entry.clone();
                let header = entry.header();
                landed.mtime = header.mtime().map_or(landed.mtime, |m| m as i64);
                landed.mode = header.mode().map_or(landed.mode, |m| m & 0o777);
                let size = header.size().unwrap_or(landed.size);
                if landed.mtime != item.entry.mtime || size != item.entry.size {
                    changed.push(name.clone());
                }
                loop {
                    data.clear();
                    let n = (&mut entry)
                        .take(1 << 20)
                        .read_to_end(&mut data)
                        .map_err(|e| proto(format!("reading '{name}': {e}")))?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&data).map_err(|e| io_error(&partial, e))?;
                    meter.moved(n as u64);
                }
                finish_partial(&partial, &landed, &file)?;
                drop(file);
                written.push((partial, target, landed.mode));
            }
            tar::EntryType::Symlink if item.entry.kind == Kind::Symlink => {
                let link = String::from_utf8_lossy(&link.unwrap_or_default()).into_owned();
                if !symlink_stays_inside(&item.local_rel, &link) {
                    refuse(
                        summary,
                        meter.progress,
                        &name,
                        "symlink pointing outside the destination",
                    );
                    continue;
                }
                let (partial, target) = partial_for(dest, &item.local_rel, checked)?;
                links.push((link, partial, target));
            }
            other => refuse(
                summary,
                meter.progress,
                &name,
                &format!(
                    "archive entry of type {other:?} where a {:?} was listed",
                    item.entry.kind
                ),
            ),
        }
    }
    // After the archive: the rest of tar's zero padding, the marker line,
    // the host's sum of the whole archive, and whether tar saw files change.
    let mut archive_sum = reader.read_sum.clone();
    let mut marked = false;
    let mut there = None;
    let mut tar_saw_changes = false;
    while let Some(line) = reader
        .line()
        .map_err(|e| proto(format!("reading the checksum: {e}")))?
    {
        if there.is_some() {
            if line == CHANGED_MARK.as_bytes() && !tar_saw_changes {
                tar_saw_changes = true;
                continue;
            }
            return Err(proto("unexpected data after the checksum".into()));
        }
        if marked {
            there = Some(Sum::parse(&String::from_utf8_lossy(&line)));
        } else if line == SUMS_MARK.as_bytes() {
            marked = true;
        } else if line.iter().all(|b| *b == 0) {
            archive_sum.update(&line);
        } else {
            return Err(proto("unexpected data after the archive".into()));
        }
    }
    if there != Some(Some(archive_sum.sum())) {
        for (p, ..) in &written {
            let _ = fs::remove_file(p);
        }
        return Err(proto(format!(
            "a batch of {} files for '{}' arrived damaged (checksum mismatch); run the same command again",
            wanted.len(),
            dest.display()
        )));
    }
    for name in &changed {
        meter.progress.warn(&format!(
            "'{}' changed on {host} since it was listed: copied as it was read; run again for what it is now",
            name.escape_debug()
        ));
    }
    if tar_saw_changes && changed.is_empty() {
        meter.progress.warn(&format!(
            "files for '{}' changed on {host} while they were read: copied as they were read; run again for what they are now",
            dest.display()
        ));
    }
    make_durable(&written)?;
    for (link, partial, target) in &links {
        let _ = fs::remove_file(partial);
        std::os::unix::fs::symlink(link, partial).map_err(|e| io_error(partial, e))?;
        fs::rename(partial, target).map_err(|e| io_error(target, e))?;
    }
    let (landed, result) = land_all(&written);
    summary.files_transferred += landed;
    for _ in 0..landed {
        meter.progress.file_done();
    }
    result
}

/// The most bytes a GNU long name or link (`L`, `K`) or a PAX header
/// (`x`) may hold: far above any real path, and what stops a hostile host
/// from making us hold gigabytes in memory for one "name".
pub(super) const NAME_RECORD_LIMIT: u64 = 64 * 1024;

/// An archive member with the names its extension headers give it.
pub(super) struct Named<'a, R: Read> {
    pub path: Vec<u8>,
    pub link: Option<Vec<u8>>,
    pub entry: tar::Entry<'a, R>,
}

/// The next member of a raw archive, with GNU long names and links and
/// PAX `path`/`linkpath` applied by us (the tar crate would read any size
/// of them into memory), each bounded by [`NAME_RECORD_LIMIT`].
pub(super) fn next_named<'a, R: Read>(
    entries: &mut tar::Entries<'a, R>,
) -> Option<std::io::Result<Named<'a, R>>> {
    let (mut long_path, mut long_link) = (None, None);
    loop {
        let mut entry = match entries.next()? {
            Ok(e) => e,
            Err(e) => return Some(Err(e)),
        };
        let kind = entry.header().entry_type();
        if !(kind.is_gnu_longname() || kind.is_gnu_longlink() || kind.is_pax_local_extensions()) {
            let path = long_path.unwrap_or_else(|| entry.path_bytes().into_owned());
            let link = long_link.or_else(|| entry.link_name_bytes().map(|l| l.into_owned()));
            return Some(Ok(Named { path, link, entry }));
        }
        let mut record = Vec::new();
        if let Err(e) = (&mut entry)
            .take(NAME_RECORD_LIMIT + 1)
            .read_to_end(&mut record)
        {
            return Some(Err(e));
        }
        if record.len() as u64 > NAME_RECORD_LIMIT {
            return Some(Err(std::io::Error::other(format!(
                "a {kind:?} header of over {} KiB (hostile or broken archive)",
                NAME_RECORD_LIMIT / 1024
            ))));
        }
        if kind.is_pax_local_extensions() {
            for ext in tar::PaxExtensions::new(&record) {
                match ext {
                    Ok(x) if x.key_bytes() == b"path" => long_path = Some(x.value_bytes().to_vec()),
                    Ok(x) if x.key_bytes() == b"linkpath" => {
                        long_link = Some(x.value_bytes().to_vec())
                    }
                    Ok(_) => {}
                    Err(e) => return Some(Err(e)),
                }
            }
        } else {
            if record.last() == Some(&0) {
                record.pop();
            }
            if kind.is_gnu_longname() {
                long_path = Some(record);
            } else {
                long_link = Some(record);
            }
        }
    }
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
    let remote_file = if item.remote.is_empty() {
        remote_base.to_string()
    } else if remote_base == "/" {
        format!("/{}", item.remote)
    } else {
        format!("{remote_base}/{}", item.remote)
    };
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
        let n = item.entry.size;
        let script = format!(
            "f={}\n[ -f \"$f\" ] || {{ echo \"$f vanished\" >&2; exit 3; }}\nhead -c {n} \"$f\" | cksum || exit 1\nif [ {p} -gt 0 ] && [ \"$(head -c {p} \"$f\" | cksum)\" = {} ]; then echo resume; tail -c +{} \"$f\" | head -c {}; else echo restart; head -c {n} \"$f\"; fi",
            quote(&remote_file),
            quote(&expect),
            p + 1,
            n.saturating_sub(p)
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw header block of `kind` claiming `size` bytes, named `name`.
    fn header(kind: tar::EntryType, name: &str, size: u64) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_path(name).unwrap();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    /// Each member's path and link target.
    type Names = Vec<(Vec<u8>, Option<Vec<u8>>)>;

    fn names_in(archive: &[u8]) -> std::io::Result<Names> {
        let mut a = tar::Archive::new(archive);
        let mut entries = a.entries()?.raw(true);
        let mut out = Vec::new();
        while let Some(n) = next_named(&mut entries) {
            let n = n?;
            out.push((n.path, n.link));
        }
        Ok(out)
    }

    #[test]
    fn an_oversized_gnu_long_name_is_an_error_not_a_gigabyte_in_memory() {
        // The header claims 1 GiB of name; 70 KiB follow, then the end.
        let mut archive = header(tar::EntryType::GNULongName, "././@LongLink", 1 << 30);
        archive.extend(vec![b'a'; 70 * 1024]);
        let err = names_in(&archive).unwrap_err().to_string();
        assert!(err.contains("over 64 KiB"), "{err}");
        // The same for a PAX header.
        let mut archive = header(tar::EntryType::XHeader, "pax", 1 << 30);
        archive.extend(vec![b'a'; 70 * 1024]);
        let err = names_in(&archive).unwrap_err().to_string();
        assert!(err.contains("over 64 KiB"), "{err}");
    }

    #[test]
    fn long_names_and_links_from_gnu_tar_are_applied() {
        let long = format!("./{}/{}/file", "d".repeat(200), "e".repeat(200));
        let target = "t".repeat(200);
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join(&long[2..]);
        fs::create_dir_all(deep.parent().unwrap()).unwrap();
        fs::write(&deep, b"x").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("link")).unwrap();
        let out = std::process::Command::new("tar")
            .args(["-cf", "-", "--no-recursion", "--", &long, "./link"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        let names = names_in(&out.stdout).unwrap();
        assert_eq!(names[0].0, long.as_bytes());
        assert_eq!(names[1].0, b"./link");
        assert_eq!(names[1].1.as_deref(), Some(target.as_bytes()));
    }

    #[test]
    fn the_batch_script_reads_names_from_stdin_and_tolerates_files_that_change() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a b"), b"one").unwrap();
        fs::write(dir.path().join("c"), b"two").unwrap();
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(batch_script(dir.path().to_str().unwrap()))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"./a b\0./c\0")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(SUMS_MARK), "{text}");
        assert!(!text.contains(CHANGED_MARK), "nothing changed: {text}");
        let names = names_in(&out.stdout).unwrap();
        assert_eq!(names.len(), 2);
        assert_eq!(names[0].0, b"./a b");
    }
}
