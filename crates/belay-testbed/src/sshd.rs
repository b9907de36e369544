//! A real OpenSSH `sshd` for tests.
//!
//! Each [`Sshd`] owns a temporary directory with its config, host key,
//! authorized_keys, pid file and log, and runs `/usr/sbin/sshd` in a private
//! mount namespace where `/run` is an overlay (for `/run/sshd`) and root's
//! home is a fresh tmpfs seeded with [`SshdOptions::home_files`]: the login
//! shell start-up is therefore exactly what the test asks for, not the
//! machine's own `.bashrc`. On loopback it listens on a free port (retrying
//! on a clash); inside a [`crate::NetLab`] namespace it listens on port 22.
//!
//! Faults: [`Sshd::kill`] (the daemon and every session), [`Sshd::kill_sessions`],
//! [`Sshd::stop_sessions`]/[`Sshd::continue_sessions`] (SIGSTOP/SIGCONT of the
//! per-connection processes), and [`Sshd::restart`] on the same port.

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{alive, descendants, run, signal, wait_until};

/// How to start an [`Sshd`]. `Default` gives a loopback sshd with no
/// authorized keys and the SFTP subsystem enabled.
#[derive(Debug, Clone)]
pub struct SshdOptions {
    /// authorized_keys lines (public keys, e.g. from [`crate::KeyPair::public_line`]).
    pub authorized_keys: Vec<String>,
    /// A user CA public key for `TrustedUserCAKeys`.
    pub trusted_user_ca: Option<PathBuf>,
    /// Extra sshd_config lines, appended verbatim (e.g. `"MaxSessions 4"`).
    pub extra_config: Vec<String>,
    /// Files to create in the login user's (root's) clean home, as
    /// `(relative path, contents)`, e.g. `(".bashrc", "sleep 0.5\n")`.
    pub home_files: Vec<(String, String)>,
    /// Run inside this network namespace (set by [`crate::NetLab`]).
    pub netns: Option<String>,
    /// Listen address; default `127.0.0.1` (loopback) or `0.0.0.0` (netns).
    pub listen: Option<String>,
    /// Port; default a free port (loopback) or 22 (netns).
    pub port: Option<u16>,
    /// A host CA private key: the host key is certified by it (principals:
    /// the listen address and `localhost`) and served as HostCertificate,
    /// for `@cert-authority` known_hosts entries.
    pub host_ca: Option<PathBuf>,
    /// Serve the SFTP subsystem (`Subsystem sftp …`); default true. False
    /// omits the line, as on hosts whose admins disabled SFTP.
    pub sftp: bool,
    /// A PAM stack for this sshd (`UsePAM yes`, keyboard-interactive on,
    /// root may log in with it): bind-mounted over /etc/pam.d/sshd inside
    /// sshd's private mount namespace only, so the machine's own PAM
    /// configuration is never touched. Loopback sshds only.
    pub pam_stack: Option<String>,
}

impl Default for SshdOptions {
    fn default() -> Self {
        SshdOptions {
            authorized_keys: Vec::new(),
            trusted_user_ca: None,
            extra_config: Vec::new(),
            pam_stack: None,
            home_files: Vec::new(),
            netns: None,
            listen: None,
            port: None,
            host_ca: None,
            sftp: true,
        }
    }
}

/// A running sshd. Dropping it kills the daemon and its sessions.
#[derive(Debug)]
pub struct Sshd {
    dir: tempfile::TempDir,
    opts: SshdOptions,
    port: u16,
    pid: u32,
    host_key_line: String,
}

impl Sshd {
    /// Starts an sshd with `opts`; returns once it is listening (sshd forks
    /// only after binding) and its pid file is written.
    pub fn start(opts: SshdOptions) -> io::Result<Sshd> {
        let dir = tempfile::Builder::new().prefix("belay-sshd.").tempdir()?;
        let d = dir.path();
        for sub in ["ru", "rw", "home"] {
            std::fs::create_dir_all(d.join(sub))?;
        }
        run(Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "belay-testbed-host",
                "-f",
            ])
            .arg(d.join("ssh_host_ed25519_key")))?;
        let host_pub = std::fs::read_to_string(d.join("ssh_host_ed25519_key.pub"))?;
        let host_key_line = host_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(ca) = &opts.host_ca {
            let listen = opts.listen.clone().unwrap_or_else(|| "127.0.0.1".into());
            run(Command::new("ssh-keygen")
                .args([
                    "-q",
                    "-h",
                    "-I",
                    "belay-testbed-host",
                    "-V",
                    "-5m:+1h",
                    "-n",
                ])
                .arg(format!("{listen},localhost"))
                .arg("-s")
                .arg(ca)
                .arg(d.join("ssh_host_ed25519_key.pub")))?;
        }
        let mut keys = opts.authorized_keys.join("\n");
        keys.push('\n');
        std::fs::write(d.join("authorized_keys"), keys)?;
        // sshd reads authorized_keys as the user logging in: a
        // [`crate::TestUser`] must be able to reach it (public keys only;
        // the host key stays 0600).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711))?;
        std::fs::set_permissions(
            d.join("authorized_keys"),
            std::fs::Permissions::from_mode(0o644),
        )?;
        for (rel, contents) in &opts.home_files {
            let p = d.join("home").join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(p, contents)?;
        }
        let mut sshd = Sshd {
            dir,
            opts,
            port: 0,
            pid: 0,
            host_key_line,
        };
        let mut last_err = None;
        for _ in 0..10 {
            let port = match sshd.opts.port {
                Some(p) => p,
                None if sshd.opts.netns.is_some() => 22,
                None => free_port()?,
            };
            match sshd.launch(port) {
                Ok(()) => return Ok(sshd),
                Err(e) if e.to_string().contains("Address already in use") => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("could not find a free port")))
    }

    fn write_config(&self, port: u16) -> io::Result<PathBuf> {
        let d = self.dir.path();
        let listen = self.opts.listen.clone().unwrap_or_else(|| {
            if self.opts.netns.is_some() {
                "0.0.0.0"
            } else {
                "127.0.0.1"
            }
            .to_string()
        });
        // (sshd_config: the first value of a keyword wins.)
        let auth = if self.opts.pam_stack.is_some() {
            "KbdInteractiveAuthentication yes\nUsePAM yes\nPermitRootLogin yes\n"
        } else {
            "KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\n"
        };
        let mut conf = format!(
            "Port {port}\nListenAddress {listen}\nHostKey {d}/ssh_host_ed25519_key\n\
             PidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n\
             PasswordAuthentication no\n{auth}\
             StrictModes no\nLogLevel VERBOSE\n",
            d = d.display()
        );
        if self.opts.sftp {
            conf.push_str("Subsystem sftp /usr/lib/openssh/sftp-server\n");
        }
        if self.opts.host_ca.is_some() {
            conf.push_str(&format!(
                "HostCertificate {}/ssh_host_ed25519_key-cert.pub\n",
                d.display()
            ));
        }
        if let Some(ca) = &self.opts.trusted_user_ca {
            let dst = d.join("trusted_user_ca.pub");
            std::fs::copy(ca, &dst)?;
            conf.push_str(&format!("TrustedUserCAKeys {}\n", dst.display()));
        }
        for l in &self.opts.extra_config {
            conf.push_str(l);
            conf.push('\n');
        }
        let path = d.join("sshd_config");
        std::fs::write(&path, conf)?;
        Ok(path)
    }

    fn launch(&mut self, port: u16) -> io::Result<()> {
        let conf = self.write_config(port)?;
        let d = self.dir.path().display().to_string();
        let _ = std::fs::remove_file(self.dir.path().join("sshd.pid"));
        let pam = match &self.opts.pam_stack {
            Some(stack) => {
                let file = self.dir.path().join("pam.sshd");
                std::fs::write(&file, stack)?;
                format!("mount --bind {} /etc/pam.d/sshd\n", file.display())
            }
            None => String::new(),
        };
        let script = format!(
            "set -e\n\
             mount -t overlay overlay -o lowerdir=/run,upperdir={d}/ru,workdir={d}/rw /run \
               || mount -t tmpfs -o mode=0755 tmpfs /run\n\
             install -d -m 0755 /run/sshd\n\
             mount -t tmpfs -o mode=0700 tmpfs /root\n\
             cp -a {d}/home/. /root/\n\
             {pam}\
             exec /usr/sbin/sshd -f {conf} -E {d}/log\n",
            conf = conf.display()
        );
        let mut cmd = match &self.opts.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "/bin/sh", "-c", &script]);
                c
            }
            None => {
                let mut c = Command::new("unshare");
                c.args(["-m", "--propagation", "private", "/bin/sh", "-c", &script]);
                c
            }
        };
        if let Err(e) = run(&mut cmd) {
            return Err(io::Error::other(format!(
                "{e}; sshd log: {}",
                self.log().trim()
            )));
        }
        let pidfile = self.dir.path().join("sshd.pid");
        let mut pid = 0;
        let ok = wait_until(Duration::from_secs(5), || {
            pid = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            pid != 0
        });
        if !ok {
            return Err(io::Error::other(format!(
                "sshd wrote no pid file within 5 s; log: {}",
                self.log().trim()
            )));
        }
        self.pid = pid;
        self.port = port;
        Ok(())
    }

    /// The port sshd listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address to connect to from the root namespace's point of view
    /// (the listen address; `127.0.0.1` on loopback).
    pub fn listen_addr(&self) -> String {
        self.opts
            .listen
            .clone()
            .unwrap_or_else(|| "127.0.0.1".into())
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The sshd's private directory (config, log, keys).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The host public key as `ssh-ed25519 AAAA...` (no comment).
    pub fn host_key_line(&self) -> &str {
        &self.host_key_line
    }

    /// A known_hosts line for this sshd under `name` (use `[name]:port` for a
    /// non-22 port, as OpenSSH does).
    pub fn known_hosts_line(&self, name: &str) -> String {
        let n = if self.port == 22 {
            name.to_string()
        } else {
            format!("[{name}]:{}", self.port)
        };
        format!("{n} {}", self.host_key_line)
    }

    /// The daemon's log so far (LogLevel VERBOSE).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// Pids of the per-connection sshd processes (descendants of the daemon).
    pub fn session_pids(&self) -> Vec<u32> {
        descendants(self.pid)
    }

    /// Whether a process whose name (`/proc/PID/comm`) is `name` runs
    /// below this sshd — e.g. to wait until a remote `sleep` has started.
    pub fn runs(&self, name: &str) -> bool {
        self.session_pids().iter().any(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == name)
        })
    }

    /// SIGKILLs every session process (the daemon keeps listening).
    pub fn kill_sessions(&self) {
        for p in self.session_pids() {
            signal(p, libc::SIGKILL);
        }
    }

    /// SIGSTOPs every session process: the host stops answering, as a hung
    /// machine would, while TCP stays up.
    pub fn stop_sessions(&self) -> Vec<u32> {
        let pids = self.session_pids();
        for &p in &pids {
            signal(p, libc::SIGSTOP);
        }
        pids
    }

    /// SIGCONTs the given pids (from [`Sshd::stop_sessions`]).
    pub fn continue_sessions(&self, pids: &[u32]) {
        for &p in pids {
            signal(p, libc::SIGCONT);
        }
    }

    /// SIGKILLs the daemon and every session, and waits (5 s) until gone.
    pub fn kill(&self) {
        let mut pids = self.session_pids();
        pids.push(self.pid);
        for &p in &pids {
            signal(p, libc::SIGKILL);
        }
        wait_until(Duration::from_secs(5), || pids.iter().all(|&p| !alive(p)));
    }

    /// Starts the daemon again on the same port with the same config and
    /// host key (after [`Sshd::kill`]).
    pub fn restart(&mut self) -> io::Result<()> {
        let port = self.port;
        let mut last = None;
        // The port may linger briefly; retry for up to 5 s.
        for _ in 0..50 {
            match self.launch(port) {
                Ok(()) => return Ok(()),
                Err(e) if e.to_string().contains("Address already in use") => {
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("restart failed")))
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if self.pid != 0 {
            self.kill();
        }
    }
}

/// A currently free TCP port on 127.0.0.1 (may be taken again before use;
/// callers retry on a clash).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
