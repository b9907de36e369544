//! What a tree holds, on either side: the entries a transfer plans from.
//! Remote trees are listed by one `find -printf` (NUL-separated fields, so
//! any name parses), local trees by walking the file system; both give the
//! same [`Entry`] records with paths relative to the tree's root.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Fields of one remote entry: type, size, mtime, mode, relative path,
/// symlink target — each NUL-terminated.
pub const FIND_FORMAT: &str = "'%y\\0%s\\0%T@\\0%m\\0%P\\0%l\\0'";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// Devices, sockets, fifos: never copied.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the listed root; empty for the root itself.
    pub rel: String,
    pub kind: Kind,
    pub size: u64,
    /// Whole seconds since the epoch.
    pub mtime: i64,
    /// Permission bits.
    pub mode: u32,
    /// Symlink target.
    pub link: String,
    /// The host's name for it is not UTF-8 (`rel` holds a lossy rendering
    /// that names no file there): it cannot be asked for by name.
    pub name_not_utf8: bool,
}

impl Entry {
    /// Whether `there` already is this entry's copy: a file of the same
    /// size and mtime, or a symlink with the same target.
    pub fn is_copied_as(&self, there: &Entry) -> bool {
        match self.kind {
            Kind::File => {
                there.kind == Kind::File && there.size == self.size && there.mtime == self.mtime
            }
            Kind::Symlink => there.kind == Kind::Symlink && there.link == self.link,
            Kind::Dir | Kind::Other => false,
        }
    }
}

/// Parses `find ROOT -printf FIND_FORMAT` output.
pub fn parse_find(out: &[u8]) -> Result<Vec<Entry>, String> {
    let mut fields = out.split(|b| *b == 0);
    let mut entries = Vec::new();
    while let Some(kind) = fields.next() {
        if kind.is_empty() {
            break;
        }
        let mut next = || fields.next().ok_or_else(|| "truncated listing".to_string());
        let (size, mtime, mode, rel, link) = (next()?, next()?, next()?, next()?, next()?);
        let name_not_utf8 = std::str::from_utf8(rel).is_err();
        let text = |f: &[u8]| String::from_utf8_lossy(f).into_owned();
        let (size, mtime, mode, rel, link) =
            (text(size), text(mtime), text(mode), text(rel), text(link));
        let kind = match kind {
            b"f" => Kind::File,
            b"d" => Kind::Dir,
            b"l" => Kind::Symlink,
            _ => Kind::Other,
        };
        let mtime = mtime.split('.').next().unwrap_or("0");
        entries.push(Entry {
            rel,
            kind,
            size: size.parse().map_err(|_| format!("bad size '{size}'"))?,
            mtime: mtime.parse().map_err(|_| format!("bad mtime '{mtime}'"))?,
            mode: u32::from_str_radix(&mode, 8).map_err(|_| format!("bad mode '{mode}'"))?,
            link,
            name_not_utf8,
        });
    }
    Ok(entries)
}

/// Lists a local tree (the root followed if it is a symlink, nothing below
/// it followed). Names that are not UTF-8 are refused with the path.
pub fn walk_local(root: &Path) -> std::io::Result<Vec<Entry>> {
    let meta = std::fs::metadata(root)?;
    let mut out = vec![entry("", &meta, root)?];
    if meta.is_dir() {
        walk_dir(root, "", &mut out)?;
    }
    Ok(out)
}

fn walk_dir(dir: &Path, rel: &str, out: &mut Vec<Entry>) -> std::io::Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    names.sort_by_key(|d| d.file_name());
    for d in names {
        let name = d.file_name();
        let name = name.to_str().ok_or_else(|| {
            std::io::Error::other(format!(
                "'{}': names that are not UTF-8 are not supported",
                d.path().display()
            ))
        })?;
        let child_rel = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        let meta = std::fs::symlink_metadata(d.path())?;
        out.push(entry(&child_rel, &meta, &d.path())?);
        if meta.is_dir() {
            walk_dir(&d.path(), &child_rel, out)?;
        }
    }
    Ok(())
}

/// What `meta` describes.
pub fn kind_of(meta: &std::fs::Metadata) -> Kind {
    let ft = meta.file_type();
    if ft.is_file() {
        Kind::File
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Other
    }
}

fn entry(rel: &str, meta: &std::fs::Metadata, path: &Path) -> std::io::Result<Entry> {
    let kind = kind_of(meta);
    let link = if kind == Kind::Symlink {
        std::fs::read_link(path)?.to_string_lossy().into_owned()
    } else {
        String::new()
    };
    Ok(Entry {
        rel: rel.to_string(),
        kind,
        size: if kind == Kind::File { meta.len() } else { 0 },
        mtime: meta.mtime(),
        mode: meta.permissions().mode() & 0o7777,
        link,
        name_not_utf8: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_a_file_of_the_same_size_and_mtime_or_the_same_link() {
        let e = |kind, size, mtime, link: &str| Entry {
            rel: "x".into(),
            kind,
            size,
            mtime,
            mode: 0o644,
            link: link.into(),
            name_not_utf8: false,
        };
        let f = e(Kind::File, 3, 10, "");
        assert!(f.is_copied_as(&e(Kind::File, 3, 10, "")));
        assert!(!f.is_copied_as(&e(Kind::File, 3, 11, "")));
        assert!(!f.is_copied_as(&e(Kind::File, 4, 10, "")));
        assert!(!f.is_copied_as(&e(Kind::Symlink, 3, 10, "")));
        let l = e(Kind::Symlink, 0, 10, "a");
        assert!(l.is_copied_as(&e(Kind::Symlink, 0, 99, "a")));
        assert!(!l.is_copied_as(&e(Kind::Symlink, 0, 10, "b")));
        let d = e(Kind::Dir, 0, 10, "");
        assert!(!d.is_copied_as(&d.clone()));
    }

    #[test]
    fn parses_find_output_with_odd_names() {
        let out = b"d\x004096\x001700000000.5\x00755\x00\x00\x00f\x003\x001700000001.0000000000\x00600\x00a\nb c\x00\x00l\x001\x001700000002\x00777\x00l\x00../x\x00";
        let e = parse_find(out).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].kind, Kind::Dir);
        assert_eq!(e[1].rel, "a\nb c");
        assert_eq!((e[1].size, e[1].mtime, e[1].mode), (3, 1700000001, 0o600));
        assert_eq!((e[2].kind, e[2].link.as_str()), (Kind::Symlink, "../x"));
        assert!(e.iter().all(|e| !e.name_not_utf8));
    }

    #[test]
    fn names_that_are_not_utf8_are_marked() {
        let out = b"f\x001\x001700000000\x00644\x00ok\x00\x00f\x001\x001700000000\x00644\x00bad\xff\x00\x00";
        let e = parse_find(out).unwrap();
        assert!(!e[0].name_not_utf8);
        assert!(e[1].name_not_utf8, "{:?}", e[1]);
    }
}
