//! Builders for the exec movers' shell scripts, beside the movers that run
//! them (as [`crate::remote::scripts`] is beside the job protocol). Each
//! returns a complete POSIX sh script for
//! [`crate::transport::Transport::run_script`] or `open_stream`; every path
//! in it is quoted here with [`crate::shell::quote`], so the movers never
//! splice a name into shell text themselves. The exit statuses a mover
//! tells apart are named constants. The pure ones are tested through a
//! real `sh` below.

use crate::shell::quote;
use crate::transfer::listing::FIND_FORMAT;

/// Ends a pulled batch's archive; the host's checksums follow it.
pub(super) const SUMS_MARK: &str = "BELAY-SUMS-FOLLOW";
/// After the sum: tar saw files change while it read them.
pub(super) const CHANGED_MARK: &str = "BELAY-FILES-CHANGED";

/// [`destination_lookup`]: the destination exists but cannot be listed.
pub(super) const LOOKUP_CANNOT_LIST: i32 = 4;
/// [`destination_lookup`]: `DEST/` was missing and cannot be created.
pub(super) const LOOKUP_CANNOT_CREATE: i32 = 5;
/// [`list_source`]: nothing is at the source path.
pub(super) const SOURCE_MISSING: i32 = 3;

/// Where a push lands: `word` (a [`crate::paths::remote_word`]) is looked up
/// from `$HOME`. Prints, NUL-separated, `dir` and its physical path; or
/// `file`/`absent` and the physical path of its parent; or `noparent` and
/// the parent as given. With `make_missing` (`DEST/`), a missing directory
/// is made first, in this same step (no window for a parallel set-up to
/// race). With `list_under` (a tree), the same script lists what is
/// already there (one round trip, not two) after the `dir` answer: the
/// directory itself for `Some("")`, else `Some(name)` inside it.
pub(super) fn destination_lookup(
    word: &str,
    make_missing: bool,
    list_under: Option<&str>,
) -> String {
    let list = match list_under {
        None => String::new(),
        Some(name) => {
            let target = if name.is_empty() {
                "$r".to_string()
            } else {
                format!("$r/{}", quote(name))
            };
            format!(
                "\n  t={target}\n  if [ -d \"$t\" ]; then find \"$t\" -printf {FIND_FORMAT} || exit {LOOKUP_CANNOT_LIST}; fi"
            )
        }
    };
    let make = if make_missing {
        format!("\n[ -d \"$d\" ] || mkdir -p -- \"$d\" || exit {LOOKUP_CANNOT_CREATE}")
    } else {
        String::new()
    };
    format!(
        r#"cd "$HOME" || exit 1
d={word}{make}
if [ -d "$d" ]; then r=$(cd -- "$d" && pwd -P); printf 'dir\0%s\0' "$r"{list}
else p=$(dirname -- "$d")
  if [ -d "$p" ]; then
    if [ -e "$d" ] || [ -L "$d" ]; then k=file; else k=absent; fi
    printf '%s\0%s\0' "$k" "$(cd -- "$p" && pwd -P)"
  else printf 'noparent\0%s\0' "$p"; fi
fi"#
    )
}

/// What is beside a single file's destination in `parent`: the file
/// `base`, its partial `partial` and stale staging directories.
pub(super) fn list_beside(parent: &str, base: &str, partial: &str) -> String {
    format!(
        "cd {} || exit 1\nfind . -mindepth 1 -maxdepth 1 \\( -name {} -o -name {} -o -name '.belay-stage.*' \\) -printf {FIND_FORMAT}",
        quote(parent),
        quote(&glob_escape(base)),
        quote(&glob_escape(partial))
    )
}

/// `s` as a `find -name` pattern matching only itself.
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

/// Removes those of the staging directories `stages` that are a day old
/// (a younger one may belong to a push running right now); never fails.
pub(super) fn clear_stale_stages(stages: &[String]) -> String {
    let quoted: Vec<String> = stages.iter().map(|s| quote(s)).collect();
    format!(
        "find {} -maxdepth 0 -type d -mmin +1440 -exec rm -rf {{}} + 2>/dev/null; :",
        quoted.join(" ")
    )
}

/// Opens directories for writing (`u+wx`): read-only ones of an earlier
/// copy that this push fills.
pub(super) fn open_dirs(paths: &[String]) -> String {
    per_chunk("chmod u+wx --", paths)
}

/// `mkdir -p` for every directory in `paths`.
pub(super) fn make_dirs(paths: &[String]) -> String {
    per_chunk("mkdir -p --", paths)
}

/// Gives every `(path, mode)` its mode, one `chmod` per mode.
pub(super) fn dir_modes(dirs: impl IntoIterator<Item = (String, u32)>) -> String {
    let mut by_mode: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
    for (path, mode) in dirs {
        by_mode.entry(mode & 0o7777).or_default().push(path);
    }
    by_mode
        .into_iter()
        .map(|(mode, paths)| per_chunk(&format!("chmod {mode:o} --"), &paths))
        .collect()
}

/// `command` over `paths`, 500 at a time (well inside ARG_MAX), each line
/// ending the script on failure.
fn per_chunk(command: &str, paths: &[String]) -> String {
    paths
        .chunks(500)
        .map(|c| {
            let words: Vec<String> = c.iter().map(|p| quote(p)).collect();
            format!("{command} {} || exit 1\n", words.join(" "))
        })
        .collect()
}

/// Unpacks a pushed batch (a tar stream on stdin) into the new staging
/// directory `stage`. The host sums the archive as tar reads it (tee into
/// a fifo: no second pass over the files) and prints the sum; it must
/// equal the sum of what was sent, which covers every byte of every file
/// and every header naming them.
pub(super) fn unpack_batch(stage: &str) -> String {
    format!(
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
        stage = quote(stage),
    )
}

/// `rm -rf` of one path (a staging directory given up).
pub(super) fn remove(path: &str) -> String {
    format!("rm -rf -- {}", quote(path))
}

/// Moves a verified batch (entries named `names`, relative to `base`) from
/// its staging directory `stage` into place under `base`. A directory
/// missing at the destination moves whole (one rename carries all it
/// holds; directories with the same parent share one `mv`); what is left
/// in a staged directory that exists at the destination (this batch's
/// files and links in it) moves with one `find … -exec mv` per directory,
/// so the script stays small however many files the batch has. Renames
/// only: every file appears under its final name complete. The stage is
/// removed last.
pub(super) fn place<'a>(
    base: &str,
    stage: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> String {
    use crate::paths::join;
    use std::collections::{BTreeMap, BTreeSet};
    let mut file_dirs: BTreeSet<&str> = BTreeSet::new();
    let mut dirs: BTreeSet<&str> = BTreeSet::new();
    for name in names {
        let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
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
    script
}

/// The host's `cksum` of one file.
pub(super) fn sum_file(path: &str) -> String {
    format!("cksum < {}", quote(path))
}

/// Appends stdin to the partial `part`, which must hold exactly `offset`
/// bytes (0: it is started over), then prints the sum of the whole partial.
pub(super) fn append_partial(part: &str, offset: u64) -> String {
    format!(
        "umask 077\np={}\nif [ {offset} -eq 0 ]; then : > \"$p\" || exit 1\nelse [ \"$(wc -c < \"$p\")\" -eq {offset} ] || {{ echo \"partial $p changed during the copy\" >&2; exit 1; }}; fi\ncat >> \"$p\" || exit 1\ncksum < \"$p\"",
        quote(part)
    )
}

/// Gives the verified partial `part` its `mode` and `mtime` and renames it
/// to `final_path`.
pub(super) fn finish_partial(part: &str, mode: u32, mtime: i64, final_path: &str) -> String {
    format!(
        "p={}\nchmod {:o} \"$p\" && touch -d @{} \"$p\" && mv -f -- \"$p\" {}",
        quote(part),
        mode & 0o7777,
        mtime,
        quote(final_path)
    )
}

/// A pull's source: `word` (a [`crate::paths::remote_word`]) from `$HOME`.
/// Prints its physical absolute path and a NUL, then its `find` listing;
/// exits [`SOURCE_MISSING`] when nothing is there.
pub(super) fn list_source(word: &str) -> String {
    format!(
        r#"cd "$HOME" || exit 1
s={word}
if [ -e "$s" ]; then
  printf '%s\0' "$(cd -- "$(dirname -- "$s")" && pwd -P)/$(basename -- "$s")"
  find -H "$s" -printf {FIND_FORMAT}
else exit {SOURCE_MISSING}; fi"#
    )
}

/// The host's side of a pulled batch: tar of the names on stdin (kept in a
/// file first: while tar's output waits to be read, nothing reads our
/// input, so input and output never wait on each other). The host sums
/// the archive as tar writes it (tee into a fifo: no second pass over its
/// files) and sends the sum after it, after [`SUMS_MARK`]; the sum of what
/// arrived must match. It covers every byte of every file and every header
/// naming them. (Big files are summed one by one.) A file that changed
/// while tar read it (tar's status 1: a live log, a checkpoint being
/// written) is no failure: the archive holds what tar read, consistently;
/// [`CHANGED_MARK`] after the sum says so.
pub(super) fn pack_batch(remote_base: &str) -> String {
    format!(
        r#"cd {base} || exit 1
d=$(mktemp -d "${{TMPDIR:-/tmp}}/belay-pull.XXXXXX") || exit 1
trap 'rm -rf "$d"' 0
cat > "$d/names" || exit 1
mkfifo "$d/f" || exit 1
cksum < "$d/f" > "$d/sum" &
{{ tar -cf - --no-recursion --hard-dereference --null -T "$d/names" 2>"$d/err"; echo $? > "$d/st"; }} | tee "$d/f" || exit 1
wait $! || exit 1
st=$(cat "$d/st")
[ "$st" -le 1 ] || {{ cat "$d/err" >&2; exit 1; }}
printf '\n{SUMS_MARK}\n'
cat "$d/sum"
[ "$st" = 0 ] || echo {CHANGED_MARK}"#,
        base = quote(remote_base),
    )
}

/// Sends one big file: the sum of its first `size` bytes (the size the
/// listing saw, no more: a live log that grows while it is read is copied
/// as listed), then `resume` and the bytes after `have` when the first
/// `have` bytes sum to `expect` (what we hold already), else `restart`
/// and the first `size` bytes. Exits 3 when the file vanished.
pub(super) fn send_big(file: &str, size: u64, have: u64, expect: &str) -> String {
    format!(
        "f={}\n[ -f \"$f\" ] || {{ echo \"$f vanished\" >&2; exit 3; }}\nhead -c {size} \"$f\" | cksum || exit 1\nif [ {have} -gt 0 ] && [ \"$(head -c {have} \"$f\" | cksum)\" = {} ]; then echo resume; tail -c +{} \"$f\" | head -c {}; else echo restart; head -c {size} \"$f\"; fi",
        quote(file),
        quote(expect),
        have + 1,
        size.saturating_sub(have)
    )
}

#[cfg(test)]
mod tests;
