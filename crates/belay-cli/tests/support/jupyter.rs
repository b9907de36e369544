//! A real jupyter-server for the app tests, from the Python package index
//! into a virtualenv kept under the target directory (installed once, then
//! reused: CI pays about 20 s the first time). Needs `python3 -m venv`
//! (Debian: python3-venv; scripts/test.sh installs it) and the index;
//! without them the tests that need it fail, saying why.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The `jupyter-server` executable of the test virtualenv.
pub fn jupyter_server() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY.get_or_init(install).clone()
}

fn install() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let venv = target.join("test-jupyter-venv");
    let server = venv.join("bin/jupyter-server");
    let marker = venv.join(".belay-installed");
    if marker.exists() && server.exists() {
        return server;
    }
    // A half-made one (an install cut short) is made again.
    let _ = std::fs::remove_dir_all(&venv);
    let run = |c: &mut Command, what: &str| {
        let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed (the app tests need python3-venv and the Python package index): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // The system's python (the test hosts' sessions see this machine's
    // files, except /root, which they see as an empty tmpfs: a python
    // under /root — pyenv — would not be there for them).
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    run(
        Command::new(python).arg("-m").arg("venv").arg(&venv),
        "python3 -m venv",
    );
    run(
        Command::new(venv.join("bin/pip")).args([
            "install",
            "-q",
            "--disable-pip-version-check",
            "jupyter-server",
        ]),
        "pip install jupyter-server",
    );
    std::fs::write(&marker, "").expect("marker");
    server
}
