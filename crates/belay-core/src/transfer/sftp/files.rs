//! Remote files over SFTP, for copies to and from hosts that refuse
//! commands (see [`crate::transfer::Via`]). One place that turns SFTP answers into
//! [`Entry`] listings and [`CoreError`]s, and that moves file content with
//! many requests in flight, so a copy pays the round trip once per window
//! and not once per packet.
//!
//! The host computes nothing here: OpenSSH's sftp-server has no request
//! for a checksum. [`Files::sum`] therefore verifies a file on the host by
//! reading it back and summing it here.

use std::cell::RefCell;
use std::io::Read;

use belay_ssh::Sftp;
use belay_ssh::russh_sftp::client::error::Error as SftpError;
use belay_ssh::russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use futures_util::stream::{self, FuturesOrdered, FuturesUnordered, StreamExt};

use crate::error::CoreError;
use crate::paths::join;
use crate::transfer::checksum::Cksum;
use crate::transfer::listing::{Entry, Kind};
use crate::transfer::progress::Meter;
use crate::transport::TransportError;

/// Read or write requests of one file in flight at once.
const WINDOW: usize = 32;
/// Directories listed at once (each holds a handle while it is read).
const DIRS_IN_FLIGHT: usize = 16;

/// The host's files, through one SFTP session.
pub(crate) struct Files<'a> {
    pub sftp: &'a Sftp,
    pub host: &'a str,
}

/// A listing: entries (root first, parents before children) and names the
/// host answered that no file system can hold (`/` inside a name).
pub(crate) struct Listing {
    pub entries: Vec<Entry>,
    pub bad_names: Vec<String>,
}

impl<'a> Files<'a> {
    pub fn new(sftp: &'a Sftp, host: &'a str) -> Self {
        Files { sftp, host }
    }

    /// A failed request as the caller's error: a lost channel is a
    /// transport error (the copy is retried on a new connection), anything
    /// else names what was being done.
    pub fn error(&self, what: &str, e: SftpError) -> CoreError {
        let message = format!("{what}: {e}");
        if belay_ssh::sftp::is_lost(&e) {
            CoreError::Transport(TransportError::Unreachable {
                host: self.host.to_string(),
                message,
            })
        } else {
            CoreError::Protocol {
                host: self.host.to_string(),
                message,
            }
        }
    }

    /// The absolute, canonical form of `path` (relative paths are relative
    /// to the login directory).
    pub async fn realpath(&self, path: &str) -> Result<String, CoreError> {
        let raw = self.sftp.raw();
        let name = self
            .sftp
            .guard(raw.realpath(path))
            .await
            .map_err(|e| self.error(&format!("resolving '{path}'"), e))?;
        name.files
            .into_iter()
            .next()
            .map(|f| f.filename)
            .ok_or_else(|| CoreError::Protocol {
                host: self.host.to_string(),
                message: format!("no answer resolving '{path}'"),
            })
    }

    /// The entry at `path` (`follow`: what a symlink points to), or `None`
    /// when nothing is there.
    pub async fn stat(&self, path: &str, follow: bool) -> Result<Option<Entry>, CoreError> {
        let raw = self.sftp.raw();
        let answer = if follow {
            self.sftp.guard(raw.stat(path)).await
        } else {
            self.sftp.guard(raw.lstat(path)).await
        };
        match answer {
            Ok(a) => {
                let mut e = entry(String::new(), &a.attrs);
                if e.kind == Kind::Symlink {
                    e.link = self.readlink(path).await?;
                }
                Ok(Some(e))
            }
            Err(e) if belay_ssh::sftp::is_not_found(&e) => Ok(None),
            Err(e) => Err(self.error(&format!("looking up '{path}'"), e)),
        }
    }

    pub async fn readlink(&self, path: &str) -> Result<String, CoreError> {
        let name = self
            .sftp
            .guard(self.sftp.raw().readlink(path))
            .await
            .map_err(|e| self.error(&format!("reading link '{path}'"), e))?;
        Ok(name
            .files
            .into_iter()
            .next()
            .map(|f| f.filename)
            .unwrap_or_default())
    }

    /// Everything below the directory `root` (not following symlinks),
    /// after `root_entry`. Directories of one level are read concurrently.
    pub async fn list_tree(&self, root: &str, root_entry: Entry) -> Result<Listing, CoreError> {
        let mut listing = Listing {
            entries: vec![root_entry],
            bad_names: Vec::new(),
        };
        let mut level = vec![String::new()];
        while !level.is_empty() {
            // A bounded number of directories open at once: OpenSSH's
            // handles are small numbers, and russh-sftp mangles those
            // above 127 (it reads handles as UTF-8 text).
            let found: Vec<_> = stream::iter(level.iter().map(|rel| self.read_dir(root, rel)))
                .buffered(DIRS_IN_FLIGHT)
                .collect()
                .await;
            let mut next = Vec::new();
            for (rel, children) in level.iter().zip(found) {
                for (name, attrs) in children? {
                    if name.is_empty() || name.contains('/') {
                        listing.bad_names.push(join(rel, &name));
                        continue;
                    }
                    let mut e = entry(join(rel, &name), &attrs);
                    if name.contains(char::REPLACEMENT_CHARACTER) {
                        // The SFTP client decodes names lossily: this one
                        // (most likely) is not UTF-8 and names nothing
                        // there; nothing below it can be listed.
                        e.name_not_utf8 = true;
                        listing.entries.push(e);
                        continue;
                    }
                    if e.kind == Kind::Dir {
                        next.push(e.rel.clone());
                    }
                    listing.entries.push(e);
                }
            }
            level = next;
        }
        let links: Vec<usize> = (0..listing.entries.len())
            .filter(|i| listing.entries[*i].kind == Kind::Symlink)
            .collect();
        let targets: Vec<_> = stream::iter(
            links
                .iter()
                .map(|i| self.readlink_owned(join(root, &listing.entries[*i].rel))),
        )
        .buffered(DIRS_IN_FLIGHT)
        .collect()
        .await;
        for (i, target) in links.into_iter().zip(targets) {
            listing.entries[i].link = target?;
        }
        Ok(listing)
    }

    async fn readlink_owned(&self, path: String) -> Result<String, CoreError> {
        self.readlink(&path).await
    }

    /// The names in `root/rel` with their attributes (`.` and `..` left
    /// out), sorted by name.
    async fn read_dir(
        &self,
        root: &str,
        rel: &str,
    ) -> Result<Vec<(String, FileAttributes)>, CoreError> {
        let path = join(root, rel);
        let raw = self.sftp.raw();
        let what = || format!("listing '{path}'");
        let handle = self
            .sftp
            .guard(raw.opendir(path.as_str()))
            .await
            .map_err(|e| self.error(&what(), e))?
            .handle;
        let mut out = Vec::new();
        let result = loop {
            match self.sftp.guard(raw.readdir(handle.as_str())).await {
                Ok(name) => out.extend(
                    name.files
                        .into_iter()
                        .filter(|f| f.filename != "." && f.filename != "..")
                        .map(|f| (f.filename, f.attrs)),
                ),
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break Ok(()),
                Err(e) => break Err(self.error(&what(), e)),
            }
        };
        let _ = self.sftp.guard(raw.close(handle.as_str())).await;
        result?;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    pub async fn mkdir(&self, path: &str, mode: u32) -> Result<(), CoreError> {
        let attrs = FileAttributes {
            permissions: Some(mode),
            ..FileAttributes::empty()
        };
        self.sftp
            .guard(self.sftp.raw().mkdir(path, attrs))
            .await
            .map(|_| ())
            .map_err(|e| self.error(&format!("cannot create directory '{path}'"), e))
    }

    /// Sets permission bits (and, when given, the mtime) of `path`.
    pub async fn set_attrs(
        &self,
        path: &str,
        mode: u32,
        mtime: Option<i64>,
    ) -> Result<(), CoreError> {
        let t = mtime.map(|m| m.clamp(0, u32::MAX as i64) as u32);
        let attrs = FileAttributes {
            permissions: Some(mode),
            atime: t,
            mtime: t,
            ..FileAttributes::empty()
        };
        self.sftp
            .guard(self.sftp.raw().setstat(path, attrs))
            .await
            .map(|_| ())
            .map_err(|e| self.error(&format!("cannot set the mode of '{path}'"), e))
    }

    pub async fn remove(&self, path: &str) -> Result<(), CoreError> {
        match self.sftp.guard(self.sftp.raw().remove(path)).await {
            Ok(_) => Ok(()),
            Err(e) if belay_ssh::sftp::is_not_found(&e) => Ok(()),
            Err(e) => Err(self.error(&format!("cannot remove '{path}'"), e)),
        }
    }

    /// Renames over whatever `to` is (atomically on OpenSSH).
    pub async fn replace(&self, from: &str, to: &str) -> Result<(), CoreError> {
        self.sftp
            .replace(from, to)
            .await
            .map_err(|e| self.error(&format!("cannot rename '{from}' to '{to}'"), e))
    }

    /// Creates the symlink `path` -> `target`.
    pub async fn symlink(&self, path: &str, target: &str) -> Result<(), CoreError> {
        // OpenSSH's sftp-server reads SSH_FXP_SYMLINK's two paths in the
        // opposite order to the draft (target first), and russh-sftp sends
        // the draft's; so they are given swapped. (OpenSSH is the server
        // that matters; the tests run against it.)
        self.sftp
            .guard(self.sftp.raw().symlink(target, path))
            .await
            .map(|_| ())
            .map_err(|e| self.error(&format!("cannot create symlink '{path}'"), e))
    }

    /// Opens `path` for writing (created 0600), emptied unless `keep`.
    pub async fn open_write(&self, path: &str, keep: bool) -> Result<String, CoreError> {
        let mut flags = OpenFlags::WRITE | OpenFlags::CREATE;
        if !keep {
            flags |= OpenFlags::TRUNCATE;
        }
        let attrs = FileAttributes {
            permissions: Some(0o600),
            ..FileAttributes::empty()
        };
        self.sftp
            .guard(self.sftp.raw().open(path, flags, attrs))
            .await
            .map(|h| h.handle)
            .map_err(|e| self.error(&format!("cannot write '{path}'"), e))
    }

    pub async fn open_read(&self, path: &str) -> Result<String, CoreError> {
        self.sftp
            .guard(
                self.sftp
                    .raw()
                    .open(path, OpenFlags::READ, FileAttributes::empty()),
            )
            .await
            .map(|h| h.handle)
            .map_err(|e| self.error(&format!("cannot read '{path}'"), e))
    }

    /// Closes a handle; for a written file, after flushing it to the
    /// host's disk where the server can.
    pub async fn close(&self, handle: &str, path: &str, flush: bool) -> Result<(), CoreError> {
        let what = || format!("cannot write '{path}'");
        if flush {
            self.sftp
                .fsync(handle)
                .await
                .map_err(|e| self.error(&what(), e))?;
        }
        self.sftp
            .guard(self.sftp.raw().close(handle))
            .await
            .map(|_| ())
            .map_err(|e| self.error(&what(), e))
    }

    /// The size and mtime of an open file.
    pub async fn fstat(&self, handle: &str, path: &str) -> Result<(u64, i64), CoreError> {
        let a = self
            .sftp
            .guard(self.sftp.raw().fstat(handle))
            .await
            .map_err(|e| self.error(&format!("cannot read '{path}'"), e))?;
        Ok((a.attrs.size.unwrap_or(0), a.attrs.mtime.unwrap_or(0) as i64))
    }

    /// Writes `len` bytes of `local` (read from where it stands) at
    /// `offset` of the open `handle`, adding them to `sum` and `meter`.
    #[allow(clippy::too_many_arguments)]
    pub async fn write_from(
        &self,
        handle: &str,
        path: &str,
        local: &mut std::fs::File,
        offset: u64,
        len: u64,
        sum: &mut Cksum,
        meter: &RefCell<Meter<'_>>,
    ) -> Result<(), CoreError> {
        let raw = self.sftp.raw();
        let chunk = self.sftp.write_len() as u64;
        let (mut pos, end) = (offset, offset + len);
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < WINDOW && pos < end {
                let n = chunk.min(end - pos) as usize;
                let mut buf = vec![0u8; n];
                local.read_exact(&mut buf).map_err(|e| CoreError::Io {
                    what: format!("reading the file copied to '{path}' (did it shrink?)"),
                    source: e,
                })?;
                sum.update(&buf);
                let at = pos;
                in_flight.push(async move {
                    self.sftp
                        .guard(raw.write(handle, at, buf))
                        .await
                        .map(|_| n as u64)
                });
                pos += n as u64;
            }
            match in_flight.next().await {
                Some(Ok(n)) => meter.borrow_mut().moved(n),
                Some(Err(e)) => return Err(self.error(&format!("cannot write '{path}'"), e)),
                None => return Ok(()),
            }
        }
    }

    /// Reads `len` bytes of the open `handle` from `offset`, in order,
    /// handing each piece to `sink`. A file that ends early is an error
    /// (it changed while being copied).
    pub async fn read_into(
        &self,
        handle: &str,
        path: &str,
        offset: u64,
        len: u64,
        mut sink: impl FnMut(&[u8]) -> Result<(), CoreError>,
    ) -> Result<(), CoreError> {
        let raw = self.sftp.raw();
        let chunk = self.sftp.read_len() as u64;
        let (mut pos, end) = (offset, offset + len);
        let mut queue = FuturesOrdered::new();
        let what = || format!("cannot read '{path}'");
        loop {
            while queue.len() < WINDOW && pos < end {
                let n = chunk.min(end - pos) as u32;
                let at = pos;
                queue.push_back(
                    async move { (at, n, self.sftp.guard(raw.read(handle, at, n)).await) },
                );
                pos += n as u64;
            }
            let Some((at, n, answer)) = queue.next().await else {
                return Ok(());
            };
            let mut data = answer.map_err(|e| self.read_error(path, e))?.data;
            // A server may answer a read with less than was asked: the
            // rest is asked for before the next piece is used.
            while data.len() < n as usize {
                let more = self
                    .sftp
                    .guard(raw.read(handle, at + data.len() as u64, n - data.len() as u32))
                    .await
                    .map_err(|e| self.read_error(path, e))?;
                if more.data.is_empty() {
                    return Err(
                        self.error(&what(), SftpError::UnexpectedBehavior("empty read".into()))
                    );
                }
                data.extend_from_slice(&more.data);
            }
            data.truncate(n as usize);
            sink(&data)?;
        }
    }

    fn read_error(&self, path: &str, e: SftpError) -> CoreError {
        match e {
            SftpError::Status(s) if s.status_code == StatusCode::Eof => CoreError::Protocol {
                host: self.host.to_string(),
                message: format!("'{path}' shrank while being copied"),
            },
            e => self.error(&format!("cannot read '{path}'"), e),
        }
    }

    /// The checksum of the first `len` bytes of `path` on the host, read
    /// back (the host cannot sum it).
    pub async fn sum(&self, path: &str, len: u64) -> Result<Cksum, CoreError> {
        let handle = self.open_read(path).await?;
        let mut sum = Cksum::default();
        let r = self
            .read_into(&handle, path, 0, len, |d| {
                sum.update(d);
                Ok(())
            })
            .await;
        let _ = self
            .sftp
            .guard(self.sftp.raw().close(handle.as_str()))
            .await;
        r.map(|_| sum)
    }
}

/// An entry from SFTP attributes (the type from the mode's format bits).
fn entry(rel: String, a: &FileAttributes) -> Entry {
    let mode = a.permissions.unwrap_or(0);
    let kind = match mode & 0o170000 {
        0o040000 => Kind::Dir,
        0o100000 => Kind::File,
        0o120000 => Kind::Symlink,
        _ => Kind::Other,
    };
    Entry {
        rel,
        kind,
        size: if kind == Kind::File {
            a.size.unwrap_or(0)
        } else {
            0
        },
        mtime: a.mtime.unwrap_or(0) as i64,
        mode: mode & 0o7777,
        link: String::new(),
        name_not_utf8: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_kinds_come_from_the_format_bits_alone() {
        let attrs = |mode: u32| FileAttributes {
            permissions: Some(mode),
            size: Some(7),
            mtime: Some(1_700_000_000),
            ..FileAttributes::empty()
        };
        assert_eq!(entry("f".into(), &attrs(0o100644)).kind, Kind::File);
        assert_eq!(entry("f".into(), &attrs(0o100644)).size, 7);
        assert_eq!(entry("d".into(), &attrs(0o040755)).kind, Kind::Dir);
        assert_eq!(entry("d".into(), &attrs(0o040755)).size, 0);
        assert_eq!(entry("l".into(), &attrs(0o120777)).kind, Kind::Symlink);
        // A block device has the directory bit among its format bits, a
        // socket the regular-file bit: neither is either.
        assert_eq!(entry("b".into(), &attrs(0o060600)).kind, Kind::Other);
        assert_eq!(entry("s".into(), &attrs(0o140755)).kind, Kind::Other);
        assert_eq!(entry("x".into(), &attrs(0o104755)).mode, 0o4755);
        assert_eq!(
            entry("n".into(), &FileAttributes::empty()).kind,
            Kind::Other
        );
    }
}
