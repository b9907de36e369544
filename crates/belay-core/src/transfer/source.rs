//! The local side of a push: what is pushed (a regular file or a
//! directory, walked root first) and the name it is known by on the host;
//! local errors named by path. The counterpart of [`super::landing`] (the
//! local side of a pull); shared by the exec and the SFTP pushes.

use std::path::Path;

use crate::error::{CoreError, Result};
use crate::paths::base_name;
use crate::transfer::listing::{self, Entry, Kind};

/// The local tree to push (root first) and the name it is known by; only
/// a regular file or a directory can be pushed.
pub(crate) fn local_source(local: &Path) -> Result<(Vec<Entry>, String)> {
    let entries = listing::walk_local(local).map_err(|e| local_error(local, e))?;
    refuse_unless_pushable(local, entries[0].kind)?;
    Ok((entries, local_base_name(local)?))
}

/// Only a regular file or a directory can be pushed.
pub(crate) fn refuse_unless_pushable(local: &Path, kind: Kind) -> Result<()> {
    if !matches!(kind, Kind::File | Kind::Dir) {
        return Err(CoreError::BadInput(format!(
            "'{}' is not a regular file or directory",
            local.display()
        )));
    }
    Ok(())
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

pub(crate) fn local_base_name(local: &Path) -> Result<String> {
    let s = local.to_string_lossy();
    if let Some(b) = base_name(&s) {
        return Ok(b.to_string());
    }
    let abs = std::fs::canonicalize(local).map_err(|e| local_error(local, e))?;
    abs.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| CoreError::BadInput(format!("cannot copy '{}' itself", local.display())))
}
