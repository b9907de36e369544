//! The exec transfer scripts run through a real `sh`, on temporary
//! directories standing in for the host.

use super::*;
use std::fs;
use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `script` through a real `sh` with `input` on stdin and `home`
/// as `$HOME`.
fn sh(script: &str, input: &[u8], home: &std::path::Path) -> Output {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .env("HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// The stdout of a script that must have succeeded.
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fields(out: &Output) -> Vec<String> {
    out.stdout
        .split(|b| *b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

/// The host's sum of `data`, as `cksum` prints it.
fn cksum_of(data: &[u8], home: &std::path::Path) -> String {
    String::from_utf8(sh("cksum", data, home).stdout).unwrap()
}

#[test]
fn the_destination_lookup_answers_each_cp_case() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path().canonicalize().unwrap();
    let h = h.to_str().unwrap();
    fs::create_dir(home.path().join("dir")).unwrap();
    fs::create_dir(home.path().join("dir/tree")).unwrap();
    fs::write(home.path().join("dir/tree/f"), b"x").unwrap();
    fs::write(home.path().join("file"), b"x").unwrap();
    let ask = |word: &str, make: bool, list: Option<&str>| {
        let out = sh(&destination_lookup(word, make, list), b"", home.path());
        (out.status.code().unwrap(), fields(&out))
    };
    let (st, f) = ask("dir", false, None);
    assert_eq!(
        (st, &f[..2]),
        (0, &["dir".to_string(), format!("{h}/dir")][..])
    );
    let (st, f) = ask("file", false, None);
    assert_eq!((st, &f[..2]), (0, &["file".to_string(), h.to_string()][..]));
    let (st, f) = ask("dir/new", false, None);
    assert_eq!(
        (st, &f[..2]),
        (0, &["absent".to_string(), format!("{h}/dir")][..])
    );
    let (st, f) = ask("no/new", false, None);
    assert_eq!(
        (st, &f[..2]),
        (0, &["noparent".to_string(), "no".to_string()][..])
    );
    // `DEST/`: made in the same step.
    let (st, f) = ask("made/deep", true, None);
    assert_eq!(
        (st, &f[..2]),
        (0, &["dir".to_string(), format!("{h}/made/deep")][..])
    );
    // A tree's listing comes along: of the named entry inside, or of
    // the directory itself.
    let (st, f) = ask("dir", false, Some("tree"));
    assert_eq!(st, 0);
    assert!(f[2..].iter().any(|x| x == "f"), "{f:?}");
    let (st, f) = ask("dir/tree", false, Some(""));
    assert_eq!(st, 0);
    assert!(f[2..].iter().any(|x| x == "f"), "{f:?}");
    // Without a tree, nothing follows the answer.
    let (_, f) = ask("dir/tree", false, None);
    assert_eq!(f.len(), 3, "{f:?}");
    let (st, _) = ask("file/x", true, None);
    assert_eq!(st, LOOKUP_CANNOT_CREATE);
}

#[test]
fn list_beside_matches_names_literally() {
    let home = tempfile::tempdir().unwrap();
    for name in ["a[1]", "a1", ".a[1].belay-part", ".belay-stage.x", "other"] {
        fs::write(home.path().join(name), b"x").unwrap();
    }
    let out = sh(
        &list_beside(home.path().to_str().unwrap(), "a[1]", ".a[1].belay-part"),
        b"",
        home.path(),
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for there in ["a[1]", ".a[1].belay-part", ".belay-stage.x"] {
        assert!(text.contains(there), "{there} missing: {text:?}");
    }
    assert!(!text.contains("a1") && !text.contains("other"), "{text:?}");
}

#[test]
fn directory_scripts_open_make_and_set_modes() {
    let home = tempfile::tempdir().unwrap();
    let p = |n: &str| home.path().join(n).to_str().unwrap().to_string();
    let script =
        make_dirs(&[p("a/b"), p("c")]) + &dir_modes([(p("a/b"), 0o40555), (p("c"), 0o700)]);
    assert!(sh(&script, b"", home.path()).status.success());
    use std::os::unix::fs::PermissionsExt;
    let mode = |n: &str| {
        fs::metadata(home.path().join(n))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!((mode("a/b"), mode("c")), (0o555, 0o700));
    assert!(
        sh(&open_dirs(&[p("a/b")]), b"", home.path())
            .status
            .success()
    );
    assert_eq!(mode("a/b"), 0o755);
    // Nothing to do is an empty script.
    assert!(make_dirs(&[]).is_empty() && dir_modes([]).is_empty());
}

#[test]
fn an_unpacked_batch_is_summed_and_placed_by_renames() {
    let home = tempfile::tempdir().unwrap();
    let src = home.path().join("src");
    fs::create_dir_all(src.join("old")).unwrap();
    fs::create_dir_all(src.join("new/deep")).unwrap();
    fs::write(src.join("old/f"), b"one").unwrap();
    fs::write(src.join("new/deep/g"), b"two").unwrap();
    let tar = Command::new("tar")
        .args([
            "-cf",
            "-",
            "--no-recursion",
            "old/f",
            "new",
            "new/deep",
            "new/deep/g",
        ])
        .current_dir(&src)
        .output()
        .unwrap();
    assert!(tar.status.success());
    let base = home.path().join("dest");
    fs::create_dir_all(base.join("old")).unwrap();
    let base = base.to_str().unwrap();
    let stage = format!("{base}/.belay-stage.abc");
    let sum = ok(sh(&unpack_batch(&stage), &tar.stdout, home.path()));
    assert_eq!(sum, cksum_of(&tar.stdout, home.path()));
    let script = place(base, &stage, ["old/f", "new/deep/g"]);
    ok(sh(&script, b"", home.path()));
    assert_eq!(fs::read(format!("{base}/old/f")).unwrap(), b"one");
    assert_eq!(fs::read(format!("{base}/new/deep/g")).unwrap(), b"two");
    let staged = std::path::Path::new(&stage);
    assert!(!staged.exists(), "the stage is removed");
}

#[test]
fn a_partial_is_appended_checked_and_finished() {
    let home = tempfile::tempdir().unwrap();
    let (h, part) = (home.path(), home.path().join(".f.belay-part"));
    let part = part.to_str().unwrap();
    assert_eq!(
        ok(sh(&append_partial(part, 0), b"hello ", h)),
        cksum_of(b"hello ", h)
    );
    let whole = cksum_of(b"hello world", h);
    assert_eq!(ok(sh(&append_partial(part, 6), b"world", h)), whole);
    // A partial of another length is not appended to.
    let out = sh(&append_partial(part, 3), b"x", h);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("changed during the copy"));
    assert_eq!(ok(sh(&sum_file(part), b"", h)), whole);
    let final_path = h.join("f");
    let finish = finish_partial(part, 0o100640, 1_000_000_000, final_path.to_str().unwrap());
    ok(sh(&finish, b"", h));
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let m = fs::metadata(&final_path).unwrap();
    let got = (m.permissions().mode() & 0o7777, m.mtime());
    assert_eq!(got, (0o640, 1_000_000_000));
}

#[test]
fn the_source_listing_names_the_physical_path_or_says_missing() {
    let home = tempfile::tempdir().unwrap();
    fs::write(home.path().join("f"), b"x").unwrap();
    let out = sh(&list_source("f"), b"", home.path());
    assert!(out.status.success());
    let abs = home.path().canonicalize().unwrap().join("f");
    assert_eq!(fields(&out)[0], abs.to_str().unwrap());
    let out = sh(&list_source("nothing"), b"", home.path());
    assert_eq!(out.status.code(), Some(SOURCE_MISSING));
}

#[test]
fn the_batch_script_reads_names_from_stdin_and_tolerates_files_that_change() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a b"), b"one").unwrap();
    fs::write(dir.path().join("c"), b"two").unwrap();
    let out = sh(
        &pack_batch(dir.path().to_str().unwrap()),
        b"./a b\0./c\0",
        dir.path(),
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(SUMS_MARK), "{text}");
    assert!(!text.contains(CHANGED_MARK), "nothing changed: {text}");
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let names: Vec<Vec<u8>> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path_bytes().into_owned())
        .collect();
    assert_eq!(names, [b"./a b".to_vec(), b"./c".to_vec()]);
}

#[test]
fn a_big_file_resumes_only_from_a_matching_prefix() {
    let home = tempfile::tempdir().unwrap();
    let f = home.path().join("big");
    fs::write(&f, b"0123456789tail-after-listing").unwrap();
    let f = f.to_str().unwrap();
    let prefix = cksum_of(b"01234", home.path());
    let whole = cksum_of(b"0123456789", home.path());
    let out = sh(&send_big(f, 10, 5, prefix.trim_end()), b"", home.path());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{whole}resume\n56789")
    );
    let out = sh(&send_big(f, 10, 5, "1 5"), b"", home.path());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{whole}restart\n0123456789")
    );
    let out = sh(&send_big("/nonexistent/x", 10, 0, ""), b"", home.path());
    assert_eq!(out.status.code(), Some(3));
}
