//! Where a push lands: the `cp -r` rules, as named phases that the exec
//! and the SFTP pushes share. The movers only find out what is on the host
//! (one script, or SFTP `stat`s); the decision is made here, once, so the
//! two methods cannot drift apart:
//!
//! 1. [`into_existing_directory`]: an existing directory receives the copy
//!    under the source's name (or, when `exact`, is the copy itself, which
//!    only a tree may be: [`as_the_directory`]);
//! 2. [`refuse_before_parent`]: otherwise `DEST/` names a directory that is
//!    not there (a push makes it first, so this is rare), and a tree cannot
//!    replace a file;
//! 3. [`as_the_named_path`]: the copy is the named path, whose parent must
//!    exist ([`parent_must_exist`] says so when it does not).

use crate::error::{CoreError, Result};
use crate::paths::{base_name, join, parent_and_name};
use crate::transfer::listing::Kind;

/// Where the copy lands on the host.
pub(crate) struct Destination {
    /// Absolute path of the copy.
    pub path: String,
    /// Its parent directory (absolute) and its own name.
    pub parent: String,
    pub base: String,
}

/// Phase 1, `remote` is an existing directory (`abs`, physical): the copy
/// goes into it under the source's name `local_base`, or, when `exact`,
/// the directory is the copy itself.
pub(crate) fn into_existing_directory(
    abs: &str,
    remote: &str,
    local_base: &str,
    kind: Kind,
    exact: bool,
    host: &str,
) -> Result<Destination> {
    if exact {
        return as_the_directory(abs, remote, kind, host);
    }
    Ok(Destination {
        path: join(abs, local_base),
        parent: abs.to_string(),
        base: local_base.to_string(),
    })
}

/// `exact` onto an existing directory: only a tree may become it.
fn as_the_directory(abs: &str, remote: &str, kind: Kind, host: &str) -> Result<Destination> {
    if kind != Kind::Dir {
        return Err(CoreError::BadInput(format!(
            "'{remote}' on {host} is a directory: cannot put a file there"
        )));
    }
    let (parent, base) = parent_and_name(abs);
    Ok(Destination {
        path: abs.to_string(),
        parent: parent.to_string(),
        base: base.to_string(),
    })
}

/// Phase 2, `remote` is not a directory (`occupied`: something else is
/// there): `DEST/` promised a directory, and a tree cannot replace a file.
pub(crate) fn refuse_before_parent(
    remote: &str,
    kind: Kind,
    occupied: bool,
    host: &str,
) -> Result<()> {
    if remote.ends_with('/') {
        return Err(CoreError::BadInput(format!(
            "no such directory '{remote}' on {host}"
        )));
    }
    if occupied && kind == Kind::Dir {
        return Err(CoreError::BadInput(format!(
            "'{remote}' on {host} is a file: cannot put a directory there"
        )));
    }
    Ok(())
}

/// Phase 3: the copy is `remote` itself, in its existing parent
/// `parent_abs` (physical), under the name typed (the source's name when
/// the typed path has none, as `~`).
pub(crate) fn as_the_named_path(parent_abs: &str, remote: &str, local_base: &str) -> Destination {
    let base = base_name(remote).unwrap_or(local_base).to_string();
    Destination {
        path: join(parent_abs, &base),
        parent: parent_abs.to_string(),
        base,
    }
}

/// Phase 3 when the parent (`parent`, as the host named it) is missing.
pub(crate) fn parent_must_exist(parent: &str, host: &str) -> CoreError {
    CoreError::BadInput(format!(
        "no such directory '{parent}' on {host} (the destination's parent must exist)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(r: Result<impl Sized>) -> String {
        match r {
            Err(CoreError::BadInput(m)) => m,
            Err(e) => panic!("not bad input: {e}"),
            Ok(_) => panic!("accepted"),
        }
    }

    fn parts(d: &Destination) -> (&str, &str, &str) {
        (&d.path, &d.parent, &d.base)
    }

    #[test]
    fn an_existing_directory_receives_the_copy_under_the_source_name() {
        let d = into_existing_directory("/h/dir", "dir", "src", Kind::File, false, "h").unwrap();
        assert_eq!(parts(&d), ("/h/dir/src", "/h/dir", "src"));
    }

    #[test]
    fn exact_makes_an_existing_directory_the_copy_but_only_for_a_tree() {
        let d = into_existing_directory("/h/dir", "dir", "src", Kind::Dir, true, "h").unwrap();
        assert_eq!(parts(&d), ("/h/dir", "/h", "dir"));
        let m = bad(into_existing_directory(
            "/h/dir",
            "dir",
            "src",
            Kind::File,
            true,
            "h",
        ));
        assert!(m.contains("is a directory"), "{m}");
    }

    #[test]
    fn a_slash_promises_a_directory_and_a_tree_cannot_replace_a_file() {
        assert!(
            bad(refuse_before_parent("d/", Kind::File, false, "h"))
                .contains("no such directory 'd/'")
        );
        assert!(bad(refuse_before_parent("f", Kind::Dir, true, "h")).contains("is a file"));
        assert!(refuse_before_parent("f", Kind::File, true, "h").is_ok());
        assert!(refuse_before_parent("new", Kind::Dir, false, "h").is_ok());
    }

    #[test]
    fn otherwise_the_copy_is_the_named_path() {
        let d = as_the_named_path("/h", "x/name", "src");
        assert_eq!(parts(&d), ("/h/name", "/h", "name"));
        let d = as_the_named_path("/h", "~", "src");
        assert_eq!(d.base, "src");
    }
}
