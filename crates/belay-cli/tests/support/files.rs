//! File-tree helpers for the transfer tests: trees with every kind of entry
//! a copy must keep (modes, mtimes, symlinks, awkward names), exact
//! comparison of two trees, and a hand-written ustar archive for hostile
//! remotes (names no real file system can produce).

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * 1024;

/// `n` bytes from /dev/urandom.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .expect("/dev/urandom")
        .read_exact(&mut buf)
        .expect("random bytes");
    buf
}

/// Write a file with exactly this mode and mtime (seconds since the epoch).
pub fn write_file(path: &Path, contents: &[u8], mode: u32, mtime: u64) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    set_mode_mtime(path, mode, mtime);
}

pub fn set_mode_mtime(path: &Path, mode: u32, mtime: u64) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .or_else(|_| std::fs::File::open(path))
        .expect("open for set_times");
    f.set_times(
        std::fs::FileTimes::new()
            .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime))
            .set_accessed(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime)),
    )
    .expect("set mtime");
}

/// The regular files of a tree made by [`make_tree`], with their sizes.
pub struct Tree {
    pub root: PathBuf,
    pub files: usize,
    pub bytes: u64,
}

/// A tree with nested directories, a 0600 file, a 0755 script, an empty
/// file, an empty directory, a relative symlink inside the tree, names with
/// a space and a newline, small files (tar batches) and one file of 5 MiB
/// (streamed on its own). Every file has its own old mtime.
pub fn make_tree(root: &Path) -> Tree {
    std::fs::create_dir_all(root.join("sub/deeper")).expect("mkdir");
    std::fs::create_dir_all(root.join("emptydir")).expect("mkdir");
    let entries: Vec<(&str, Vec<u8>, u32)> = vec![
        ("top.txt", b"top of the tree\n".to_vec(), 0o644),
        ("secret", b"not for others\n".to_vec(), 0o600),
        ("run.sh", b"#!/bin/sh\necho ran\n".to_vec(), 0o755),
        ("empty", Vec::new(), 0o644),
        ("with space.txt", b"space\n".to_vec(), 0o644),
        ("new\nline.txt", b"newline in the name\n".to_vec(), 0o640),
        ("sub/mid.txt", b"middle\n".to_vec(), 0o644),
        ("sub/deeper/deep.bin", random_bytes(10 * KIB + 7), 0o600),
        ("sub/deeper/big.bin", random_bytes(5 * MIB + 3), 0o640),
    ];
    let mut bytes = 0;
    for (i, (rel, contents, mode)) in entries.iter().enumerate() {
        bytes += contents.len() as u64;
        write_file(
            &root.join(rel),
            contents,
            *mode,
            1_500_000_000 + i as u64 * 1000,
        );
    }
    std::os::unix::fs::symlink("sub/mid.txt", root.join("link")).expect("symlink");
    Tree {
        root: root.to_path_buf(),
        files: entries.len(),
        bytes,
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    Dir,
    File {
        contents_crc: u64,
        len: u64,
        mode: u32,
        mtime: i64,
    },
    Symlink(PathBuf),
}

fn digest(bytes: &[u8]) -> u64 {
    // FNV-1a: enough to tell two contents apart in an assertion message.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Describe one path (not following a final symlink).
pub fn entry(path: &Path) -> Entry {
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if m.file_type().is_symlink() {
        Entry::Symlink(std::fs::read_link(path).expect("readlink"))
    } else if m.is_dir() {
        Entry::Dir
    } else {
        let contents = std::fs::read(path).expect("read");
        Entry::File {
            contents_crc: digest(&contents),
            len: contents.len() as u64,
            mode: m.mode() & 0o7777,
            mtime: m.mtime(),
        }
    }
}

/// Every entry below `root`, by relative path.
pub fn walk(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(root.join(&rel))
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", root.join(&rel).display()))
        {
            let e = e.expect("dir entry");
            let r = rel.join(e.file_name());
            let en = entry(&root.join(&r));
            if en == Entry::Dir {
                stack.push(r.clone());
            }
            out.insert(r, en);
        }
    }
    out
}

/// Two trees hold the same entries: same names, types, bytes, permission
/// bits, mtimes (whole seconds) and symlink targets.
pub fn assert_same_tree(want: &Path, got: &Path) {
    let a = walk(want);
    let b = walk(got);
    for (k, v) in &a {
        match b.get(k) {
            None => panic!(
                "{} is missing {:?} (from {})",
                got.display(),
                k,
                want.display()
            ),
            Some(w) => assert_eq!(
                w,
                v,
                "{:?} differs between {} and {}",
                k,
                want.display(),
                got.display()
            ),
        }
    }
    for k in b.keys() {
        assert!(
            a.contains_key(k),
            "{} has an extra entry {:?}",
            got.display(),
            k
        );
    }
}

/// One file is an exact copy of another: bytes, permission bits, mtime.
pub fn assert_same_file(want: &Path, got: &Path) {
    assert_eq!(
        entry(got),
        entry(want),
        "{} vs {}",
        got.display(),
        want.display()
    );
}

/// Every file name (at any depth) below `root`.
pub fn all_names(root: &Path) -> Vec<PathBuf> {
    walk(root).into_keys().collect()
}

/// A hand-built ustar archive: any name, any type, no questions asked.
#[derive(Default)]
pub struct Tar {
    buf: Vec<u8>,
}

impl Tar {
    pub fn new() -> Self {
        Self::default()
    }

    fn header(&mut self, name: &str, typeflag: u8, size: usize, mode: u32, link: &str, mtime: u64) {
        self.header_dev(name, typeflag, size, mode, link, mtime, 0, 0);
    }

    #[allow(clippy::too_many_arguments)]
    fn header_dev(
        &mut self,
        name: &str,
        typeflag: u8,
        size: usize,
        mode: u32,
        link: &str,
        mtime: u64,
        major: u32,
        minor: u32,
    ) {
        assert!(name.len() < 100 && link.len() < 100, "keep names short");
        let mut h = [0u8; 512];
        let put = |h: &mut [u8; 512], at: usize, s: &[u8]| h[at..at + s.len()].copy_from_slice(s);
        put(&mut h, 0, name.as_bytes());
        put(&mut h, 100, format!("{mode:07o}\0").as_bytes());
        put(&mut h, 108, b"0000000\0");
        put(&mut h, 116, b"0000000\0");
        put(&mut h, 124, format!("{size:011o}\0").as_bytes());
        put(&mut h, 136, format!("{mtime:011o}\0").as_bytes());
        put(&mut h, 148, b"        ");
        h[156] = typeflag;
        put(&mut h, 157, link.as_bytes());
        put(&mut h, 257, b"ustar\x0000");
        put(&mut h, 265, b"root");
        put(&mut h, 297, b"root");
        put(&mut h, 329, format!("{major:07o}\0").as_bytes());
        put(&mut h, 337, format!("{minor:07o}\0").as_bytes());
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
        self.buf.extend_from_slice(&h);
    }

    pub fn file(mut self, name: &str, contents: &[u8], mode: u32, mtime: u64) -> Self {
        self.header(name, b'0', contents.len(), mode, "", mtime);
        self.buf.extend_from_slice(contents);
        let pad = (512 - contents.len() % 512) % 512;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    pub fn dir(mut self, name: &str, mtime: u64) -> Self {
        self.header(name, b'5', 0, 0o755, "", mtime);
        self
    }

    pub fn symlink(mut self, name: &str, target: &str) -> Self {
        self.header(name, b'2', 0, 0o777, target, 1_500_000_000);
        self
    }

    pub fn hardlink(mut self, name: &str, target: &str) -> Self {
        self.header(name, b'1', 0, 0o644, target, 1_500_000_000);
        self
    }

    pub fn char_device(mut self, name: &str, major: u32, minor: u32) -> Self {
        self.header_dev(name, b'3', 0, 0o666, "", 1_500_000_000, major, minor);
        self
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend(std::iter::repeat_n(0u8, 1024));
        self.buf
    }
}
