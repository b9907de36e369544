//! File transfer (issue 5) through a real OpenSSH sshd on loopback: `push`,
//! `pull`, `run --input/--output`, `fetch`. Contents, permission bits and
//! mtimes survive both ways; cp-like destinations; resume after a SIGKILL
//! mid-file; corrupt partials; hostile remote trees and a hostile remote
//! `tar`; bad input; a full disk; CRLF scripts; job outputs fetched.
//!
//! The loopback sshd runs in its own mount namespace: its sessions see the
//! machine's file system (so a remote path under /tmp is readable here), but
//! their `/root` is a private tmpfs (read it through `Loopback::remote_view`)
//! and mounts made with `Loopback::in_namespace` are theirs alone.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use crate::support::files::*;
use crate::support::remote::Loopback;
use crate::support::*;
use serde_json::Value;

const BIG: usize = 64 * MIB;
const FAIL_AT: usize = 32 * MIB;

/// A path as a command-line argument (`&p(..)` in an argument array: the
/// temporary lives as long as the array).
fn p(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_owned()
}

/// A fresh directory on the shared file system (visible to local and to
/// the loopback sshd's sessions alike).
fn shared_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("tempdir")
}

/// Run with a generous deadline (64 MiB through a debug build).
fn run_long(b: &Belay, args: &[&str]) -> Output {
    run_with_deadline(b.command(args), Duration::from_secs(240))
}

fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "belay {args:?}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        stderr_of(out)
    )
}

fn assert_ok(args: &[&str], out: &Output) {
    assert!(out.status.success(), "{}", describe(args, out));
}

/// Run `args` (which include `--json`), insist on exit 0, parse stdout.
fn ok_json(b: &Belay, args: &[&str]) -> Value {
    let out = run_long(b, args);
    assert_ok(args, &out);
    parse_json(args, &out)
}

fn parse_json(args: &[&str], out: &Output) -> Value {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "--json stdout is not one JSON object ({e}); {}",
            describe(args, out)
        )
    });
    assert!(v.is_object(), "not an object: {v}");
    v
}

fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is not a number in {v:#}"))
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The job id of the only job recorded so far.
fn only_job_id(b: &Belay) -> String {
    let jobs = b.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    jobs[0]["id"].as_str().expect("id").to_string()
}

/// Exit 2 with exactly one stderr line, which contains every `needle`.
fn assert_bad_input(args: &[&str], out: &Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(2), "{}", describe(args, out));
    let err = stderr_of(out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one stderr line: {}", describe(args, out));
    assert!(lines[0].starts_with("belay: "), "{}", lines[0]);
    for n in needles {
        assert!(
            lines[0].contains(n),
            "stderr should name {n:?}: {}",
            lines[0]
        );
    }
}

/// Flip `len` bytes at `offset` (each byte inverted, so they surely differ).
fn corrupt(path: &Path, offset: u64, len: usize) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0u8; len];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut buf).expect("the partial is long enough");
    for b in &mut buf {
        *b = !*b;
    }
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&buf).unwrap();
    f.sync_all().unwrap();
}

// ---------------------------------------------------------------------------
// 1. Copies keep everything; cp-like destinations.
// ---------------------------------------------------------------------------

/// Push and pull single files and a tree on `host`, checking contents,
/// permission bits, mtimes, symlinks and cp-like destinations; every copy
/// is made the way `method` says (`exec` or `sftp`).
fn copies_keep_everything(b: &Belay, host: &str, method: &str) {
    let src_parent = b.scratch("src");
    std::fs::create_dir(&src_parent).unwrap();
    let tree = make_tree(&src_parent.join("tree"));
    let t = &tree.root;
    let remote = shared_dir("belay-remote.");
    let r = remote.path();

    // A single file: the destination names the copy; a 0600 file stays 0600.
    let args = [
        "push",
        host,
        &p(&t.join("secret")),
        &p(&r.join("secret-copy")),
        "--json",
    ];
    let v = ok_json(b, &args);
    assert_same_file(&t.join("secret"), &r.join("secret-copy"));
    assert_eq!(mode_of(&r.join("secret-copy")), 0o600);
    assert_eq!(v["direction"], "push", "{v:#}");
    assert_eq!(v["host"], host, "{v:#}");
    assert_eq!(v["method"], method, "{v:#}");
    assert_eq!(num(&v, "files"), 1, "{v:#}");
    assert_eq!(num(&v, "files_transferred"), 1, "{v:#}");
    assert_eq!(num(&v, "files_skipped"), 0, "{v:#}");
    assert_eq!(num(&v, "bytes"), 15, "{v:#}");
    assert_eq!(num(&v, "bytes_sent"), 15, "{v:#}");
    assert_eq!(v["refused"], serde_json::json!([]), "{v:#}");
    assert!(v["source"].is_string() && v["destination"].is_string());
    assert!(v["elapsed_ms"].is_u64(), "{v:#}");

    // Into an existing directory: the file keeps its own name (0755 stays).
    // Silent on success when stderr is not a terminal (no progress bars).
    let args = ["push", host, &p(&t.join("run.sh")), &p(r)];
    let out = b.run(&args);
    assert_ok(&args, &out);
    assert_eq!(stderr_of(&out), "", "no progress without a terminal");
    assert_same_file(&t.join("run.sh"), &r.join("run.sh"));
    assert_eq!(mode_of(&r.join("run.sh")), 0o755);
    // A trailing slash means "inside"; a name with a space.
    std::fs::create_dir(r.join("slash")).unwrap();
    let slash = format!("{}/", &p(&r.join("slash")));
    b.ok(&["push", host, &p(&t.join("with space.txt")), &slash]);
    assert_same_file(&t.join("with space.txt"), &r.join("slash/with space.txt"));
    // A name with a newline; an empty file.
    b.ok(&["push", host, &p(&t.join("new\nline.txt")), &p(r)]);
    assert_same_file(&t.join("new\nline.txt"), &r.join("new\nline.txt"));
    b.ok(&[
        "push",
        host,
        &p(&t.join("empty")),
        &p(&r.join("empty-copy")),
    ]);
    assert_same_file(&t.join("empty"), &r.join("empty-copy"));
    assert_eq!(std::fs::metadata(r.join("empty-copy")).unwrap().len(), 0);

    // A tree into an existing directory lands under its own name...
    let args = ["push", host, &p(t), &p(r), "--json"];
    let v = ok_json(b, &args);
    assert_eq!(v["method"], method, "{v:#}");
    assert_same_tree(t, &r.join("tree"));
    assert_eq!(num(&v, "files"), tree.files as u64, "{v:#}");
    assert_eq!(num(&v, "files_transferred"), tree.files as u64, "{v:#}");
    assert_eq!(num(&v, "files_skipped"), 0, "{v:#}");
    assert_eq!(num(&v, "bytes"), tree.bytes, "{v:#}");
    assert_eq!(num(&v, "bytes_sent"), tree.bytes, "{v:#}");
    // ...and to a new name, the destination *is* the copy.
    b.ok(&["push", host, &p(t), &p(&r.join("named"))]);
    assert_same_tree(t, &r.join("named"));
    assert!(!exists(&r.join("named/tree")), "named the copy, not inside");
    // The symlink is a symlink still, with its target untouched.
    assert_eq!(
        std::fs::read_link(r.join("named/link")).unwrap(),
        PathBuf::from("sub/mid.txt")
    );

    // Pull: a single file naming the copy.
    let l = b.scratch("back");
    std::fs::create_dir(&l).unwrap();
    let args = [
        "pull",
        host,
        &p(&r.join("named/secret")),
        &p(&l.join("secret-back")),
        "--json",
    ];
    let v = ok_json(b, &args);
    assert_same_file(&t.join("secret"), &l.join("secret-back"));
    assert_eq!(mode_of(&l.join("secret-back")), 0o600);
    assert_eq!(v["direction"], "pull", "{v:#}");
    assert_eq!(num(&v, "files_transferred"), 1, "{v:#}");
    assert_eq!(
        num(&v, "bytes_sent"),
        15,
        "pull counts received bytes: {v:#}"
    );
    // Into an existing directory, a name with a newline.
    b.ok(&["pull", host, &p(&r.join("named/new\nline.txt")), &p(&l)]);
    assert_same_file(&t.join("new\nline.txt"), &l.join("new\nline.txt"));
    // Trailing slash.
    std::fs::create_dir(l.join("slash")).unwrap();
    let slash = format!("{}/", &p(&l.join("slash")));
    b.ok(&["pull", host, &p(&r.join("named/run.sh")), &slash]);
    assert_same_file(&t.join("run.sh"), &l.join("slash/run.sh"));
    // A tree into an existing directory, then to a new name.
    let args = ["pull", host, &p(&r.join("named")), &p(&l)];
    let out = run_long(b, &args);
    assert_ok(&args, &out);
    assert_eq!(stderr_of(&out), "", "no progress without a terminal");
    assert_same_tree(t, &l.join("named"));
    let args = [
        "pull",
        host,
        &p(&r.join("named")),
        &p(&l.join("copy")),
        "--json",
    ];
    let v = ok_json(b, &args);
    assert_eq!(v["method"], method, "{v:#}");
    assert_same_tree(t, &l.join("copy"));
    assert!(!exists(&l.join("copy/named")));
    assert_eq!(num(&v, "files"), tree.files as u64, "{v:#}");
    assert_eq!(num(&v, "bytes"), tree.bytes, "{v:#}");
    assert_eq!(num(&v, "bytes_sent"), tree.bytes, "{v:#}");
    // No partial is left behind anywhere.
    for root in [r, l.as_path()] {
        for name in all_names(root) {
            assert!(
                !name.to_string_lossy().contains("belay-part"),
                "partial left: {}",
                root.join(name).display()
            );
        }
    }
}

#[test]
fn push_and_pull_over_ssh_keep_bytes_modes_mtimes_and_symlinks() {
    let host = Loopback::start();
    let b = host.belay();
    copies_keep_everything(&b, "target", "exec");
    home_paths_work(&host, &b);
}

/// Remote paths relative to the remote home, and `~/`, both ways.
fn home_paths_work(host: &Loopback, b: &Belay) -> PathBuf {
    let f = b.scratch("homefile");
    write_file(&f, b"at home\n", 0o600, 1_600_000_000);
    b.ok(&["push", "target", &p(&f), "rel-copy"]);
    assert_same_file(&f, &host.remote_view(Path::new("/root/rel-copy")));
    b.ok(&["push", "target", &p(&f), "~/tilde-copy"]);
    assert_same_file(&f, &host.remote_view(Path::new("/root/tilde-copy")));
    let back = b.scratch("from-home");
    b.ok(&["pull", "target", "~/tilde-copy", &p(&back)]);
    assert_same_file(&f, &back);
    b.ok(&["pull", "target", "rel-copy", &p(&b.scratch("from-rel"))]);
    assert_same_file(&f, &b.scratch("from-rel"));
    f
}

#[test]
fn push_and_pull_on_local_keep_bytes_modes_mtimes_and_symlinks() {
    let b = Belay::new();
    copies_keep_everything(&b, "local", "exec");
}

// ---------------------------------------------------------------------------
// 2. No SFTP subsystem.
// ---------------------------------------------------------------------------

#[test]
fn everything_works_against_an_sshd_without_sftp() {
    let host = Loopback::start_without_sftp();
    let conf = std::fs::read_to_string(host.sshd.dir().join("sshd_config")).unwrap();
    assert!(!conf.contains("Subsystem"), "{conf}");
    // OpenSSH's own sftp client is refused by this sshd.
    let mut sftp = std::process::Command::new("sftp");
    sftp.args(["-F", &p(&host.config), "-b", "/dev/null", "target"])
        .stdin(std::process::Stdio::null());
    let out = run_with_deadline(sftp, Duration::from_secs(30));
    assert!(
        !out.status.success(),
        "sftp should fail without a subsystem: {}",
        stderr_of(&out)
    );

    let b = host.belay();
    let tree = make_tree(&b.scratch("tree"));
    let remote = shared_dir("belay-remote.");
    let r = remote.path();
    let v = ok_json(
        &b,
        &["push", "target", &p(&tree.root), &p(&r.join("t")), "--json"],
    );
    assert_eq!(v["method"], "exec", "{v:#}");
    assert_same_tree(&tree.root, &r.join("t"));
    let v = ok_json(
        &b,
        &[
            "pull",
            "target",
            &p(&r.join("t")),
            &p(&b.scratch("back")),
            "--json",
        ],
    );
    assert_eq!(v["method"], "exec", "{v:#}");
    assert_same_tree(&tree.root, &b.scratch("back"));

    // run --input (a directory) and --output, fetched when the job ends.
    let args = [
        "run",
        "target",
        "--input",
        &p(&tree.root),
        "--output",
        "out.txt",
        "--",
        "sh",
        "-c",
        "cat tree/top.txt tree/sub/deeper/big.bin > out.txt",
    ];
    let out = b.run(&args);
    assert_ok(&args, &out);
    let id = only_job_id(&b);
    let mut want = std::fs::read(tree.root.join("top.txt")).unwrap();
    want.extend(std::fs::read(tree.root.join("sub/deeper/big.bin")).unwrap());
    let fetched = b.home.path().join("results").join(&id).join("out.txt");
    assert!(
        std::fs::read(&fetched).unwrap_or_default() == want,
        "{} should hold the job's output; {}",
        fetched.display(),
        describe(&args, &out)
    );
    let to = b.scratch("fetched");
    std::fs::create_dir(&to).unwrap();
    b.ok(&["fetch", &id, "--to", &p(&to)]);
    assert!(std::fs::read(to.join("out.txt")).unwrap() == want);

    // Asked for SFTP, the server's refusal is the error.
    let args = [
        "push",
        "target",
        &p(&tree.root),
        &p(&r.join("s")),
        "--via",
        "sftp",
    ];
    let out = b.run(&args);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&args, &out));
    assert!(
        stderr_of(&out).contains("refused the sftp subsystem"),
        "{}",
        describe(&args, &out)
    );
    assert!(!exists(&r.join("s")));
}

// ---------------------------------------------------------------------------
// 3. Resume after a SIGKILL mid-file; complete files are skipped.
// ---------------------------------------------------------------------------

fn killed_mid_transfer(b: &Belay, args: &[&str]) {
    let mut c = b.command(args);
    c.env("BELAY_FAILPOINT", format!("transfer-bytes:{FAIL_AT}"));
    let out = run_with_deadline(c, Duration::from_secs(240));
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "the failpoint should SIGKILL belay mid-way; {}",
        describe(args, &out)
    );
}

/// After the kill: no final name; a 0600 partial holding part of the file.
fn assert_partial_only(final_name: &Path, partial: &Path) -> u64 {
    assert!(
        !exists(final_name),
        "{} exists after a killed transfer",
        final_name.display()
    );
    let m = std::fs::metadata(partial)
        .unwrap_or_else(|e| panic!("no partial {}: {e}", partial.display()));
    assert!(
        m.len() > 0 && m.len() < BIG as u64,
        "partial holds {} bytes",
        m.len()
    );
    assert_eq!(m.mode() & 0o777, 0o600, "partials are created 0600");
    m.len()
}

fn assert_resumed(v: &Value) {
    let resumed = num(v, "bytes_resumed");
    let sent = num(v, "bytes_sent");
    assert!(resumed > 0, "the partial was not used: {v:#}");
    assert!(
        sent <= BIG as u64 - resumed + 8 * MIB as u64,
        "sent {sent} bytes after resuming {resumed}: {v:#}"
    );
    assert_eq!(num(v, "files_transferred"), 1, "{v:#}");
}

/// Push a big file, SIGKILL belay half-way, push again: the partial is
/// verified and extended; then pushing once more sends nothing.
fn push_resumes(host: &Loopback, method: &str) {
    let b = host.belay();
    let src = b.scratch("big.bin");
    write_file(&src, &random_bytes(BIG), 0o644, 1_600_000_000);
    let remote = shared_dir("belay-remote.");
    let dst = remote.path().join("final.bin");
    let partial = remote.path().join(".final.bin.belay-part");

    killed_mid_transfer(&b, &["push", "target", &p(&src), &p(&dst)]);
    host.wait_sessions_gone();
    assert_partial_only(&dst, &partial);

    let v = ok_json(&b, &["push", "target", &p(&src), &p(&dst), "--json"]);
    assert_eq!(v["method"], method, "{v:#}");
    assert_resumed(&v);
    assert_same_file(&src, &dst);
    assert!(!exists(&partial), "partial renamed away");

    // Once complete, pushing again sends nothing.
    let v = ok_json(&b, &["push", "target", &p(&src), &p(&dst), "--json"]);
    assert_eq!(num(&v, "files_skipped"), 1, "{v:#}");
    assert_eq!(num(&v, "files_transferred"), 0, "{v:#}");
    assert_eq!(num(&v, "bytes_sent"), 0, "{v:#}");
}

/// The same for a pull.
fn pull_resumes(host: &Loopback, method: &str) {
    let b = host.belay();
    let remote = shared_dir("belay-remote.");
    let src = remote.path().join("big.bin");
    write_file(&src, &random_bytes(BIG), 0o640, 1_600_000_000);
    let dst = b.scratch("final.bin");
    let partial = b.scratch(".final.bin.belay-part");

    killed_mid_transfer(&b, &["pull", "target", &p(&src), &p(&dst)]);
    host.wait_sessions_gone();
    assert_partial_only(&dst, &partial);

    let v = ok_json(&b, &["pull", "target", &p(&src), &p(&dst), "--json"]);
    assert_eq!(v["method"], method, "{v:#}");
    assert_resumed(&v);
    assert_same_file(&src, &dst);
    assert!(!exists(&partial), "partial renamed away");

    let v = ok_json(&b, &["pull", "target", &p(&src), &p(&dst), "--json"]);
    assert_eq!(num(&v, "files_skipped"), 1, "{v:#}");
    assert_eq!(num(&v, "bytes_sent"), 0, "{v:#}");
}

#[test]
fn a_push_killed_mid_file_resumes_from_its_partial() {
    push_resumes(&Loopback::start(), "exec");
}

#[test]
fn a_pull_killed_mid_file_resumes_from_its_partial() {
    pull_resumes(&Loopback::start(), "exec");
}

#[test]
fn a_complete_tree_is_skipped_when_pushed_or_pulled_again() {
    let host = Loopback::start();
    let b = host.belay();
    let tree = make_tree(&b.scratch("tree"));
    // Into an existing directory both times (a second copy to a name that
    // now exists as a directory would go inside it, as with `cp -r`).
    let remote = shared_dir("belay-remote.");
    let dst = remote.path().join("tree");
    b.ok(&["push", "target", &p(&tree.root), &p(remote.path())]);
    let v = ok_json(
        &b,
        &[
            "push",
            "target",
            &p(&tree.root),
            &p(remote.path()),
            "--json",
        ],
    );
    assert_eq!(num(&v, "files"), tree.files as u64, "{v:#}");
    assert_eq!(num(&v, "files_skipped"), tree.files as u64, "{v:#}");
    assert_eq!(num(&v, "files_transferred"), 0, "{v:#}");
    assert_eq!(num(&v, "bytes_sent"), 0, "{v:#}");
    assert_same_tree(&tree.root, &dst);

    let back = b.scratch("back");
    std::fs::create_dir(&back).unwrap();
    b.ok(&["pull", "target", &p(&dst), &p(&back)]);
    let v = ok_json(&b, &["pull", "target", &p(&dst), &p(&back), "--json"]);
    assert_eq!(num(&v, "files_skipped"), tree.files as u64, "{v:#}");
    assert_eq!(num(&v, "files_transferred"), 0, "{v:#}");
    assert_eq!(num(&v, "bytes_sent"), 0, "{v:#}");
    assert_same_tree(&tree.root, &back.join("tree"));

    // A changed source file (same size, other mtime) is sent again.
    let top = tree.root.join("top.txt");
    set_mode_mtime(&top, 0o644, 1_700_000_000);
    std::fs::write(&top, b"TOP OF THE TREE\n").unwrap();
    set_mode_mtime(&top, 0o644, 1_700_000_000);
    let v = ok_json(
        &b,
        &[
            "push",
            "target",
            &p(&tree.root),
            &p(remote.path()),
            "--json",
        ],
    );
    assert_eq!(num(&v, "files_transferred"), 1, "{v:#}");
    assert_eq!(num(&v, "files_skipped"), tree.files as u64 - 1, "{v:#}");
    assert_same_tree(&tree.root, &dst);
}

// ---------------------------------------------------------------------------
// 4. A corrupt partial is detected.
// ---------------------------------------------------------------------------

#[test]
fn a_corrupt_partial_is_detected_and_the_copy_is_still_exact() {
    // The host sums partials whole: damage anywhere is found.
    corrupt_partials_are_not_extended(&Loopback::start(), "exec", |_| 2 * MIB as u64);
}

/// A partial damaged after a kill is not extended, on push (the host's
/// partial, damaged at 1 MiB) and on pull (the local one, damaged where
/// `pull_damage(partial length)` says); both copies still end exact.
fn corrupt_partials_are_not_extended(host: &Loopback, method: &str, pull_damage: fn(u64) -> u64) {
    let b = host.belay();
    let src = b.scratch("big.bin");
    write_file(&src, &random_bytes(BIG), 0o644, 1_600_000_000);
    let remote = shared_dir("belay-remote.");
    let dst = remote.path().join("big.bin");
    let partial = remote.path().join(".big.bin.belay-part");

    killed_mid_transfer(&b, &["push", "target", &p(&src), &p(&dst)]);
    host.wait_sessions_gone();
    assert_partial_only(&dst, &partial);
    corrupt(&partial, MIB as u64, 4096);
    let v = ok_json(&b, &["push", "target", &p(&src), &p(&dst), "--json"]);
    assert_eq!(v["method"], method, "{v:#}");
    assert_eq!(num(&v, "bytes_resumed"), 0, "{v:#}");
    assert_eq!(num(&v, "files_transferred"), 1, "{v:#}");
    assert_same_file(&src, &dst);
    assert!(!exists(&partial));

    let back = b.scratch("back.bin");
    let local_partial = b.scratch(".back.bin.belay-part");
    killed_mid_transfer(&b, &["pull", "target", &p(&dst), &p(&back)]);
    host.wait_sessions_gone();
    let len = assert_partial_only(&back, &local_partial);
    corrupt(&local_partial, pull_damage(len), 4096);
    let v = ok_json(&b, &["pull", "target", &p(&dst), &p(&back), "--json"]);
    assert_eq!(v["method"], method, "{v:#}");
    assert_eq!(num(&v, "bytes_resumed"), 0, "{v:#}");
    assert_same_file(&src, &back);
    assert!(!exists(&local_partial));
}

// ---------------------------------------------------------------------------
// 5. Hostile remote trees.
// ---------------------------------------------------------------------------

/// Every path below `base`, except those inside `base/inside`.
fn strays(base: &Path, inside: &Path) -> Vec<PathBuf> {
    all_names(base)
        .into_iter()
        .map(|n| base.join(n))
        .filter(|full| !full.starts_with(inside) && !inside.starts_with(full))
        .collect()
}

#[test]
fn pull_refuses_symlinks_that_leave_the_destination() {
    refuses_symlinks_out(&Loopback::start(), &[]);
}

/// A pull (with `extra` arguments) of a tree whose symlinks point out of
/// it: those are refused by name, exit 1, the rest is copied.
fn refuses_symlinks_out(host: &Loopback, extra: &[&str]) {
    let b = host.belay();
    let sentinel = shared_dir("belay-sentinel.");
    let remote = shared_dir("belay-remote.");
    let h = remote.path().join("h");
    std::fs::create_dir_all(h.join("sub")).unwrap();
    write_file(&h.join("safe.txt"), b"safe\n", 0o644, 1_600_000_000);
    write_file(&h.join("sub/ok.txt"), b"ok\n", 0o644, 1_600_000_000);
    std::os::unix::fs::symlink("sub/ok.txt", h.join("inner-link")).unwrap();
    std::os::unix::fs::symlink(sentinel.path(), h.join("escape-link")).unwrap();
    std::os::unix::fs::symlink("../../x", h.join("updir-link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", h.join("abs-link")).unwrap();

    let base = b.scratch("base");
    std::fs::create_dir_all(base.join("a/b")).unwrap();
    let dst = base.join("a/b/dst");
    let (h_arg, dst_arg) = (p(&h), p(&dst));
    let mut args = vec!["pull", "target", &h_arg, &dst_arg, "--json"];
    args.extend_from_slice(extra);
    let out = run_long(&b, &args);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&args, &out));
    let err = stderr_of(&out);
    for name in ["escape-link", "updir-link", "abs-link"] {
        assert!(
            err.lines()
                .any(|l| l.contains("belay: refused remote entry") && l.contains(name)),
            "{name} should be refused by name: {err}"
        );
        assert!(!exists(&dst.join(name)), "{name} was created");
    }
    assert!(
        !err.contains("inner-link"),
        "a symlink inside the tree is fine: {err}"
    );
    let v = parse_json(&args, &out);
    let refused = v["refused"].as_array().expect("refused array");
    assert_eq!(refused.len(), 3, "{v:#}");
    // The rest is copied.
    assert_eq!(std::fs::read(dst.join("safe.txt")).unwrap(), b"safe\n");
    assert_eq!(std::fs::read(dst.join("sub/ok.txt")).unwrap(), b"ok\n");
    assert_eq!(
        std::fs::read_link(dst.join("inner-link")).unwrap(),
        PathBuf::from("sub/ok.txt")
    );
    assert!(all_names(sentinel.path()).is_empty());
    assert_eq!(strays(&base, &dst), Vec::<PathBuf>::new());
}

#[test]
fn pull_refuses_entries_a_hostile_remote_tar_invents() {
    let host = Loopback::start();
    let b = host.belay();
    let sentinel = shared_dir("belay-sentinel.");
    let s = sentinel.path();

    // Entries no real file system produces, served ahead of the real
    // archive by a fake `tar` bind-mounted over /usr/bin/tar in the sshd's
    // mount namespace only.
    let hostile = Tar::new()
        .file("../escape.txt", b"escaped\n", 0o644, 1_600_000_000)
        .file("sub/../../escape2.txt", b"escaped\n", 0o644, 1_600_000_000)
        .file(
            &format!("{}/abs.txt", &p(s)),
            b"absolute\n",
            0o644,
            1_600_000_000,
        )
        .symlink("out-link", &p(s))
        .file(
            "out-link/evil.txt",
            b"through a symlink\n",
            0o644,
            1_600_000_000,
        )
        .hardlink("hard-link", &format!("{}/abs.txt", &p(s)))
        .char_device("null-dev", 1, 3)
        .finish();
    // Without the end-of-archive blocks: the real archive follows.
    let prefix = &hostile[..hostile.len() - 1024];
    let fake = shared_dir("belay-faketar.");
    let f = fake.path();
    std::fs::write(f.join("hostile.tar"), prefix).unwrap();
    std::fs::copy("/usr/bin/tar", f.join("real-tar")).unwrap();
    let script = format!(
        "#!/bin/sh\n\
         printf '%s\\n' \"$*\" >> '{d}/invocations'\n\
         create=\n\
         for a in \"$@\"; do\n\
           case \"$a\" in --create) create=1;; --*) ;; -*c*) create=1;; esac\n\
         done\n\
         case \"$1\" in -*) ;; *c*) create=1;; esac\n\
         if [ -n \"$create\" ]; then cat '{d}/hostile.tar'; fi\n\
         exec '{d}/real-tar' \"$@\"\n",
        d = &p(f)
    );
    std::fs::write(f.join("tar"), script).unwrap();
    std::fs::set_permissions(f.join("tar"), std::fs::Permissions::from_mode(0o755)).unwrap();
    host.in_namespace(&["mount", "--bind", &p(&f.join("tar")), "/usr/bin/tar"]);
    // The remote sessions now run the fake, on PATH and by absolute path.
    let probe = format!(
        "tar -cf - /etc/hostname | head -c {n} | cmp -s - '{d}/hostile.tar' \
         && /usr/bin/tar -cf - /etc/hostname | head -c {n} | cmp -s - '{d}/hostile.tar' \
         && echo fake-tar-active",
        n = prefix.len(),
        d = &p(f)
    );
    let seen = b.ok(&["run", "--no-login-shell", "target", "--", &probe]);
    assert_eq!(
        seen.trim(),
        "fake-tar-active",
        "the fake tar is not in effect"
    );
    std::fs::remove_file(f.join("invocations")).unwrap();
    // Host side untouched.
    assert_ne!(
        std::fs::metadata("/usr/bin/tar").unwrap().len(),
        std::fs::metadata(f.join("tar")).unwrap().len()
    );

    let remote = shared_dir("belay-remote.");
    let h = remote.path().join("h");
    std::fs::create_dir_all(h.join("sub")).unwrap();
    write_file(&h.join("safe.txt"), b"safe\n", 0o644, 1_600_000_000);
    write_file(&h.join("sub/ok.txt"), b"ok\n", 0o644, 1_600_000_000);

    let base = b.scratch("base");
    std::fs::create_dir_all(base.join("a/b")).unwrap();
    let dst = base.join("a/b/dst");
    let args = ["pull", "target", &p(&h), &p(&dst)];
    let out = run_long(&b, &args);
    let calls = std::fs::read_to_string(f.join("invocations")).unwrap_or_default();
    assert!(
        !calls.is_empty(),
        "pull never ran the remote tar; {}",
        describe(&args, &out)
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&args, &out));
    let err = stderr_of(&out);
    assert!(
        err.contains("belay: refused remote entry"),
        "hostile entries reported: {err}"
    );
    for name in [
        "escape.txt",
        "escape2.txt",
        "abs.txt",
        "out-link",
        "hard-link",
        "null-dev",
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains("refused remote entry") && l.contains(name)),
            "{name} should be named as refused: {err}"
        );
    }
    // Nothing written outside the destination, nothing through `out-link`
    // (an `out-link/evil.txt` created inside the destination is harmless).
    assert!(
        all_names(s).is_empty(),
        "written into the sentinel: {:?}",
        all_names(s)
    );
    assert_eq!(strays(&base, &dst), Vec::<PathBuf>::new(), "{err}");
    assert!(!exists(&PathBuf::from("/escape.txt")));
    for name in ["hard-link", "null-dev"] {
        assert!(!exists(&dst.join(name)), "{name} was created");
    }
    if let Ok(m) = std::fs::symlink_metadata(dst.join("out-link")) {
        assert!(
            !m.file_type().is_symlink(),
            "the escaping symlink was created"
        );
    }
    // The real entries are copied.
    assert_eq!(std::fs::read(dst.join("safe.txt")).unwrap(), b"safe\n");
    assert_eq!(std::fs::read(dst.join("sub/ok.txt")).unwrap(), b"ok\n");
}

// ---------------------------------------------------------------------------
// 6. Bad input; no space left.
// ---------------------------------------------------------------------------

#[test]
fn bad_paths_are_exit_2_naming_them_and_record_nothing() {
    let host = Loopback::start();
    let b = host.belay();
    let remote = shared_dir("belay-remote.");
    let r = remote.path();
    write_file(&r.join("there.txt"), b"there\n", 0o644, 1_600_000_000);
    let local = b.scratch("here.txt");
    write_file(&local, b"here\n", 0o644, 1_600_000_000);

    // A missing local path (push).
    let missing = b.scratch("no-such-file");
    let args = ["push", "target", &p(&missing), &p(&r.join("x"))];
    assert_bad_input(&args, &b.run(&args), &[&format!("'{}'", &p(&missing))]);
    assert!(!exists(&r.join("x")));
    // A missing remote path (pull).
    let gone = r.join("no-such-remote");
    let args = ["pull", "target", &p(&gone), &p(&b.scratch("y"))];
    assert_bad_input(&args, &b.run(&args), &[&format!("'{}'", &p(&gone))]);
    assert!(!exists(&b.scratch("y")));
    // Destination parent directory missing, both ways.
    let nowhere = r.join("no/such/dir");
    let args = ["push", "target", &p(&local), &p(&nowhere.join("x"))];
    assert_bad_input(&args, &b.run(&args), &[&p(&nowhere)]);
    assert!(!exists(&r.join("no")), "nothing created on the way");
    let nowhere = b.scratch("no/such/dir");
    let args = [
        "pull",
        "target",
        &p(&r.join("there.txt")),
        &p(&nowhere.join("x")),
    ];
    assert_bad_input(&args, &b.run(&args), &[&p(&nowhere)]);
    assert!(!exists(&b.scratch("no")));

    // run --input of a missing path: nothing recorded.
    let args = ["run", "target", "--input", "/nope", "--", "true"];
    assert_bad_input(&args, &b.run(&args), &["/nope"]);
    assert!(b.jobs().is_empty(), "no job recorded: {:#?}", b.jobs());
    // A malformed --input NAME (`..`) or --output.
    let bad_name = format!("{}:../up", &p(&local));
    let args = ["run", "target", "--input", &bad_name, "--", "true"];
    assert_bad_input(&args, &b.run(&args), &["../up"]);
    let args = ["run", "target", "--output", "", "--", "true"];
    let out = b.run(&args);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&args, &out));
    assert!(b.jobs().is_empty(), "no job recorded: {:#?}", b.jobs());
}

#[test]
fn no_space_left_is_exit_1_naming_the_path_and_leaves_no_final_file() {
    let host = Loopback::start();
    let b = host.belay();

    // One 4 MiB file (streamed on its own).
    let disk = host.small_disk();
    let src = b.scratch("big.bin");
    write_file(&src, &random_bytes(4 * MIB), 0o644, 1_600_000_000);
    let dst = disk.path().join("big.bin");
    let args = ["push", "target", &p(&src), &p(&dst)];
    let t = std::time::Instant::now();
    let out = run_long(&b, &args);
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&args, &out));
    assert!(
        took < Duration::from_secs(30),
        "a full disk should fail at once, not after a timeout: took {took:?}; {}",
        describe(&args, &out)
    );
    let err = stderr_of(&out);
    assert!(err.contains(&p(disk.path())), "names the path: {err}");
    assert!(
        err.to_lowercase().contains("no space left"),
        "says why: {err}"
    );
    assert!(
        !exists(&host.remote_view(&dst)),
        "a final-name file was left"
    );

    // Small files (one tar batch): whatever lands under a final name is
    // complete; what did not fit is not there.
    let disk2 = host.small_disk();
    let tree = b.scratch("smalls");
    std::fs::create_dir(&tree).unwrap();
    for i in 0..3 {
        write_file(
            &tree.join(format!("f{i}.bin")),
            &random_bytes(600 * KIB),
            0o644,
            1_600_000_000,
        );
    }
    let dst = disk2.path().join("smalls");
    let args = ["push", "target", &p(&tree), &p(&dst)];
    let t = std::time::Instant::now();
    let out = run_long(&b, &args);
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&args, &out));
    assert!(
        took < Duration::from_secs(30),
        "a full disk should fail at once: took {took:?}; {}",
        describe(&args, &out)
    );
    let err = stderr_of(&out);
    assert!(err.contains(&p(disk2.path())), "names the path: {err}");
    let view = host.remote_view(&dst);
    let mut complete = 0;
    for i in 0..3 {
        let name = format!("f{i}.bin");
        if exists(&view.join(&name)) {
            assert_same_file(&tree.join(&name), &view.join(&name));
            complete += 1;
        }
    }
    assert!(complete < 3, "1.8 MiB cannot fit in 1 MiB");
}

// ---------------------------------------------------------------------------
// 7. CRLF scripts.
// ---------------------------------------------------------------------------

#[test]
fn crlf_scripts_get_a_warning_with_the_fix_and_the_job_still_runs() {
    let host = Loopback::start();
    let b = host.belay();
    let script = b.scratch("x.sh");
    std::fs::write(&script, b"#!/bin/sh\r\necho hi\r\n").unwrap();
    let fix = r"sed -i 's/\r$//'";

    let args = [
        "run",
        "target",
        "--input",
        "x.sh",
        "--",
        "sh",
        "-c",
        "wc -c < x.sh",
    ];
    let out = b.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&args, &out));
    let size = std::fs::metadata(&script).unwrap().len().to_string();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), size);
    let err = stderr_of(&out);
    let warning = err
        .lines()
        .find(|l| l.contains("CRLF"))
        .unwrap_or_else(|| panic!("no CRLF warning: {err}"));
    assert!(warning.starts_with("belay: warning: "), "{warning}");
    assert!(
        warning.contains("x.sh") && warning.contains(fix),
        "{warning}"
    );

    // The job's own exit status is kept.
    let args = [
        "run", "target", "--input", "x.sh", "--", "sh", "-c", "exit 7",
    ];
    let out = b.run(&args);
    assert_eq!(out.status.code(), Some(7), "{}", describe(&args, &out));
    assert!(stderr_of(&out).contains(fix));

    // push: a `#!` file without the .sh suffix warns too, and is copied.
    let remote = shared_dir("belay-remote.");
    let tool = b.scratch("tool");
    std::fs::write(&tool, b"#!/usr/bin/env python3\r\nprint(1)\r\n").unwrap();
    let args = ["push", "target", &p(&tool), &p(remote.path())];
    let out = b.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&args, &out));
    assert!(
        stderr_of(&out).contains("CRLF") && stderr_of(&out).contains(fix),
        "{}",
        describe(&args, &out)
    );
    assert_eq!(
        std::fs::read(remote.path().join("tool")).unwrap(),
        std::fs::read(&tool).unwrap(),
        "copied untouched"
    );
    // No warning for CRLF data, nor for a clean script.
    let data = b.scratch("notes.txt");
    std::fs::write(&data, b"a\r\nb\r\n").unwrap();
    let clean = b.scratch("clean.sh");
    std::fs::write(&clean, b"#!/bin/sh\necho ok\n").unwrap();
    for f in [&data, &clean] {
        let args = ["push", "target", &p(f), &p(remote.path())];
        let out = b.run(&args);
        assert_ok(&args, &out);
        assert!(
            !stderr_of(&out).contains("CRLF"),
            "{}",
            describe(&args, &out)
        );
    }
}

// ---------------------------------------------------------------------------
// 8. Job inputs and outputs.
// ---------------------------------------------------------------------------

fn inputs_and_outputs(b: &Belay, host: &str) {
    let data = b.scratch("data.txt");
    std::fs::write(&data, vec![b'x'; 12345]).unwrap();
    let args = [
        "run",
        host,
        "--input",
        "data.txt",
        "--output",
        "result.txt",
        "--",
        "sh",
        "-c",
        "wc -c < data.txt > result.txt",
    ];
    let out = b.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&args, &out));
    let id = only_job_id(b);
    let results = b.home.path().join("results").join(&id);
    let got = std::fs::read_to_string(results.join("result.txt"))
        .unwrap_or_else(|e| panic!("{e}: {}", describe(&args, &out)));
    assert_eq!(got.trim(), "12345");
    let err = stderr_of(&out);
    assert!(
        err.lines()
            .any(|l| l.starts_with("belay: outputs of ") && l.contains(&p(&results))),
        "{err}"
    );
    let job = b.job(&id);
    assert_eq!(job["inputs"][0]["name"], "data.txt", "{job:#}");
    assert!(job["inputs"][0]["local"].is_string(), "{job:#}");
    assert_eq!(job["outputs"], serde_json::json!(["result.txt"]), "{job:#}");

    // fetch --to, with --json.
    let to = b.scratch("fetched");
    std::fs::create_dir(&to).unwrap();
    let v = ok_json(b, &["fetch", &id, "--to", &p(&to), "--json"]);
    assert_eq!(
        std::fs::read_to_string(to.join("result.txt"))
            .unwrap()
            .trim(),
        "12345"
    );
    assert_eq!(v["job"], id.as_str(), "{v:#}");
    assert_eq!(v["outputs"][0]["path"], "result.txt", "{v:#}");
    assert_eq!(v["outputs"][0]["found"], true, "{v:#}");
    assert!(v["outputs"][0]["local"].is_string(), "{v:#}");
    // fetch without --to: $BELAY_HOME/results/<id>/.
    std::fs::remove_dir_all(&results).unwrap();
    b.ok(&["fetch", &id]);
    assert_eq!(
        std::fs::read_to_string(results.join("result.txt"))
            .unwrap()
            .trim(),
        "12345"
    );

    // The job sees BELAY_INPUTS and runs there; NAME renames; a directory.
    let dir = b.scratch("dirin");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.txt"), "in a dir\n").unwrap();
    let args = [
        "run",
        host,
        "--input",
        "data.txt:renamed.txt",
        "--input",
        "dirin",
        "--",
        "sh",
        "-c",
        "echo \"$BELAY_INPUTS\"; pwd; wc -c < renamed.txt; cat dirin/a.txt",
    ];
    let out = b.run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&args, &out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines[0].ends_with("/inputs"), "{stdout}");
    assert_eq!(lines[0], lines[1], "runs in $BELAY_INPUTS: {stdout}");
    assert_eq!(lines[2].trim(), "12345");
    assert_eq!(lines[3], "in a dir");

    // A missing output: fetch is exit 1 naming it...
    let id = b.submit(&[host, "--output", "nope.txt", "--", "true"]);
    assert_eq!(b.run(&["wait", &id]).status.code(), Some(0));
    let args = ["fetch", &id];
    let out = b.run(&args);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&args, &out));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!("belay: output 'nope.txt' not found on {host}")),
        "{err}"
    );
    // ...after an attached run it is a warning; the job's code stays.
    let args = [
        "run", host, "--output", "nope.txt", "--", "sh", "-c", "exit 3",
    ];
    let out = b.run(&args);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&args, &out));
    assert!(
        stderr_of(&out).contains("not found"),
        "{}",
        describe(&args, &out)
    );
}

#[test]
fn run_inputs_and_outputs_over_ssh_are_copied_and_fetched() {
    let host = Loopback::start();
    let b = host.belay();
    inputs_and_outputs(&b, "target");
}

#[test]
fn run_inputs_and_outputs_on_local_are_copied_and_fetched() {
    let b = Belay::new();
    inputs_and_outputs(&b, "local");
}

// ---------------------------------------------------------------------------
// Review findings: read-only files mid-batch, chained symlinks, inputs.
// ---------------------------------------------------------------------------

/// A batch of read-only files cut mid-way leaves partials that stay 0600
/// (the final mode is applied at the rename), so a re-run (as any user)
/// can replace them; the re-run lands every file with its own mode.
#[test]
fn read_only_files_cut_mid_batch_leave_writable_partials_and_resume() {
    let host = Loopback::start();
    let b = host.belay();
    let remote = shared_dir("belay-remote.");
    let src = remote.path().join("ro");
    std::fs::create_dir(&src).unwrap();
    for i in 0..200 {
        write_file(
            &src.join(format!("f{i:03}")),
            &random_bytes(64 * 1024),
            0o444,
            1_700_000_000,
        );
    }
    let dst = b.scratch("ro-dst");
    std::fs::create_dir(&dst).unwrap();
    let args = ["pull", "target", &p(&src), &p(&dst)];
    let mut c = b.command(&args);
    c.env("BELAY_FAILPOINT", "transfer-bytes:4000000");
    let out = run_with_deadline(c, Duration::from_secs(120));
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "{}",
        describe(&args, &out)
    );
    let partials: Vec<PathBuf> = all_names(&dst)
        .into_iter()
        .filter(|n| n.to_string_lossy().ends_with(".belay-part"))
        .collect();
    assert!(!partials.is_empty(), "the cut left no partials");
    for part in &partials {
        let mode = std::fs::metadata(dst.join(part)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", part.display());
    }
    let out = run_long(&b, &args);
    assert_ok(&args, &out);
    assert_same_tree(&src, &dst.join("ro"));
    assert_eq!(mode_of(&dst.join("ro/f000")), 0o444);
}

/// `s -> x/up/x/up/../../..` climbs out through the symlink `x/up -> ..`
/// although its text never leaves the tree: refused, like any `..` after a
/// name.
#[test]
fn pull_refuses_symlinks_that_climb_out_through_other_symlinks() {
    let host = Loopback::start();
    let b = host.belay();
    let remote = shared_dir("belay-remote.");
    let src = remote.path().join("src");
    std::fs::create_dir_all(src.join("x")).unwrap();
    std::os::unix::fs::symlink("..", src.join("x/up")).unwrap();
    std::os::unix::fs::symlink("x/up/x/up/../../..", src.join("s")).unwrap();
    std::fs::write(src.join("ok.txt"), b"fine\n").unwrap();
    let dst = b.scratch("chain-dst");
    std::fs::create_dir(&dst).unwrap();
    let args = ["pull", "target", &p(&src), &p(&dst), "--json"];
    let out = run_long(&b, &args);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&args, &out));
    let v = parse_json(&args, &out);
    let refused: Vec<&str> = v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    assert!(refused.contains(&"s"), "{v:#}");
    assert!(!exists(&dst.join("src/s")));
    assert_eq!(std::fs::read(dst.join("src/ok.txt")).unwrap(), b"fine\n");
}

/// An input keeps the name it was given (not its symlink target's), and two
/// inputs that would land on the same name are refused before anything is
/// recorded.
#[test]
fn inputs_keep_their_given_names_and_may_not_collide() {
    let b = Belay::new();
    let real = b.scratch("dataset_v3.csv");
    std::fs::write(&real, b"a,b\n").unwrap();
    let link = b.scratch("train.csv");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let args = [
        "run",
        "local",
        "--input",
        &p(&link),
        "--",
        "cat",
        "train.csv",
    ];
    let out = b.run(&args);
    assert_ok(&args, &out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a,b\n");

    for d in ["a", "b"] {
        std::fs::create_dir_all(b.scratch(d)).unwrap();
        std::fs::write(b.scratch(d).join("x"), d).unwrap();
    }
    let before = b.jobs().len();
    let (ax, bx) = (b.scratch("a/x"), b.scratch("b/x"));
    let args = [
        "run",
        "local",
        "--input",
        &p(&ax),
        "--input",
        &p(&bx),
        "--",
        "true",
    ];
    let out = b.run(&args);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&args, &out));
    assert!(stderr_of(&out).contains("'x'"), "{}", stderr_of(&out));
    assert_eq!(b.jobs().len(), before, "nothing may be recorded");
}

// ---------------------------------------------------------------------------
// 9. SFTP: hosts that refuse commands, and `--via`.
// ---------------------------------------------------------------------------

/// An sftp-only account: every session but the SFTP subsystem is refused
/// with OpenSSH's own message.
fn sftp_only_host() -> Loopback {
    let host = Loopback::start_with(vec!["ForceCommand internal-sftp".into()]);
    let mut ssh = std::process::Command::new("ssh");
    ssh.args(["-F", &p(&host.config), "target", "true"])
        .stdin(std::process::Stdio::null());
    let out = run_with_deadline(ssh, Duration::from_secs(30));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr_of(&out)
    );
    assert!(
        !out.status.success() && said.contains("sftp connections only"),
        "ssh should be refused a command: {said}"
    );
    host
}

#[test]
fn an_sftp_only_host_is_copied_to_and_from_over_sftp() {
    let host = sftp_only_host();
    let b = host.belay();
    copies_keep_everything(&b, "target", "sftp");
    let f = home_paths_work(&host, &b);

    // Bad input is still exit 2 naming the path, with nothing written.
    let gone = b.scratch("never");
    let args = ["pull", "target", "/nonexistent/belay-nothing", &p(&gone)];
    let out = b.run(&args);
    assert_bad_input(&args, &out, &["/nonexistent/belay-nothing"]);
    assert!(!exists(&gone));
    let args = ["push", "target", &p(&f), "/nonexistent/dir/x"];
    let out = b.run(&args);
    assert_bad_input(&args, &out, &["/nonexistent/dir"]);

    // Asked for the shell only, the host's own refusal is shown.
    let args = ["push", "target", &p(&f), "shell-copy", "--via", "exec"];
    let out = b.run(&args);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&args, &out));
    assert!(
        stderr_of(&out).contains("This service allows sftp connections only"),
        "the host's words should be shown: {}",
        describe(&args, &out)
    );
    assert!(!exists(&host.remote_view(Path::new("/root/shell-copy"))));
}

#[test]
fn sftp_copies_killed_mid_file_resume_from_their_partials() {
    let host = sftp_only_host();
    push_resumes(&host, "sftp");
    pull_resumes(&host, "sftp");

    // A source edited in place after the cut (same size, new mtime) is not
    // resumed from the old partial: its beginning changed.
    let b = host.belay();
    let remote = shared_dir("belay-remote.");
    let src = remote.path().join("db.bin");
    write_file(&src, &random_bytes(BIG), 0o644, 1_600_000_000);
    let dst = b.scratch("db.bin");
    killed_mid_transfer(&b, &["pull", "target", &p(&src), &p(&dst)]);
    host.wait_sessions_gone();
    assert_partial_only(&dst, &b.scratch(".db.bin.belay-part"));
    corrupt(&src, 0, 4096);
    let t = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    std::fs::File::options()
        .write(true)
        .open(&src)
        .and_then(|f| f.set_modified(t))
        .unwrap();
    let v = ok_json(&b, &["pull", "target", &p(&src), &p(&dst), "--json"]);
    assert_eq!(num(&v, "bytes_resumed"), 0, "{v:#}");
    assert_same_file(&src, &dst);
}

#[test]
fn sftp_copies_trees_wider_than_the_servers_small_handle_numbers() {
    // 300 directories on one level: more than russh-sftp can name handles
    // for at once (it reads OpenSSH's 4-byte handles as UTF-8).
    let host = sftp_only_host();
    let b = host.belay();
    let remote = shared_dir("belay-remote.");
    let wide = remote.path().join("wide");
    for i in 0..300 {
        let d = wide.join(format!("d{i:03}"));
        std::fs::create_dir_all(&d).unwrap();
        write_file(
            &d.join("f"),
            format!("{i}\n").as_bytes(),
            0o644,
            1_600_000_000,
        );
    }
    let back = b.scratch("wide");
    let v = ok_json(&b, &["pull", "target", &p(&wide), &p(&back), "--json"]);
    assert_eq!(num(&v, "files_transferred"), 300, "{v:#}");
    assert_same_tree(&wide, &back);
    // Pushed twice: the second push lists the whole destination.
    let into = remote.path().join("again");
    std::fs::create_dir(&into).unwrap();
    for round in 0..2 {
        let v = ok_json(&b, &["push", "target", &p(&back), &p(&into), "--json"]);
        assert_eq!(num(&v, "files_skipped"), 300 * round, "{v:#}");
    }
    assert_same_tree(&back, &into.join("wide"));
}

#[test]
fn via_sftp_on_a_host_with_a_shell_refuses_symlinks_out_too() {
    let host = Loopback::start();
    refuses_symlinks_out(&host, &["--via", "sftp"]);
    // A tree pushed the same way, then pulled back.
    let b = host.belay();
    let tree = make_tree(&b.scratch("tree"));
    let remote = shared_dir("belay-remote.");
    let there = remote.path().join("t");
    let v = ok_json(
        &b,
        &[
            "push",
            "target",
            &p(&tree.root),
            &p(&there),
            "--json",
            "--via",
            "sftp",
        ],
    );
    assert_eq!(v["method"], "sftp", "{v:#}");
    assert_same_tree(&tree.root, &there);
    let back = b.scratch("back");
    let v = ok_json(
        &b,
        &[
            "pull",
            "target",
            &p(&there),
            &p(&back),
            "--json",
            "--via",
            "sftp",
        ],
    );
    assert_eq!(v["method"], "sftp", "{v:#}");
    assert_same_tree(&tree.root, &back);
    // A bad --via value is exit 2 naming it.
    let args = ["pull", "target", &p(&there), &p(&back), "--via", "ftp"];
    let out = b.run(&args);
    assert_bad_input(&args, &out, &["ftp"]);
}

#[test]
fn sftp_partials_that_do_not_match_are_not_extended() {
    // Push: the host's partial is read back and summed whole. Pull: the
    // local partial's last MiB is compared with the host's (a crash leaves
    // its damage at the end of what was written).
    corrupt_partials_are_not_extended(&sftp_only_host(), "sftp", |len| len - 4096);
}
