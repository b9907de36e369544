//! The doctor's look at the user's shell start-up, from the host facts:
//! whether it writes to stdout (a noisy `.bashrc` breaks scp, rsync and
//! sftp for other tools, which read that output as their protocol; belay
//! frames its own and is immune) and what it costs per start (belay pays
//! it once per connection and once per job), with the file to look at.

use std::time::Duration;

use super::host_facts::HostFacts;
use super::report::{Check, Section};

/// Start-up slower than this is worth a warning.
pub const SLOW: Duration = Duration::from_millis(500);

/// The shell checks for `host`.
pub fn checks(facts: &HostFacts, host: &str) -> Vec<Check> {
    let shell = facts.get("shell").unwrap_or("/bin/sh");
    let name = shell.rsplit('/').next().unwrap_or(shell);
    let dotfiles: Vec<&str> = facts.all("dotfile").collect();
    let mut out = Vec::new();

    let noisy: Vec<(Mode, i64, &str)> = [Mode::Command, Mode::Login]
        .into_iter()
        .filter_map(|m| {
            let bytes = facts.number(&format!("{}_bytes", m.key()))?;
            (bytes > 0).then(|| {
                let first = facts.get(&format!("{}_first", m.key())).unwrap_or("");
                (m, bytes, first)
            })
        })
        .collect();
    if noisy.is_empty() {
        out.push(Check::ok(
            Section::Shell,
            host,
            "start-up output",
            format!(
                "{name} prints nothing at start-up (as sshd runs commands, and as a login shell)"
            ),
        ));
    } else {
        let seen = noisy
            .iter()
            .map(|(m, bytes, first)| {
                format!(
                    "{name} {} prints {bytes} byte{} to stdout ('{first}')",
                    m.words(),
                    if *bytes == 1 { "" } else { "s" }
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let files = noisy
            .iter()
            .flat_map(|(m, _, _)| startup_files(name, *m, &dotfiles))
            .fold(Vec::<String>::new(), |mut v, f| {
                if !v.contains(&f) {
                    v.push(f);
                }
                v
            });
        out.push(
            Check::warn(Section::Shell, host, "start-up output", seen).remedy(format!(
                "this breaks scp/rsync/sftp for other tools (belay is immune): in {}, print only when interactive (`[ -t 1 ] && echo …`, or `case $- in *i*) … ;; esac`)",
                or_profile(&files)
            )),
        );
    }

    let timed: Vec<(Mode, i64)> = [Mode::Command, Mode::Login]
        .into_iter()
        .filter_map(|m| Some((m, facts.number(&format!("{}_ms", m.key()))?)))
        .collect();
    let failed: Vec<(Mode, i64)> = [Mode::Command, Mode::Login]
        .into_iter()
        .filter_map(|m| Some((m, facts.number(&format!("{}_status", m.key()))?)))
        .filter(|(_, status)| *status != 0)
        .collect();
    let Some(&(slowest, ms)) = timed.iter().max_by_key(|(_, ms)| *ms) else {
        out.push(Check::ok(
            Section::Shell,
            host,
            "login shell",
            format!("{name}: not timed (the host's `date` has no %N)"),
        ));
        return out;
    };
    let times = timed
        .iter()
        .map(|(m, ms)| format!("{ms} ms {}", m.words()))
        .collect::<Vec<_>>()
        .join(", ");
    let check = if let Some((m, status)) = failed.first() {
        Check::warn(
            Section::Shell,
            host,
            "login shell",
            format!(
                "{shell} {} exited with status {status}{}",
                m.words(),
                if *status == 124 {
                    " (killed after 10 s)"
                } else {
                    ""
                }
            ),
        )
        .remedy(format!(
            "run `{shell} {}-c true` there and fix what it complains about in {}",
            if *m == Mode::Login { "-l " } else { "" },
            or_profile(&startup_files(name, *m, &dotfiles))
        ))
    } else if ms as u128 > SLOW.as_millis() {
        Check::warn(
            Section::Shell,
            host,
            "login shell",
            format!("{name} starts slowly: {times}"),
        )
        .remedy(format!(
            "{} pays it: look at {} (time its parts with `{shell} {}-x -c true`)",
            match slowest {
                Mode::Command => "every connection (and each scp, rsync, sftp)",
                Mode::Login => "every job",
            },
            or_profile(&startup_files(name, slowest, &dotfiles)),
            if slowest == Mode::Login { "-l " } else { "" }
        ))
    } else {
        Check::ok(
            Section::Shell,
            host,
            "login shell",
            format!("{name}: {times}"),
        )
    };
    out.push(check.took(Duration::from_millis(ms.max(0) as u64)));
    out
}

/// The two ways the shell is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `SHELL -c CMD`, as sshd runs a command (scp, rsync, sftp, belay's
    /// own connection).
    Command,
    /// `SHELL -l -c CMD`, as belay runs jobs.
    Login,
}

impl Mode {
    fn key(self) -> &'static str {
        match self {
            Mode::Command => "command",
            Mode::Login => "login",
        }
    }

    fn words(self) -> &'static str {
        match self {
            Mode::Command => "as sshd runs commands",
            Mode::Login => "as a login shell",
        }
    }
}

/// The start-up files `shell` reads in `mode` that exist (`~/` paths),
/// in the order it reads them.
fn startup_files(shell: &str, mode: Mode, dotfiles: &[&str]) -> Vec<String> {
    let has = |f: &&str| dotfiles.contains(f);
    let files: Vec<&str> = match (shell, mode) {
        ("bash", Mode::Command) => vec![".bashrc"],
        ("bash", Mode::Login) => [".bash_profile", ".bash_login", ".profile"]
            .into_iter()
            .filter(has)
            .take(1)
            .collect(),
        ("zsh", Mode::Command) => vec![".zshenv"],
        ("zsh", Mode::Login) => vec![".zshenv", ".zprofile", ".zlogin"],
        ("csh" | "tcsh", Mode::Command) => vec![".tcshrc", ".cshrc"],
        ("csh" | "tcsh", Mode::Login) => vec![".tcshrc", ".cshrc", ".login"],
        (_, Mode::Command) => vec![],
        (_, Mode::Login) => vec![".profile"],
    };
    files
        .into_iter()
        .filter(has)
        .map(|f| format!("~/{f}"))
        .collect()
}

fn or_profile(files: &[String]) -> String {
    if files.is_empty() {
        "the shell's start-up files (/etc/profile, /etc/bash.bashrc, …)".to_string()
    } else {
        files.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Verdict;

    fn facts(text: &str) -> HostFacts {
        HostFacts::parse(text)
    }

    #[test]
    fn a_quiet_fast_shell_is_ok() {
        let f = facts(
            "shell=/bin/bash\ncommand_status=0\ncommand_ms=4\ncommand_bytes=0\nlogin_status=0\nlogin_ms=9\nlogin_bytes=0\n",
        );
        let c = checks(&f, "h");
        assert_eq!(c.len(), 2);
        assert!(c.iter().all(|c| c.verdict == Verdict::Ok), "{c:?}");
        assert_eq!(
            c[1].seen,
            "bash: 4 ms as sshd runs commands, 9 ms as a login shell"
        );
    }

    #[test]
    fn noise_and_slowness_name_the_file() {
        let f = facts(
            "shell=/bin/bash\ncommand_status=0\ncommand_ms=700\ncommand_bytes=6\ncommand_first=hello\nlogin_status=0\nlogin_ms=20\nlogin_bytes=0\ndotfile=.bashrc\ndotfile=.profile\n",
        );
        let c = checks(&f, "h");
        assert_eq!(c[0].verdict, Verdict::Warn);
        assert!(c[0].seen.contains("'hello'"), "{}", c[0].seen);
        assert!(c[0].remedy.as_ref().unwrap().contains("~/.bashrc"));
        assert!(c[0].remedy.as_ref().unwrap().contains("belay is immune"));
        assert_eq!(c[1].verdict, Verdict::Warn);
        assert!(c[1].remedy.as_ref().unwrap().contains("~/.bashrc"));
    }

    #[test]
    fn bash_login_reads_only_the_first_profile_it_finds() {
        assert_eq!(
            startup_files("bash", Mode::Login, &[".profile", ".bash_login"]),
            vec!["~/.bash_login"]
        );
        assert!(startup_files("bash", Mode::Login, &[]).is_empty());
        assert_eq!(
            startup_files("zsh", Mode::Login, &[".zprofile"]),
            vec!["~/.zprofile"]
        );
    }
}
