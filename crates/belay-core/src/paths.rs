//! Path rules for transfers: how a remote path becomes a shell word, and
//! which names and symlink targets from a remote host may touch the local
//! destination. Paths from a remote host are untrusted: they never name
//! anything outside the destination.

use std::path::{Component, Path, PathBuf};

use crate::shell::quote;

/// A remote path as a shell word evaluated in the user's home directory:
/// absolute paths as given, `~`/`~/x` and relative paths under `$HOME`.
pub fn remote_word(path: &str) -> String {
    if path == "~" {
        "\"$HOME\"".into()
    } else if let Some(rest) = path.strip_prefix("~/") {
        format!("\"$HOME\"/{}", quote(rest))
    } else if path.starts_with('/') {
        quote(path)
    } else {
        format!("\"$HOME\"/{}", quote(path))
    }
}

/// The last component of a path given on a command line (`a/b/` → `b`).
pub fn base_name(path: &str) -> Option<&str> {
    let trimmed = path.trim_end_matches('/');
    let base = trimmed.rsplit('/').next()?;
    (!base.is_empty() && base != "." && base != ".." && base != "~").then_some(base)
}

/// A name from a remote listing or archive as a relative path that stays
/// inside the destination, or why not.
pub fn safe_relative(name: &str) -> Result<PathBuf, &'static str> {
    if name.contains('\0') {
        return Err("name contains a NUL byte");
    }
    if name.starts_with('/') {
        return Err("absolute path");
    }
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains '..'"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("empty name");
    }
    Ok(out)
}

/// Does a symlink at `link` (relative to the destination root) pointing to
/// `target` resolve inside the destination, by its text alone? `..` is
/// allowed only before the first name: `a/..` could climb through another
/// symlink (`a -> ../..`), so a target like `x/../..` is refused, and by
/// induction every accepted link resolves inside.
pub fn symlink_stays_inside(link: &Path, target: &str) -> bool {
    if target.is_empty() || target.starts_with('/') {
        return false;
    }
    let mut depth: Vec<&std::ffi::OsStr> = link
        .parent()
        .map(|p| {
            p.components()
                .filter_map(|c| match c {
                    Component::Normal(s) => Some(s),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut named = false;
    for c in Path::new(target).components() {
        match c {
            Component::Normal(s) => {
                named = true;
                depth.push(s)
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if named || depth.pop().is_none() {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Where a file's partial copy lives: `.NAME.belay-part` beside it.
pub fn partial_name(base: &str) -> String {
    format!(".{base}.belay-part")
}

/// Is this name one of belay's own temporaries (or inside one)?
pub fn is_temporary(name: &str) -> bool {
    let last = name.rsplit('/').next().unwrap_or(name);
    (last.starts_with('.') && last.ends_with(".belay-part"))
        || name.split('/').any(|c| c.starts_with(".belay-stage."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_words() {
        assert_eq!(remote_word("~"), "\"$HOME\"");
        assert_eq!(remote_word("~/a b"), "\"$HOME\"/'a b'");
        assert_eq!(remote_word("/x/y"), "'/x/y'");
        assert_eq!(remote_word("data"), "\"$HOME\"/'data'");
    }

    #[test]
    fn hostile_names_are_refused() {
        assert_eq!(safe_relative("./a/b").unwrap(), PathBuf::from("a/b"));
        assert!(safe_relative("../x").is_err());
        assert!(safe_relative("a/../../x").is_err());
        assert!(safe_relative("/etc/passwd").is_err());
        assert!(safe_relative("").is_err());
        assert!(safe_relative("./").is_err());
    }

    #[test]
    fn symlinks_must_stay_inside() {
        assert!(symlink_stays_inside(Path::new("a/l"), "../b"));
        assert!(symlink_stays_inside(Path::new("l"), "b/c"));
        assert!(!symlink_stays_inside(Path::new("l"), "../b"));
        assert!(!symlink_stays_inside(Path::new("a/l"), "../../b"));
        assert!(!symlink_stays_inside(Path::new("a/l"), "/etc"));
        assert!(!symlink_stays_inside(Path::new("a/l"), "x/../../../y"));
        // `x` may itself be a symlink climbing out (x -> ..).
        assert!(!symlink_stays_inside(Path::new("s"), "x/up/../.."));
        assert!(!symlink_stays_inside(Path::new("a/l"), "b/.."));
    }

    #[test]
    fn base_names() {
        assert_eq!(base_name("a/b/"), Some("b"));
        assert_eq!(base_name("f"), Some("f"));
        assert_eq!(base_name("/"), None);
        assert_eq!(base_name("~"), None);
        assert!(is_temporary("x/.f.belay-part"));
        assert!(!is_temporary("x/f"));
    }
}
