//! Push: a local file or tree onto the host. Small files go in tar batches
//! into a staging directory beside the destination, are verified there and
//! then moved into place (one `mv` per directory); big files are appended
//! to `.NAME.belay-part` on the host, verified, then renamed.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{CoreError, Result};
use crate::paths::{
    base_name, is_temporary, join, parent_and_name, partial_beside, partial_name, remote_word,
};
use crate::shell::quote;
use crate::transfer::checksum::{Cksum, Sum, file_sum};
use crate::transfer::listing::{self, Entry, FIND_FORMAT, Kind};
use crate::transfer::plan::{Step, batches, plan_push};
use crate::transfer::progress::{Meter, Progress};
use crate::transfer::streamio::{StreamWriter, finish_with_output};
use crate::transfer::{Summary, remote_failure};
use crate::transport::Transport;

/// One thing to place on the host.
type Item<'a> = Step<'a>;

/// Pushes `local` to `remote`: into it if it is a directory (`cp -r`), or,
/// when `exact`, as it.
pub(crate) fn run(
    t: &dyn Transport,
    local: &Path,
    remote: &str,
    exact: bool,
    progress: &mut dyn Progress,
    summary: &mut Summary,
) -> Result<()> {
    let root_kind = listing::kind_of(&std::fs::metadata(local).map_err(|e| local_error(local, e))?);
    if !matches!(root_kind, Kind::File | Kind::Dir) {
        return Err(CoreError::BadInput(format!(
            "'{}' is not a regular file or directory",
            local.display()
        )));
    }
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
        .map(|d| quote(&join(&base, &d.name)))
        .collect();
    if !locked.is_empty() {
        run_dir_script(t, &base, &per_chunk("chmod u+wx --", &locked))?;
    }
    let mut meter = Meter::new(progress);
    let result = (|| {
        // Small files first: directories still missing at the destination
        // then arrive whole from the staging area (see `place`).
        for batch in batches(small, |i| i.entry.size) {
            push_batch(t, &base, batch, &mut meter, summary)?;
        }
        // Directory modes last (a read-only directory is filled first); with
        // no big files to come, in the same round trip as the mkdirs.
        let (mkdirs, modes) = (make_dirs_script(&base, dirs), dir_modes_script(&base, dirs));
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

/// The local tree to push (root first) and the name it is known by; only
/// a regular file or a directory can be pushed.
pub(crate) fn local_source(local: &Path) -> Result<(Vec<Entry>, String)> {
    let entries = listing::walk_local(local).map_err(|e| local_error(local, e))?;
    if !matches!(entries[0].kind, Kind::File | Kind::Dir) {
        return Err(CoreError::BadInput(format!(
            "'{}' is not a regular file or directory",
            local.display()
        )));
    }
    Ok((entries, local_base_name(local)?))
}

pub(crate) fn local_error(path: &Path, e: std::io::Error) -> CoreError {
    if e.kind() == std::io::ErrorKind::NotFound {
        CoreError::BadInput(format!(
            "no such local file or directory '{}'",
            path.display()
        ))
    } else {
        CoreError::Io {
            what: format!("reading '{}'", path.display()),
            source: e,
        }
    }
}

fn local_base_name(local: &Path) -> Result<String> {
    let s = local.to_string_lossy();
    if let Some(b) = base_name(&s) {
        return Ok(b.to_string());
    }
    let abs = std::fs::canonicalize(local).map_err(|e| local_error(local, e))?;
    abs.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| CoreError::BadInput(format!("cannot copy '{}' itself", local.display())))
}

/// Where the copy lands on the host.
pub(crate) struct Destination {
    /// Absolute path of the copy.
    pub path: String,
    /// Its parent directory (absolute) and its own name.
    pub parent: String,
    pub base: String,
}

/// `cp -r` rules: into an existing directory under the source's name,
/// else as the named path, whose parent must exist. For a tree, the same
/// script lists what is already at the destination (one round trip, not
/// two): `Some(entries)` then, empty when nothing is there yet.
fn resolve_destination(
    t: &dyn Transport,
    remote: &str,
    local_base: &str,
    kind: Kind,
    exact: bool,
) -> Result<(Destination, Option<Vec<Entry>>)> {
    let word = remote_word(remote);
    // Status 4: the destination exists but cannot be listed.
    let list = if kind == Kind::Dir {
        let target = if exact {
            "$r".to_string()
        } else {
            format!("$r/{}", quote(local_base))
        };
        format!(
            "\n  t={target}\n  if [ -d \"$t\" ]; then find \"$t\" -printf {FIND_FORMAT} || exit 4; fi"
        )
    } else {
        String::new()
    };
    // `DEST/` means "into this directory": made if missing, in this same
    // step (no window for a parallel set-up to race). Without the slash,
    // cp's rule stays (the parent must exist).
    let make = if remote.ends_with('/') && !exact {
        "\n[ -d \"$d\" ] || mkdir -p -- \"$d\" || exit 5"
    } else {
        ""
    };
    let script = format!(
        r#"cd "$HOME" || exit 1
d={word}{make}
if [ -d "$d" ]; then r=$(cd -- "$d" && pwd -P); printf 'dir\0%s\0' "$r"{list}
else p=$(dirname -- "$d")
  if [ -d "$p" ]; then
    if [ -e "$d" ] || [ -L "$d" ]; then k=file; else k=absent; fi
    printf '%s\0%s\0' "$k" "$(cd -- "$p" && pwd -P)"
  else printf 'noparent\0%s\0' "$p"; fi
fi"#
    );
    let out = t.run_script(&script)?;
    if out.status == 4 {
        return Err(remote_failure(
            t.host(),
            &format!("cannot list '{remote}'"),
            &out.stderr,
        ));
    }
    if out.status == 5 {
        return Err(remote_failure(
            t.host(),
            &format!("cannot create directory '{remote}'"),
            &out.stderr,
        ));
    }
    if out.status != 0 {
        return Err(remote_failure(
            t.host(),
            &format!("cannot look up '{remote}'"),
            &out.stderr,
        ));
    }
    let mut f = out.stdout.splitn(3, |b| *b == 0);
    let mut field = || String::from_utf8_lossy(f.next().unwrap_or_default()).into_owned();
    let (kind_there, path) = (field(), field());
    let rest = f.next().unwrap_or_default();
    let (kind_there, path) = (kind_there.as_str(), path.as_str());
    let host = t.host();
    let dest = match kind_there {
        "dir" if exact => {
            if kind != Kind::Dir {
                return Err(CoreError::BadInput(format!(
                    "'{remote}' on {host} is a directory: cannot put a file there"
                )));
            }
            let (parent, base) = parent_and_name(path);
            Ok(Destination {
                path: path.to_string(),
                parent: parent.to_string(),
                base: base.to_string(),
            })
        }
        "dir" => Ok(Destination {
            path: join(path, local_base),
            parent: path.to_string(),
            base: local_base.to_string(),
        }),
        _ if remote.ends_with('/') => Err(CoreError::BadInput(format!(
            "no such directory '{remote}' on {host}"
        ))),
        "file" if kind == Kind::Dir => Err(CoreError::BadInput(format!(
            "'{remote}' on {host} is a file: cannot put a directory there"
        ))),
        "file" | "absent" => {
            let base = base_name(remote).unwrap_or(local_base).to_string();
            Ok(Destination {
                path: join(path, &base),
                parent: path.to_string(),
                base,
            })
        }
        "noparent" => Err(CoreError::BadInput(format!(
            "no such directory '{path}' on {host} (the destination's parent must exist)"
        ))),
        other => Err(CoreError::Protocol {
            host: host.to_string(),
            message: format!("unexpected answer '{other}' looking up '{remote}'"),
        }),
    }?;
    // A tree's listing came along; an absent destination has none.
    let listed = if kind == Kind::Dir {
        let entries = listing::parse_find(rest).map_err(|m| CoreError::Protocol {
            host: host.to_string(),
            message: format!("listing '{}': {m}", dest.path),
        })?;
        Some(entries)
    } else {
        None
    };
    Ok((dest, listed))
}

/// What is beside a single file's destination: the file, its partial and
/// stale staging directories. (A tree's listing comes with
/// [`resolve_destination`].)
fn list_remote(t: &dyn Transport, dest: &Destination) -> Result<Vec<Entry>> {
    let script = format!(
        "cd {} || exit 1\nfind . -mindepth 1 -maxdepth 1 \\( -name {} -o -name {} -o -name '.belay-stage.*' \\) -printf {FIND_FORMAT}",
        quote(&dest.parent),
        quote(&glob_escape(&dest.base)),
        quote(&glob_escape(&partial_name(&dest.base)))
    );
    let out = t.run_script(&script)?;
    if out.status != 0 {
        return Err(remote_failure(
            t.host(),
            &format!("cannot list '{}'", dest.path),
            &out.stderr,
        ));
    }
    listing::parse_find(&out.stdout).map_err(|m| CoreError::Protocol {
        host: t.host().to_string(),
        message: format!("listing '{}': {m}", dest.path),
    })
}

fn glob_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Staging directories left by an interrupted run are ours to remove —
/// once they are a day old: a younger one may belong to a push running
/// right now into the same directory (`xargs -P` pushes are normal).
fn clear_stale_stages(t: &dyn Transport, base: &str, there: &[Entry]) -> Result<()> {
    let stages: Vec<String> = there
        .iter()
        .filter(|e| e.kind == Kind::Dir && !e.rel.contains('/') && is_temporary(&e.rel))
        .map(|e| quote(&format!("{base}/{}", e.rel)))
        .collect();
    if stages.is_empty() {
        return Ok(());
    }
    let out = t.run_script(&format!(
        "find {} -maxdepth 0 -type d -mmin +1440 -exec rm -rf {{}} + 2>/dev/null; :",
        stages.join(" ")
    ))?;
    if out.status != 0 {
        return Err(remote_failure(
            t.host(),
            "cannot remove an old staging directory",
            &out.stderr,
        ));
    }
    Ok(())
}

/// `mkdir -p` for every directory of the copy (most exist already: they
/// arrived whole from the staging area).
fn make_dirs_script(base: &str, dirs: &[Item]) -> String {
    let paths: Vec<String> = dirs.iter().map(|d| quote(&join(base, &d.name))).collect();
    per_chunk("mkdir -p --", &paths)
}

/// Gives every directory of the copy its mode.
fn dir_modes_script(base: &str, dirs: &[Item]) -> String {
    let mut by_mode: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for d in dirs {
        by_mode
            .entry(d.entry.mode & 0o7777)
            .or_default()
            .push(quote(&join(base, &d.name)));
    }
    by_mode
        .into_iter()
        .map(|(mode, paths)| per_chunk(&format!("chmod {mode:o} --"), &paths))
        .collect()
}

/// `command` over `words` (already quoted), 500 at a time (well inside
/// ARG_MAX), each line ending the script on failure.
fn per_chunk(command: &str, words: &[String]) -> String {
    words
        .chunks(500)
        .map(|c| format!("{command} {} || exit 1\n", c.join(" ")))
        .collect()
}

/// Runs directory scripts (one round trip however many lines).
fn run_dir_script(t: &dyn Transport, base: &str, script: &str) -> Result<()> {
    if script.is_empty() {
        return Ok(());
    }
    let out = t.run_script(script)?;
    if out.status != 0 {
        return Err(remote_failure(
            t.host(),
            &format!("cannot create directories or set their modes under '{base}'"),
            &out.stderr,
        ));
    }
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
    // The host sums the archive as tar reads it (tee into a fifo: no second
    // pass over the files); it must equal the sum of what was sent, which
    // covers every byte of every file and every header naming them.
    let script = format!(
        r#"umask 077
s={stage}
mkdir -p "$s" && cd "$s" || exit 1
d=$(mktemp -d "${{TMPDIR:-/tmp}}/belay-push.XXXXXX") || exit 1
trap 'rm -rf "$d"' 0
mkfifo "$d/f" || exit 1
cksum < "$d/f" > "$d/sum" &
tee "$d/f" | tar -xpof - || exit 1
wait $! || exit 1
cat "$d/sum""#,
        stage = quote(&stage),
    );
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
        let _ = t.run_script(&format!("rm -rf -- {}", quote(&stage)));
        return Err(remote_failure(
            t.host(),
            &format!("cannot write into '{base}'"),
            &out.stderr,
        ));
    }
    if Sum::parse(&String::from_utf8_lossy(text)) != Some(sent) {
        let _ = t.run_script(&format!("rm -rf -- {}", quote(&stage)));
        return Err(CoreError::Protocol {
            host: t.host().into(),
            message: format!(
                "a batch of {} files for '{base}' arrived damaged (checksum mismatch); run the same command again",
                batch.len()
            ),
        });
    }
    place(t, base, &stage, batch)?;
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

/// Moves a verified batch from its staging directory into place. A
/// directory missing at the destination moves whole (one rename carries all
/// it holds; directories with the same parent share one `mv`); what is left
/// in a staged directory that exists at the destination (this batch's files
/// and links in it) moves with one `find … -exec mv` per directory, so the
/// script stays small however many files the batch has. Renames only:
/// every file appears under its final name complete.
fn place(t: &dyn Transport, base: &str, stage: &str, batch: &[Item]) -> Result<()> {
    let mut file_dirs: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let mut dirs: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for it in batch {
        let dir = it.name.rsplit_once('/').map_or("", |(d, _)| d);
        file_dirs.insert(dir);
        let mut d = dir;
        while !d.is_empty() {
            dirs.insert(d);
            d = d.rsplit_once('/').map_or("", |(p, _)| p);
        }
    }
    let depth = |d: &str| d.matches('/').count();
    let mut by_parent: BTreeMap<(usize, &str), Vec<&str>> = BTreeMap::new();
    for d in &dirs {
        let parent = d.rsplit_once('/').map_or("", |(p, _)| p);
        by_parent.entry((depth(d), parent)).or_default().push(d);
    }
    let mut script = format!("s={}\nt={}\n", quote(stage), quote(base));
    for ((_, parent), children) in &by_parent {
        script.push_str("set --\n");
        for d in children {
            let (from, to) = (quote(&format!("{stage}/{d}")), quote(&join(base, d)));
            script.push_str(&format!(
                "[ -d {from} ] && ! [ -e {to} ] && ! [ -L {to} ] && set -- \"$@\" {from}\n"
            ));
        }
        script.push_str(&format!(
            "[ $# -eq 0 ] || mv -f -- \"$@\" {} || exit 1\n",
            quote(&format!("{}/", join(base, parent)))
        ));
    }
    for dir in file_dirs {
        // Gone from the stage: it moved whole above. Directories still in
        // it exist at the destination and are emptied by their own line.
        let from = quote(&join(stage, dir));
        script.push_str(&format!(
            "[ ! -d {from} ] || find {from} -mindepth 1 -maxdepth 1 ! -type d -exec sh -c 'mv -f -- \"$@\" \"$0\"' {} {{}} + || exit 1\n",
            quote(&format!("{}/", join(base, dir)))
        ));
    }
    script.push_str("rm -rf -- \"$s\"\n");
    let out = t.run_script(&script)?;
    if out.status != 0 {
        return Err(remote_failure(
            t.host(),
            &format!("cannot move files into '{base}'"),
            &out.stderr,
        ));
    }
    Ok(())
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
                let out = crate::transfer::long_script(t, &format!("cksum < {}", quote(&part)))?;
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
            let out = t.run_script(&format!(
                "p={}\nchmod {:o} \"$p\" && touch -d @{} \"$p\" && mv -f -- \"$p\" {}",
                quote(&part),
                item.entry.mode & 0o7777,
                item.entry.mtime,
                quote(&final_path)
            ))?;
            if out.status != 0 {
                return Err(remote_failure(
                    t.host(),
                    &format!("cannot finish '{final_path}'"),
                    &out.stderr,
                ));
            }
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
    let script = format!(
        "umask 077\np={}\nif [ {offset} -eq 0 ]; then : > \"$p\" || exit 1\nelse [ \"$(wc -c < \"$p\")\" -eq {offset} ] || {{ echo \"partial $p changed during the copy\" >&2; exit 1; }}; fi\ncat >> \"$p\" || exit 1\ncksum < \"$p\"",
        quote(part)
    );
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
