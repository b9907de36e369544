//! Reading a pulled batch's archive: each member under the name its
//! (bounded) GNU or PAX extension headers give it, checked against what
//! was asked for, written to its partial, then the host's sum after the
//! archive verified before anything is renamed into place. The archive is
//! untrusted: a name not asked for, a type not listed or a symlink
//! pointing outside the destination is refused, by name.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::pull::Item;
use super::scripts::{CHANGED_MARK, SUMS_MARK};
use crate::error::{CoreError, Result};
use crate::paths::symlink_stays_inside;
use crate::transfer::Summary;
use crate::transfer::checksum::Sum;
use crate::transfer::landing::{
    Checked, finish_partial, io_error, land_all, make_durable, open_partial, partial_for, refuse,
};
use crate::transfer::listing::Kind;
use crate::transfer::progress::Meter;
use crate::transfer::streamio::StreamReader;

/// Receives one batch's archive (see [`super::scripts::pack_batch`]) into
/// `dest`: the files `wanted` (by their names on the host) land once the
/// host's sum of the whole archive matches.
pub(super) fn receive_batch(
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
const NAME_RECORD_LIMIT: u64 = 64 * 1024;

/// An archive member with the names its extension headers give it.
struct Named<'a, R: Read> {
    pub path: Vec<u8>,
    pub link: Option<Vec<u8>>,
    pub entry: tar::Entry<'a, R>,
}

/// The next member of a raw archive, with GNU long names and links and
/// PAX `path`/`linkpath` applied by us (the tar crate would read any size
/// of them into memory), each bounded by [`NAME_RECORD_LIMIT`].
fn next_named<'a, R: Read>(
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
}
