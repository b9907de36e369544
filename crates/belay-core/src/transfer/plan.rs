//! Planning a push, with no host and no I/O but the CRLF sniff: from the
//! local walk and what is already at the destination to what each mover
//! sends, skips, resumes or refuses. The exec and SFTP movers carry out
//! the same plan, so they cannot disagree about which file is complete.
//! On a pull, the same for each listed entry: which names and kinds land
//! ([`pulled_name`], [`pulled_kind`]) and which are refused, and why.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::BIG_FILE;
use super::listing::{Entry, Kind};
use crate::paths::{is_temporary, partial_beside, safe_relative, symlink_stays_inside};

/// One local entry to place on the host.
pub(crate) struct Step<'a> {
    pub entry: &'a Entry,
    /// Where it is read from.
    pub local: PathBuf,
    /// Its path relative to the destination's base directory.
    pub name: String,
    /// What has that name on the host already, if anything.
    pub there: Option<Kind>,
    /// Its mode on the host, if it is there (a read-only directory is
    /// opened for the push and given its mode back).
    pub there_mode: Option<u32>,
    /// Size of a partial an earlier run left beside it (files only).
    pub partial: Option<u64>,
}

/// What a push does, in the order it does it.
#[derive(Default)]
pub(crate) struct PushPlan<'a> {
    /// Small files and symlinks, in walk order (one tar batch or many
    /// small writes).
    pub small: Vec<Step<'a>>,
    /// Files of at least [`BIG_FILE`] bytes, sent one by one, resumable.
    pub big: Vec<Step<'a>>,
    /// Directories, parents first.
    pub dirs: Vec<Step<'a>>,
    /// Regular files in the source, and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// Files already complete at the destination.
    pub skipped: u64,
    /// Bytes of the files to send.
    pub to_copy: u64,
    /// What the user should hear, in walk order (CRLF scripts, entries
    /// that cannot be copied).
    pub warnings: Vec<String>,
}

/// Plans a push of `entries` (walked from `local`, root first). For a
/// tree (`single` is `None`) each entry keeps its relative path under the
/// destination; a single file takes the name `single`. `there` is what the
/// host listed under the same base directory.
pub(crate) fn plan_push<'a>(
    local: &Path,
    entries: &'a [Entry],
    single: Option<&str>,
    there: &[Entry],
) -> PushPlan<'a> {
    let there: HashMap<&str, &Entry> = there.iter().map(|e| (e.rel.as_str(), e)).collect();
    let mut plan = PushPlan::default();
    for e in entries {
        let name = single.map_or_else(|| e.rel.clone(), str::to_string);
        let now = there.get(name.as_str()).copied();
        let step = Step {
            entry: e,
            local: if e.rel.is_empty() {
                local.to_path_buf()
            } else {
                local.join(&e.rel)
            },
            partial: (e.kind == Kind::File)
                .then(|| there.get(partial_beside(&name).as_str()).copied())
                .flatten()
                .filter(|p| p.kind == Kind::File)
                .map(|p| p.size),
            there: now.map(|r| r.kind),
            there_mode: now.map(|r| r.mode),
            name,
        };
        let complete = now.is_some_and(|r| e.is_copied_as(r));
        match e.kind {
            Kind::File => {
                plan.files += 1;
                plan.bytes += e.size;
                if let Some(crlf) = crlf_warning(&step.local, single.is_some()) {
                    plan.warnings.push(crlf);
                }
                if complete {
                    plan.skipped += 1;
                } else {
                    plan.to_copy += e.size;
                    if e.size >= BIG_FILE {
                        plan.big.push(step);
                    } else {
                        plan.small.push(step);
                    }
                }
            }
            Kind::Symlink if !complete => plan.small.push(step),
            Kind::Symlink => {}
            Kind::Dir => plan.dirs.push(step),
            Kind::Other => plan.warnings.push(format!(
                "skipping '{}': not a regular file, directory or symlink",
                step.local.display()
            )),
        }
    }
    plan
}

/// Why a remote name that is not UTF-8 is refused (exec and SFTP alike).
pub(crate) const NOT_UTF8: &str = "its name is not UTF-8 (rename it on the host to copy it)";

/// What a pull does with one name from the host's listing (relative to
/// the source; empty for the source itself).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PulledName {
    /// Lands at this path under the destination (empty: the destination).
    Lands(PathBuf),
    /// One of belay's own temporaries: left alone, not mentioned.
    Temporary,
    /// Would leave the destination: refused, with why.
    Refused(&'static str),
}

/// Vets a name the (untrusted) host listed, for either mover.
pub(crate) fn pulled_name(rel: &str, name_not_utf8: bool) -> PulledName {
    if rel.is_empty() {
        PulledName::Lands(PathBuf::new())
    } else if is_temporary(rel) {
        PulledName::Temporary
    } else if name_not_utf8 {
        // The lossy name names nothing on the host: asking for it would
        // fail the whole batch, on every run.
        PulledName::Refused(NOT_UTF8)
    } else {
        match safe_relative(rel) {
            Ok(p) => PulledName::Lands(p),
            Err(why) => PulledName::Refused(why),
        }
    }
}

/// What a pull makes of one listed entry, by its kind.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PulledKind {
    Dir,
    File,
    /// A symlink whose target stays inside the destination.
    Link,
}

/// Vets a listed entry's kind for either mover: directories, regular files
/// and symlinks that stay inside the destination (`local_rel` is where it
/// lands) are copied; anything else is refused, with why.
pub(crate) fn pulled_kind(entry: &Entry, local_rel: &Path) -> Result<PulledKind, &'static str> {
    match entry.kind {
        Kind::Dir => Ok(PulledKind::Dir),
        Kind::File => Ok(PulledKind::File),
        Kind::Symlink if symlink_stays_inside(local_rel, &entry.link) => Ok(PulledKind::Link),
        Kind::Symlink => Err("symlink pointing outside the destination"),
        Kind::Other => Err("not a regular file, directory or symlink"),
    }
}

/// A warning for scripts with Windows line endings, which a shell on the
/// host would fail on with baffling errors (`$'\r': command not found`).
/// Scripts are files named `*.sh`/`*.bash`, or — when `sniff` — any file
/// starting with `#!` (only worth opening for a file copied on its own: a
/// tree of 10,000 files is not read twice for this).
pub fn crlf_warning(path: &Path, sniff: bool) -> Option<String> {
    use std::io::Read;
    let name = path.file_name()?.to_string_lossy();
    let named_script = name.ends_with(".sh") || name.ends_with(".bash");
    if !named_script && !sniff {
        return None;
    }
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(64 * 1024)
        .read_to_end(&mut head)
        .ok()?;
    let script = named_script || head.starts_with(b"#!");
    let crlf = head.windows(2).any(|w| w == b"\r\n");
    (script && crlf).then(|| {
        format!(
            "warning: '{}' has CRLF (Windows) line endings; a shell will fail on it — fix: sed -i 's/\\r$//' {}",
            path.display(),
            crate::shell::quote(&path.display().to_string())
        )
    })
}

/// Small files per batch, and bytes per batch.
const BATCH_FILES: usize = 10_000;
const BATCH_BYTES: u64 = 64 << 20;

/// Splits items into batches of at most [`BATCH_FILES`] items and
/// [`BATCH_BYTES`] bytes (a single bigger item makes a batch of its own).
pub(crate) fn batches<T>(items: &[T], size: impl Fn(&T) -> u64) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, it) in items.iter().enumerate() {
        if i > start && (i - start >= BATCH_FILES || bytes + size(it) > BATCH_BYTES) {
            out.push(&items[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size(it);
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rel: &str, size: u64, mtime: i64) -> Entry {
        Entry {
            rel: rel.into(),
            kind: Kind::File,
            size,
            mtime,
            mode: 0o644,
            link: String::new(),
            name_not_utf8: false,
        }
    }

    fn dir(rel: &str) -> Entry {
        Entry {
            kind: Kind::Dir,
            mode: 0o755,
            ..file(rel, 0, 0)
        }
    }

    fn names(steps: &[Step]) -> Vec<String> {
        steps.iter().map(|s| s.name.clone()).collect()
    }

    #[test]
    fn a_tree_skips_complete_files_and_resumes_a_partial() {
        let walked = [
            dir(""),
            dir("d"),
            file("d/same", 10, 5),
            file("d/changed", 10, 6),
            file("big", BIG_FILE, 7),
        ];
        let there = [
            dir(""),
            file("d/same", 10, 5),
            file("d/changed", 10, 5),
            file(".big.belay-part", 100, 1),
        ];
        let plan = plan_push(Path::new("/nowhere"), &walked, None, &there);
        assert_eq!(names(&plan.small), ["d/changed"]);
        assert_eq!(names(&plan.big), ["big"]);
        assert_eq!(plan.big[0].partial, Some(100));
        assert_eq!(names(&plan.dirs), ["", "d"]);
        assert_eq!(plan.dirs[1].there, None);
        assert_eq!((plan.files, plan.skipped), (3, 1));
        assert_eq!(plan.bytes, 20 + BIG_FILE);
        assert_eq!(plan.to_copy, 10 + BIG_FILE);
        assert_eq!(plan.small[0].local, Path::new("/nowhere/d/changed"));
    }

    #[test]
    fn a_single_file_takes_the_destination_name() {
        let walked = [file("", 3, 1)];
        let plan = plan_push(Path::new("/x/a.txt"), &walked, Some("b.txt"), &[]);
        assert_eq!(names(&plan.small), ["b.txt"]);
        assert_eq!(plan.small[0].local, Path::new("/x/a.txt"));
    }

    #[test]
    fn devices_are_skipped_with_a_warning_and_crlf_scripts_are_named() {
        let tmp = std::env::temp_dir().join(format!("belay-plan-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::write(tmp.join("run.sh"), "echo hi\r\n").unwrap();
        let walked = [
            dir(""),
            file("run.sh", 9, 1),
            Entry {
                kind: Kind::Other,
                ..file("fifo", 0, 0)
            },
        ];
        let plan = plan_push(&tmp, &walked, None, &[]);
        std::fs::remove_dir_all(&tmp).unwrap();
        assert_eq!(plan.warnings.len(), 2, "{:?}", plan.warnings);
        assert!(plan.warnings[0].contains("CRLF"), "{}", plan.warnings[0]);
        assert!(
            plan.warnings[1].starts_with("skipping '"),
            "{}",
            plan.warnings[1]
        );
    }

    #[test]
    fn pulled_names_land_inside_or_are_refused() {
        assert_eq!(pulled_name("", false), PulledName::Lands(PathBuf::new()));
        assert_eq!(pulled_name("a/b", false), PulledName::Lands("a/b".into()));
        assert_eq!(pulled_name("a/.b.belay-part", false), PulledName::Temporary);
        assert!(matches!(pulled_name("../x", false), PulledName::Refused(_)));
        assert!(matches!(pulled_name("/etc", false), PulledName::Refused(_)));
        assert_eq!(
            pulled_name("a/b\u{fffd}", true),
            PulledName::Refused(NOT_UTF8)
        );
    }

    #[test]
    fn batches_split_by_count_and_bytes() {
        let sizes = [1u64, BATCH_BYTES, 1, 1];
        let b = batches(&sizes, |s| *s);
        assert_eq!(b.iter().map(|b| b.len()).collect::<Vec<_>>(), [1, 1, 2]);
    }

    #[test]
    fn a_pull_copies_directories_files_and_links_that_stay_inside() {
        let link = |target: &str| Entry {
            kind: Kind::Symlink,
            link: target.into(),
            ..file("d/l", 0, 0)
        };
        let at = Path::new("d/l");
        assert_eq!(pulled_kind(&dir("d"), Path::new("d")), Ok(PulledKind::Dir));
        assert_eq!(
            pulled_kind(&file("f", 1, 0), Path::new("f")),
            Ok(PulledKind::File)
        );
        assert_eq!(pulled_kind(&link("../f"), at), Ok(PulledKind::Link));
        assert_eq!(
            pulled_kind(&link("../../etc/passwd"), at),
            Err("symlink pointing outside the destination")
        );
        let fifo = Entry {
            kind: Kind::Other,
            ..file("p", 0, 0)
        };
        assert_eq!(
            pulled_kind(&fifo, Path::new("p")),
            Err("not a regular file, directory or symlink")
        );
    }
}
