//! Transfers against messy trees and hostile conditions (issue 10, files):
//! names that are not UTF-8, 10,000-name batches, a file written while it
//! is pulled, read-only directories updated by a non-root user, `DEST/`
//! that does not exist yet. Each copy runs through a real sshd on loopback
//! (exec, and SFTP where the item concerns it) and on `local`.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::files::*;
use crate::support::remote::Loopback;
use crate::support::*;
use serde_json::Value;

/// A fresh directory on the shared file system (visible to local and to
/// the loopback sshd's sessions alike).
fn shared_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("tempdir")
}

fn describe(out: &Output) -> String {
    format!(
        "{:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        stderr_of(out)
    )
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}); {}", describe(out)))
}

// ---------------------------------------------------------------------------
// 8. Names that are not UTF-8.
// ---------------------------------------------------------------------------

/// A remote tree holding `bad\xff.txt` next to ordinary files is pulled
/// either byte-exact or with that one name refused (and the rest copied);
/// running the same command again gives the same answer, never "damaged".
fn pulls_names_that_are_not_utf8(b: &Belay, host: &str, via: &[&str]) {
    let remote = shared_dir("belay-remote.");
    let tree = remote.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    let bad = OsStr::from_bytes(b"bad\xff.txt");
    std::fs::write(tree.join("good.txt"), b"good").unwrap();
    std::fs::write(tree.join("sub/also.txt"), b"also").unwrap();
    std::fs::write(tree.join(bad), b"bad name, good bytes").unwrap();
    std::fs::write(tree.join("sub").join(bad), b"deeper").unwrap();
    let dest = b.scratch(&format!("back{}", via.join("")));
    for run in 0..2 {
        let out = b
            .cmd(["pull", host])
            .args(via)
            .arg(&tree)
            .arg(&dest)
            .arg("--json")
            .output();
        let err = stderr_of(&out);
        assert!(
            !err.contains("damaged"),
            "run {run}: a name is not damage: {}",
            describe(&out)
        );
        assert_eq!(
            std::fs::read(dest.join("good.txt")).ok().as_deref(),
            Some(&b"good"[..]),
            "run {run}: the rest is copied: {}",
            describe(&out)
        );
        assert_eq!(
            std::fs::read(dest.join("sub/also.txt")).ok().as_deref(),
            Some(&b"also"[..]),
            "run {run}: {}",
            describe(&out)
        );
        if out.status.success() {
            // Copied byte-exact.
            assert_eq!(
                std::fs::read(dest.join(bad)).unwrap(),
                b"bad name, good bytes"
            );
            assert_eq!(
                std::fs::read(dest.join("sub").join(bad)).unwrap(),
                b"deeper"
            );
        } else {
            // Refused by name (exit 1, the summary lists both).
            assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
            let v = json_of(&out);
            let refused = v["refused"].as_array().expect("refused");
            assert_eq!(refused.len(), 2, "{v:#}");
            assert!(err.contains("bad"), "names it: {err}");
            assert!(!std::fs::exists(dest.join(bad)).unwrap());
        }
    }
}

#[test]
fn names_that_are_not_utf8_are_copied_or_refused_by_name_over_ssh() {
    let host = Loopback::start();
    let b = host.belay();
    pulls_names_that_are_not_utf8(&b, "target", &[]);
    pulls_names_that_are_not_utf8(&b, "target", &["--via", "sftp"]);
}

#[test]
fn names_that_are_not_utf8_are_copied_or_refused_by_name_on_local() {
    pulls_names_that_are_not_utf8(&Belay::new(), "local", &[]);
}

// ---------------------------------------------------------------------------
// 9. No argument limit: 10,000 names of 60 characters in one batch.
// ---------------------------------------------------------------------------

/// 10,000 files whose relative paths are 60 characters long: one batch's
/// names are ~640 KB, far over the kernel's 128 KiB limit for one argument.
fn pulls_ten_thousand_long_names(b: &Belay, host: &str) {
    let remote = shared_dir("belay-remote.");
    let tree = remote.path().join("many");
    let mut names = Vec::new();
    for d in 0..10 {
        let dir = format!("directory-number-{d:02}");
        std::fs::create_dir_all(tree.join(&dir)).unwrap();
        for i in 0..1000 {
            let rel = format!("{dir}/file-{i:04}-");
            let rel = format!("{rel}{}", "x".repeat(60 - rel.len()));
            assert_eq!(rel.len(), 60);
            std::fs::write(tree.join(&rel), rel.as_bytes()).unwrap();
            names.push(rel);
        }
    }
    let dest = b.scratch("many");
    let v = b
        .cmd(["pull", host])
        .arg(&tree)
        .arg(&dest)
        .arg("--json")
        .deadline(Duration::from_secs(240))
        .json();
    assert_eq!(v["files"], 10_000, "{v:#}");
    assert_eq!(v["files_transferred"], 10_000, "{v:#}");
    for rel in &names {
        assert_eq!(
            std::fs::read(dest.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}")),
            rel.as_bytes()
        );
    }
}

#[test]
fn a_pull_of_ten_thousand_long_names_from_an_ssh_host_has_no_argument_limit() {
    let host = Loopback::start();
    pulls_ten_thousand_long_names(&host.belay(), "target");
}

#[test]
fn a_pull_of_ten_thousand_long_names_from_local_has_no_argument_limit() {
    pulls_ten_thousand_long_names(&Belay::new(), "local");
}

// ---------------------------------------------------------------------------
// 13. A file written while it is pulled.
// ---------------------------------------------------------------------------

/// A running job's files being written while they are pulled: a log
/// appended to line by line ([`log_line`], one write each: an append is
/// atomic) and a checkpoint rewritten in place over and over.
struct Writers {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn log_line(n: u64) -> String {
    format!("line {n:08} of a live log\n")
}

impl Writers {
    /// Appends lines from number `next` to `log`, one each `pause`, and
    /// writes `ckpt_bytes(k)` over `ckpt` for k = 1, 2, … without pause.
    fn start(
        log: &Path,
        next: u64,
        pause: Duration,
        ckpt: &Path,
        ckpt_bytes: impl Fn(u8) -> Vec<u8> + Send + 'static,
    ) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let appender = {
            let (stop, log) = (stop.clone(), log.to_path_buf());
            std::thread::spawn(move || {
                let mut f = std::fs::File::options().append(true).open(&log).unwrap();
                let mut n = next;
                while !stop.load(Ordering::Relaxed) {
                    f.write_all(log_line(n).as_bytes()).unwrap();
                    n += 1;
                    std::thread::sleep(pause);
                }
            })
        };
        let rewriter = {
            let (stop, ckpt) = (stop.clone(), ckpt.to_path_buf());
            std::thread::spawn(move || {
                use std::os::unix::fs::FileExt;
                let f = std::fs::File::options().write(true).open(&ckpt).unwrap();
                let mut k = 0u8;
                while !stop.load(Ordering::Relaxed) {
                    k = k.wrapping_add(1);
                    f.write_all_at(&ckpt_bytes(k), 0).unwrap();
                }
            })
        };
        Writers {
            stop,
            threads: vec![appender, rewriter],
        }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

/// A tree `run` with `n` small files beside the live ones.
fn run_tree(remote: &Path, n: usize) -> std::path::PathBuf {
    let tree = remote.join("run");
    std::fs::create_dir_all(&tree).unwrap();
    for i in 0..n {
        std::fs::write(tree.join(format!("f{i:03}")), random_bytes(4 * KIB)).unwrap();
    }
    tree
}

/// The small files arrived; the log's copy is whole lines the writer
/// wrote, in order, at least `listed` bytes of them.
fn assert_rest_and_log(tree: &Path, dest: &Path, n: usize, log: &str, listed: usize) {
    for i in 0..n {
        let name = format!("f{i:03}");
        assert_same_file(&tree.join(&name), &dest.join(&name));
    }
    let copy = std::fs::read_to_string(dest.join(log)).expect("the log is copied");
    assert!(copy.len() >= listed, "at least what was listed");
    assert!(
        copy.lines()
            .enumerate()
            .all(|(i, l)| format!("{l}\n") == log_line(i as u64)),
        "the copy is lines the writer wrote, in order, whole"
    );
}

/// Small files (tar batches): `live.log` grows all through the pull and
/// `ckpt.bin` is rewritten with the same bytes (its size never changes,
/// its mtime always does): the batch holding them is not failed, the
/// change is said, everything is copied as it was read.
fn pulls_a_file_being_written(b: &Belay, host: &str) {
    let remote = shared_dir("belay-remote.");
    let tree = run_tree(remote.path(), 200);
    std::fs::write(tree.join("live.log"), b"").unwrap();
    let ckpt_bytes = random_bytes(64 * KIB);
    std::fs::write(tree.join("ckpt.bin"), &ckpt_bytes).unwrap();
    let same = ckpt_bytes.clone();
    // ~3,000 lines a second: a small file all through the test.
    let writers = Writers::start(
        &tree.join("live.log"),
        0,
        Duration::from_micros(300),
        &tree.join("ckpt.bin"),
        move |_| same.clone(),
    );
    let dest = b.scratch("run");
    // Several pulls, so the writers are surely caught mid-file.
    let mut outs = Vec::new();
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(&dest);
        outs.push(
            b.cmd(["pull", host])
                .arg(&tree)
                .arg(&dest)
                .arg("--json")
                .deadline(Duration::from_secs(120))
                .output(),
        );
    }
    writers.stop();
    for out in &outs {
        assert!(
            out.status.success(),
            "a file being written does not fail the batch: {}",
            describe(out)
        );
    }
    assert!(
        outs.iter().any(|o| stderr_of(o).contains("changed")),
        "the change is said: {}",
        describe(&outs[0])
    );
    assert_rest_and_log(&tree, &dest, 200, "live.log", 0);
    assert_eq!(
        std::fs::read(dest.join("ckpt.bin")).expect("the checkpoint is copied"),
        ckpt_bytes
    );
}

#[test]
fn a_file_written_while_pulled_over_ssh_does_not_fail_its_batch() {
    let host = Loopback::start();
    pulls_a_file_being_written(&host.belay(), "target");
}

#[test]
fn a_file_written_while_pulled_on_local_does_not_fail_its_batch() {
    pulls_a_file_being_written(&Belay::new(), "local");
}

/// Big files (streamed one by one): a log of 5 MiB that grows during the
/// pull is copied as listed (whole lines, in order); a checkpoint rewritten
/// with new bytes all the time is tried twice, then named as not copied,
/// while the rest of the copy goes on (exit 1).
fn pulls_big_files_being_written(b: &Belay, host: &str) {
    let remote = shared_dir("belay-remote.");
    let tree = run_tree(remote.path(), 10);
    let mut first = String::new();
    let mut n = 0;
    while first.len() < 5 * MIB {
        first.push_str(&log_line(n));
        n += 1;
    }
    std::fs::write(tree.join("big.log"), &first).unwrap();
    std::fs::write(tree.join("ckpt.bin"), vec![0u8; 5 * MIB]).unwrap();
    let writers = Writers::start(
        &tree.join("big.log"),
        n,
        Duration::from_micros(100),
        &tree.join("ckpt.bin"),
        |k| vec![k; 5 * MIB],
    );
    let dest = b.scratch("run");
    let out = b
        .cmd(["pull", host])
        .arg(&tree)
        .arg(&dest)
        .arg("--json")
        .deadline(Duration::from_secs(120))
        .output();
    writers.stop();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr_of(&out);
    assert!(
        err.lines()
            .any(|l| l.contains("ckpt.bin") && l.contains("kept changing")),
        "the checkpoint is named: {err}"
    );
    assert_eq!(json_of(&out)["refused"], serde_json::json!(["ckpt.bin"]));
    assert!(!std::fs::exists(dest.join("ckpt.bin")).unwrap());
    assert_rest_and_log(&tree, &dest, 10, "big.log", first.len());
}

#[test]
fn big_files_written_while_pulled_over_ssh_are_copied_as_listed_or_named() {
    let host = Loopback::start();
    pulls_big_files_being_written(&host.belay(), "target");
}

#[test]
fn big_files_written_while_pulled_on_local_are_copied_as_listed_or_named() {
    pulls_big_files_being_written(&Belay::new(), "local");
}

// ---------------------------------------------------------------------------
// 14. Updating a tree with read-only directories, as a non-root user.
// ---------------------------------------------------------------------------

/// A tree whose `ro/` directory is 0555, holding a file.
fn tree_with_read_only_dir(root: &Path) {
    std::fs::create_dir_all(root.join("ro/inner")).unwrap();
    std::fs::write(root.join("top.txt"), b"top v1").unwrap();
    std::fs::write(root.join("ro/file.txt"), b"ro v1").unwrap();
    std::fs::write(root.join("ro/inner/deep.txt"), b"deep v1").unwrap();
    for d in ["ro/inner", "ro"] {
        std::fs::set_permissions(root.join(d), std::fs::Permissions::from_mode(0o555)).unwrap();
    }
}

/// Rewrite the files inside the read-only directories (new size, so the
/// update must copy them).
fn change_files_under_read_only_dirs(root: &Path) {
    for d in ["ro", "ro/inner"] {
        std::fs::set_permissions(root.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(root.join("ro/file.txt"), b"ro version two").unwrap();
    std::fs::write(root.join("ro/inner/deep.txt"), b"deep version two").unwrap();
    for d in ["ro/inner", "ro"] {
        std::fs::set_permissions(root.join(d), std::fs::Permissions::from_mode(0o555)).unwrap();
    }
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn pushing_again_onto_read_only_directories_works_for_a_non_root_user() {
    let host = Loopback::start();
    let user = belay_testbed::TestUser::create().expect("test user");
    host.add_user_host("asuser", &user);
    let b = host.belay();
    let src = b.scratch("src");
    tree_with_read_only_dir(&src);
    for via in ["exec", "sftp"] {
        // The same command twice: into the user's directory `into-VIA`,
        // where the copy is `into-VIA/src`.
        let into = user.path(&format!("into-{via}"));
        std::fs::create_dir(&into).unwrap();
        std::os::unix::fs::chown(&into, Some(user.uid()), Some(user.gid())).unwrap();
        let dest = into.join("src");
        let dest_s = into.to_str().unwrap();
        b.cmd(["push", "asuser", "--via", via])
            .arg(&src)
            .arg(dest_s)
            .ok();
        assert_eq!(std::fs::read(dest.join("ro/file.txt")).unwrap(), b"ro v1");
        assert_eq!(mode_of(&dest.join("ro")), 0o555, "{via}");
        change_files_under_read_only_dirs(&src);
        let out = b
            .cmd(["push", "asuser", "--via", via])
            .arg(&src)
            .arg(dest_s)
            .output();
        assert!(out.status.success(), "{via}: {}", describe(&out));
        assert_same_tree(&src, &dest);
        assert_eq!(mode_of(&dest.join("ro")), 0o555, "{via}: mode restored");
        assert_eq!(
            mode_of(&dest.join("ro/inner")),
            0o555,
            "{via}: mode restored"
        );
        // Back to v1 for the next method (root: 0555 is no obstacle here).
        std::fs::remove_dir_all(&src).unwrap();
        tree_with_read_only_dir(&src);
    }
}

/// `pull` run by `user` itself (belay as that user, on `local`): the
/// second run writes into directories the first made read-only.
#[test]
fn pulling_again_onto_read_only_directories_works_for_a_non_root_user() {
    remote_prerequisites();
    let user = belay_testbed::TestUser::create().expect("test user");
    let b = Belay::new();
    // The user's own BELAY_HOME and working directory.
    for d in [b.home.path(), b.scratch.path(), &b.scratch("home")] {
        std::os::unix::fs::chown(d, Some(user.uid()), Some(user.gid())).unwrap();
    }
    let src = user.path("src");
    tree_with_read_only_dir(&src);
    chown_tree(&src, &user);
    // The same command twice: into the user's directory `into`, where
    // the copy is `into/src`.
    let into = user.path("into");
    std::fs::create_dir(&into).unwrap();
    std::os::unix::fs::chown(&into, Some(user.uid()), Some(user.gid())).unwrap();
    let dest = into.join("src");
    let as_user = |args: &[&str]| {
        let mut c = b.command(args);
        c.uid(user.uid()).gid(user.gid());
        run_with_deadline(c, Duration::from_secs(60))
    };
    let args = [
        "pull",
        "local",
        src.to_str().unwrap(),
        into.to_str().unwrap(),
    ];
    let out = as_user(&args);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(mode_of(&dest.join("ro")), 0o555);
    change_files_under_read_only_dirs(&src);
    let out = as_user(&args);
    assert!(out.status.success(), "second pull: {}", describe(&out));
    assert_same_tree(&src, &dest);
    assert_eq!(mode_of(&dest.join("ro")), 0o555, "mode restored");
    assert_eq!(mode_of(&dest.join("ro/inner")), 0o555, "mode restored");
}

fn remote_prerequisites() {
    crate::support::remote::prerequisites();
}

fn chown_tree(root: &Path, user: &belay_testbed::TestUser) {
    let st = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", user.uid(), user.gid()))
        .arg(root)
        .status()
        .unwrap();
    assert!(st.success());
}

// ---------------------------------------------------------------------------
// 28. `push HOST LOCAL DEST/` where DEST does not exist yet.
// ---------------------------------------------------------------------------

fn push_into_a_missing_directory(b: &Belay, host: &str, via: &[&str]) {
    let src = b.scratch(&format!("src-{host}-{}", via.join("")));
    std::fs::create_dir_all(src.join("tree/sub")).unwrap();
    std::fs::write(src.join("one.txt"), b"one").unwrap();
    std::fs::write(src.join("tree/sub/two.txt"), b"two").unwrap();
    let remote = shared_dir("belay-remote.");
    let r = remote.path();

    // A file into `new/deeper/` (neither exists): created, the file inside.
    let into = r.join("new/deeper");
    b.cmd(["push", host])
        .args(via)
        .arg(src.join("one.txt"))
        .arg(format!("{}/", into.display()))
        .ok();
    assert_eq!(std::fs::read(into.join("one.txt")).unwrap(), b"one");
    // A tree into a missing `trees/`: the tree lands under its own name.
    let trees = r.join("trees");
    b.cmd(["push", host])
        .args(via)
        .arg(src.join("tree"))
        .arg(format!("{}/", trees.display()))
        .ok();
    assert_eq!(
        std::fs::read(trees.join("tree/sub/two.txt")).unwrap(),
        b"two"
    );
    // Without the slash, cp's rule stays: the destination is the copy.
    b.cmd(["push", host])
        .args(via)
        .arg(src.join("one.txt"))
        .arg(r.join("named"))
        .ok();
    assert_eq!(std::fs::read(r.join("named")).unwrap(), b"one");
    // ...and its parent must exist.
    let out = b
        .cmd(["push", host])
        .args(via)
        .arg(src.join("one.txt"))
        .arg(r.join("missing/named"))
        .output();
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(!std::fs::exists(r.join("missing")).unwrap());
}

trait Args {
    fn args(self, a: &[&str]) -> Self;
}

impl Args for Cmd<'_> {
    fn args(self, a: &[&str]) -> Self {
        a.iter().fold(self, |c, x| c.arg(x))
    }
}

#[test]
fn push_into_a_missing_directory_with_a_trailing_slash_creates_it_over_ssh() {
    let host = Loopback::start();
    let b = host.belay();
    push_into_a_missing_directory(&b, "target", &[]);
    push_into_a_missing_directory(&b, "target", &["--via", "sftp"]);
}

#[test]
fn push_into_a_missing_directory_with_a_trailing_slash_creates_it_on_local() {
    push_into_a_missing_directory(&Belay::new(), "local", &[]);
}
