//! Push: a local file or tree onto the host. Small files go in tar batches
//! into a staging directory beside the destination, are verified there and
//! then moved into place (one `mv` per directory); big files are appended
//! to `.NAME.belay-part` on the host, verified, then renamed. Where the
//! copy lands is decided in [`crate::transfer::destination`] from one
//! lookup script; the scripts themselves are built in [`super::scripts`].

use std::io::{Read, Seek, SeekFrom};

use super::{run_checked, scripts};
use crate::error::{CoreError, Result};
use crate::paths::{is_temporary, join, partial_beside, partial_name, remote_word};
use crate::transfer::checksum::{Cksum, Sum, file_sum};
use crate::transfer::destination::{self, Destination};
use crate::transfer::listing::{self, Entry, Kind};
use crate::transfer::plan::{Step, batches, plan_push};
use crate::transfer::progress::{Meter, Progress};
use crate::transfer::source::{local_base_name, local_error, refuse_unless_pushable};
use crate::transfer::streamio::{StreamWriter, finish_with_output};
use crate::transfer::{PushRequest, Summary, remote_failure};
use crate::transport::Transport;

/// One thing to place on the host.
type Item<'a> = Step<'a>;

/// Carries out one push (see [`PushRequest`]).
pub(crate) fn run(
    t: &dyn Transport,
    request: PushRequest,
    progress: &mut dyn Progress,
    summary: &mut Summary,
) -> Result<()> {
    let (local, remote, exact) = (request.local, request.remote, request.exact);
    let root_kind = listing::kind_of(&std::fs::metadata(local).map_err(|e| local_error(local, e))?);
    refuse_unless_pushable(local, root_kind)?;
    let local_base = local_base_name(local)?;
    let tree = root_kind == Kind::Dir;
    // The tree is walked while the host is reached (the first script
    // connects) and asked where the copy goes and what is there already.
    let (walked, there) = std::thread::scope(|s| {
        let walk = s.spawn(|| listing::walk_local(local));
        let there = resolve_destination(t, remote, &local_base, root_kind, exact).and_then(
            |(dest, listed)| match listed {
                Some(entries) => Ok((dest, entries)),
                None => list_remote(t, &dest).map(|entries| (dest, entries)),
            },
        );
        let walked = walk
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (walked, there)
    });
    let entries = walked.map_err(|e| local_error(local, e))?;
    let (dest, remote_entries) = there?;
    let root = &entries[0];
    if root.kind != root_kind {
        return Err(CoreError::BadInput(format!(
            "'{}' changed while being copied",
            local.display()
        )));
    }
    summary.destination = dest.path.clone();

    // The base directory everything is named relative to on the host.
    let base = if tree {
        dest.path.clone()
    } else {
        dest.parent.clone()
    };
    clear_stale_stages(t, &base, &remote_entries)?;
    let single = (!tree).then_some(dest.base.as_str());
    let plan = plan_push(local, &entries, single, &remote_entries);
    for warning in &plan.warnings {
        progress.warn(warning);
    }
    summary.files = plan.files;
    summary.bytes = plan.bytes;
    summary.files_skipped = plan.skipped;
    let (small, big, dirs) = (&plan.small, &plan.big, &plan.dirs);
    progress.begin((small.len() + big.len()) as u64, plan.to_copy);

    // Directories of an earlier copy that are read-only (0555) are opened
    // for writing first (a non-root user could not fill them); the modes
    // set at the end close them again.
    let locked: Vec<String> = dirs
        .iter()
        .filter(|d| d.there == Some(Kind::Dir) && d.there_mode.is_some_and(|m| m & 0o300 != 0o300))
        .map(|d| join(&base, &d.name))
        .collect();
    run_dir_script(t, &base, &scripts::open_dirs(&locked))?;
    let mut meter = Meter::new(progress);
    let result = (|| {
        // Small files first: directories still missing at the destination
        // then arrive whole from the staging area (see `place`).
        for batch in batches(small, |i| i.entry.size) {
            push_batch(t, &base, batch, &mut meter, summary)?;
        }
        // Directory modes last (a read-only directory is filled first); with
        // no big files to come, in the same round trip as the mkdirs.
        let paths: Vec<String> = dirs.iter().map(|d| join(&base, &d.name)).collect();
        let mkdirs = scripts::make_dirs(&paths);
        let modes = scripts::dir_modes(paths.into_iter().zip(dirs.iter().map(|d| d.entry.mode)));
        if big.is_empty() {
            return run_dir_script(t, &base, &(mkdirs + &modes));
        }
        run_dir_script(t, &base, &mkdirs)?;
        for item in big {
            push_big(t, &base, item, item.partial, &mut meter, summary)?;
        }
        run_dir_script(t, &base, &modes)
    })();
    summary.bytes_sent += meter.sent;
    result
}

/// `cp -r` rules ([`crate::transfer::destination`]) on what one script
/// finds at the destination. For a tree, the same script lists what is
/// already there (one round trip, not two): `Some(entries)` then, empty
/// when nothing is there yet.
fn resolve_destination(
    t: &dyn Transport,
    remote: &str,
    local_base: &str,
    kind: Kind,
    exact: bool,
) -> Result<(Destination, Option<Vec<Entry>>)> {
    let list_under = (kind == Kind::Dir).then_some(if exact { "" } else { local_base });
    // `DEST/` means "into this directory": made if missing, in this same
    // step. Without the slash, cp's rule stays (the parent must exist).
    let make_missing = remote.ends_with('/') && !exact;
    let script = scripts::destination_lookup(&remote_word(remote), make_missing, list_under);
    let out = t.run_script(&script)?;
    let failed = match out.status {
        0 => None,
        scripts::LOOKUP_CANNOT_LIST => Some(format!("cannot list '{remote}'")),
        scripts::LOOKUP_CANNOT_CREATE => Some(format!("cannot create directory '{remote}'")),
        _ => Some(format!("cannot look up '{remote}'")),
    };
    if let Some(what) = failed {
        return Err(remote_failure(t.host(), &what, &out.stderr));
    }
    let mut f = out.stdout.splitn(3, |b| *b == 0);
    let mut field = || String::from_utf8_lossy(f.next().unwrap_or_default()).into_owned();
    let (found, path) = (field(), field());
    let rest = f.next().unwrap_or_default();
    let host = t.host();
    let dest = match found.as_str() {
        "dir" => {
            destination::into_existing_directory(&path, remote, local_base, kind, exact, host)?
        }
        found @ ("file" | "absent" | "noparent") => {
            destination::refuse_before_parent(remote, kind, found == "file", host)?;
            if found == "noparent" {
                return Err(destination::parent_must_exist(&path, host));
            }
            destination::as_the_named_path(&path, remote, local_base)
        }
        other => {
            return Err(CoreError::Protocol {
                host: host.to_string(),
                message: format!("unexpected answer '{other}' looking up '{remote}'"),
            });
        }
    };
    // A tree's listing came along; an absent destination has none.
    let listed = match list_under {
        Some(_) => Some(listing::parse_find(rest).map_err(|m| CoreError::Protocol {
            host: host.to_string(),
            message: format!("listing '{}': {m}", dest.path),
        })?),
        None => None,
    };
    Ok((dest, listed))
}

/// What is beside a single file's destination: the file, its partial and
/// stale staging directories. (A tree's listing comes with
/// [`resolve_destination`].)
fn list_remote(t: &dyn Transport, dest: &Destination) -> Result<Vec<Entry>> {
    let script = scripts::list_beside(&dest.parent, &dest.base, &partial_name(&dest.base));
    let out = run_checked(t, &script, || format!("cannot list '{}'", dest.path))?;
    listing::parse_find(&out.stdout).map_err(|m| CoreError::Protocol {
        host: t.host().to_string(),
        message: format!("listing '{}': {m}", dest.path),
    })
}

/// Staging directories left by an interrupted run are ours to remove —
/// once they are a day old: a younger one may belong to a push running
/// right now into the same directory (`xargs -P` pushes are normal).
fn clear_stale_stages(t: &dyn Transport, base: &str, there: &[Entry]) -> Result<()> {
    let stages: Vec<String> = there
        .iter()
        .filter(|e| e.kind == Kind::Dir && !e.rel.contains('/') && is_temporary(&e.rel))
        .map(|e| format!("{base}/{}", e.rel))
        .collect();
    if stages.is_empty() {
        return Ok(());
    }
    run_checked(t, &scripts::clear_stale_stages(&stages), || {
        "cannot remove an old staging directory".into()
    })?;
    Ok(())
}

/// Runs directory scripts (one round trip however many lines).
fn run_dir_script(t: &dyn Transport, base: &str, script: &str) -> Result<()> {
    if script.is_empty() {
        return Ok(());
    }
    run_checked(t, script, || {
        format!("cannot create directories or set their modes under '{base}'")
    })?;
    Ok(())
}

fn push_batch(
    t: &dyn Transport,
    base: &str,
    batch: &[Item],
    meter: &mut Meter,
    summary: &mut Summary,
) -> Result<()> {
    let stage = format!("{base}/.belay-stage.{}", crate::job::id::random_hex(6)?);
    let script = scripts::unpack_batch(&stage);
    let mut stream = t.open_stream(&script)?;
    let (written, sent) = {
        let mut writer = StreamWriter::new(stream.as_mut());
        let r = write_tar(&mut writer, batch, meter);
        let r = r.and_then(|()| std::io::Write::flush(&mut writer));
        let sent = writer.sum();
        let r = match r {
            Ok(()) => Ok(()),
            Err(e) => match writer.failed.take() {
                Some(te) => Err(CoreError::Transport(te)),
                None => Err(CoreError::Io {
                    what: "reading local files".into(),
                    source: e,
                }),
            },
        };
        (r, sent)
    };
    if let Err(e) = written {
        // The host's own complaint (disk full) explains a refused stream
        // better than the broken pipe we saw.
        if let Ok(out) = stream.finish()
            && out.status != 0
        {
            return Err(remote_failure(
                t.host(),
                &format!("cannot write into '{base}'"),
                &out.stderr,
            ));
        }
        return Err(e);
    }
    let out = finish_with_output(stream)?;
    let text = &out.stdout;
    if out.status != 0 {
        let _ = t.run_script(&scripts::remove(&stage));
        return Err(remote_failure(
            t.host(),
            &format!("cannot write into '{base}'"),
            &out.stderr,
        ));
    }
    if Sum::parse(&String::from_utf8_lossy(text)) != Some(sent) {
        let _ = t.run_script(&scripts::remove(&stage));
        return Err(CoreError::Protocol {
            host: t.host().into(),
            message: format!(
                "a batch of {} files for '{base}' arrived damaged (checksum mismatch); run the same command again",
                batch.len()
            ),
        });
    }
    let script = scripts::place(base, &stage, batch.iter().map(|it| it.name.as_str()));
    run_checked(t, &script, || format!("cannot move files into '{base}'"))?;
    for it in batch {
        if it.entry.kind == Kind::File {
            summary.files_transferred += 1;
            meter.progress.file_done();
        }
    }
    Ok(())
}

fn write_tar(writer: &mut StreamWriter, batch: &[Item], meter: &mut Meter) -> std::io::Result<()> {
    let mut builder = tar::Builder::new(writer);
    builder.mode(tar::HeaderMode::Complete);
    for it in batch {
        let mut h = tar::Header::new_gnu();
        h.set_mode(it.entry.mode & 0o7777);
        h.set_mtime(it.entry.mtime.max(0) as u64);
        h.set_uid(0);
        h.set_gid(0);
        match it.entry.kind {
            Kind::File => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(it.entry.size);
                let file = std::fs::File::open(&it.local)?;
                let mut reader = Counting {
                    inner: file.take(it.entry.size),
                    read: 0,
                    meter,
                };
                builder.append_data(&mut h, &it.name, &mut reader)?;
                if reader.read != it.entry.size {
                    return Err(std::io::Error::other(format!(
                        "'{}' changed while being copied",
                        it.local.display()
                    )));
                }
            }
            Kind::Symlink => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                builder.append_link(&mut h, &it.name, &it.entry.link)?;
            }
            _ => {}
        }
    }
    builder.finish()
}

/// Reads a file for the archive, metering what passes.
struct Counting<'m, 'p, R> {
    inner: R,
    read: u64,
    meter: &'m mut Meter<'p>,
}

impl<R: Read> Read for Counting<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.meter.moved(n as u64);
        Ok(n)
    }
}

fn push_big(
    t: &dyn Transport,
    base: &str,
    item: &Item,
    partial: Option<u64>,
    meter: &mut Meter,
    summary: &mut Summary,
) -> Result<()> {
    let final_path = join(base, &item.name);
    let part = join(base, &partial_beside(&item.name));
    let size = item.entry.size;
    let mut resume = partial.filter(|p| *p > 0 && *p <= size);
    for _attempt in 0..2 {
        let (offset, mut sum) = match resume.take() {
            Some(p) => {
                let prefix =
                    file_sum(&item.local, Some(p)).map_err(|e| local_error(&item.local, e))?;
                let out = crate::transfer::long_script(t, &scripts::sum_file(&part))?;
                let there = Sum::parse(&String::from_utf8_lossy(&out.stdout));
                if out.status == 0 && there == Some(prefix.sum()) {
                    meter.kept(p);
                    summary.bytes_resumed += p;
                    (p, prefix)
                } else {
                    (0, Cksum::default())
                }
            }
            None => (0, Cksum::default()),
        };
        let there = stream_file(t, item, &part, offset, &mut sum, meter)?;
        if there == sum.sum() && sum.len() == size {
            let script =
                scripts::finish_partial(&part, item.entry.mode, item.entry.mtime, &final_path);
            run_checked(t, &script, || format!("cannot finish '{final_path}'"))?;
            summary.files_transferred += 1;
            meter.progress.file_done();
            return Ok(());
        }
        if offset == 0 {
            break;
        }
        // The resumed copy does not match after all: start it over once.
    }
    Err(CoreError::Protocol {
        host: t.host().into(),
        message: format!(
            "'{final_path}' arrived damaged (checksum mismatch; was '{}' changing?)",
            item.local.display()
        ),
    })
}

/// Appends the file from `offset` to the partial; returns the host's sum
/// of the whole partial.
fn stream_file(
    t: &dyn Transport,
    item: &Item,
    part: &str,
    offset: u64,
    sum: &mut Cksum,
    meter: &mut Meter,
) -> Result<Sum> {
    let script = scripts::append_partial(part, offset);
    let mut file = std::fs::File::open(&item.local).map_err(|e| local_error(&item.local, e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| local_error(&item.local, e))?;
    let mut stream = t.open_stream(&script)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut remaining = item.entry.size - offset;
    while remaining > 0 {
        let want = remaining.min(buf.len() as u64) as usize;
        let n = file
            .read(&mut buf[..want])
            .map_err(|e| local_error(&item.local, e))?;
        if n == 0 {
            break;
        }
        sum.update(&buf[..n]);
        if let Err(e) = stream.write_all(&buf[..n]) {
            if let Ok(out) = stream.finish()
                && out.status != 0
            {
                return Err(remote_failure(
                    t.host(),
                    &format!("cannot write '{part}'"),
                    &out.stderr,
                ));
            }
            return Err(e.into());
        }
        meter.moved(n as u64);
        remaining -= n as u64;
    }
    let out = finish_with_output(stream)?;
    let text = &out.stdout;
    if out.status != 0 {
        return Err(remote_failure(
            t.host(),
            &format!("cannot write '{part}'"),
            &out.stderr,
        ));
    }
    Sum::parse(&String::from_utf8_lossy(text)).ok_or_else(|| CoreError::Protocol {
        host: t.host().into(),
        message: format!("no checksum for '{part}'"),
    })
}
