//! A non-root login user for tests that must see what an ordinary account
//! sees: a workroot it cannot read, a read-only directory it cannot write
//! into. As root every permission check passes, so such tests are only
//! honest as another user.
//!
//! [`TestUser::create`] adds a unique system user (`useradd`, name derived
//! from this process and a counter, so concurrent tests never share one) with
//! a fresh home under the temporary directory and `/bin/sh` as its shell; the
//! testbed's sshd accepts the same authorized keys for it as for root (its
//! key file is readable by every user). `Drop` kills the user's processes by
//! pid and removes the user and its home.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::process::{run, signal, wait_until};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A system user that exists for one test. See the module docs.
#[derive(Debug)]
pub struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
    home: tempfile::TempDir,
}

impl TestUser {
    /// Adds the user; needs root (see [`crate::require`]).
    pub fn create() -> io::Result<TestUser> {
        let name = format!(
            "belayt{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let home = tempfile::Builder::new().prefix("belay-user.").tempdir()?;
        // `-p '*'`: no password, but not a *locked* account ("!"), which
        // sshd without PAM refuses even for key logins.
        retry_locked(|| {
            run(Command::new("useradd")
                .args(["--no-create-home", "--user-group", "--shell", "/bin/sh"])
                .args(["--password", "*", "--home-dir"])
                .arg(home.path())
                .arg(&name))
        })?;
        let uid = id_of(&name, "-u")?;
        let gid = id_of(&name, "-g")?;
        std::os::unix::fs::chown(home.path(), Some(uid), Some(gid))?;
        std::fs::set_permissions(
            home.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        Ok(TestUser {
            name,
            uid,
            gid,
            home,
        })
    }

    /// The login name (for `User` in an ssh_config host block).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn uid(&self) -> u32 {
        self.uid
    }

    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// The user's home directory (owned by the user, mode 0755).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `HOME/rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }

    /// Runs `sh -c SCRIPT` as this user (in its home); a non-zero exit is an
    /// error carrying stderr.
    pub fn sh(&self, script: &str) -> io::Result<Output> {
        run(self.command("/bin/sh").arg("-c").arg(script))
    }

    /// A command that will run as this user, in its home, with `HOME`,
    /// `USER` and `LOGNAME` set to the user's.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg(program)
            .current_dir(self.home.path())
            .env("HOME", self.home.path())
            .env("USER", &self.name)
            .env("LOGNAME", &self.name);
        c
    }

    /// Pids of every live process running as this user.
    pub fn processes(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
                    && e.metadata().is_ok_and(|m| m.uid() == self.uid)
                {
                    pids.push(pid);
                }
            }
        }
        pids
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Every process of this uid is ours: the user exists only for us.
        wait_until(Duration::from_secs(5), || {
            let pids = self.processes();
            for &p in &pids {
                signal(p, libc::SIGKILL);
            }
            pids.is_empty()
        });
        let _ = retry_locked(|| run(Command::new("userdel").arg(&self.name)));
    }
}

/// `useradd`/`userdel` fail while another holds the passwd lock (tests run
/// concurrently): retry those for a while.
fn retry_locked(mut f: impl FnMut() -> io::Result<Output>) -> io::Result<Output> {
    let mut last = None;
    wait_until(Duration::from_secs(20), || match f() {
        Ok(out) => {
            last = Some(Ok(out));
            true
        }
        Err(e) if e.to_string().contains("lock") => {
            last = Some(Err(e));
            false
        }
        Err(e) => {
            last = Some(Err(e));
            true
        }
    });
    last.unwrap_or_else(|| Err(io::Error::other("useradd/userdel never ran")))
}

fn id_of(name: &str, flag: &str) -> io::Result<u32> {
    let out = run(Command::new("id").arg(flag).arg(name))?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| io::Error::other(format!("id {flag} {name}: {e}")))
}
