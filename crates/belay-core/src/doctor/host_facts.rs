//! Everything the doctor learns on the host in ONE script (one round trip):
//! who and where the connection landed (user, node, pid namespace), the
//! login shell's start-up (what it prints and how long it takes, run as
//! sshd runs a command and as a login shell), the workroot (writable, the
//! filesystem's space and inodes), systemd-logind's settings, the tools
//! belay uses (tmux, python3, the Slurm commands), the GPUs, and the
//! host's clock, read last. Over SSH it also leaves a Unix socket listening
//! for a few seconds (python3), so that a stream-local forward can be tried
//! against something that answers.
//!
//! The script prints `key=value` lines; [`HostFacts`] holds them.

use crate::shell::quote;
use crate::transport::Workroot;

/// Seconds the test socket's listener waits for the doctor's forward.
const SOCKET_LIFETIME_S: u32 = 10;

/// The facts script for a host whose workroot is `workroot`; `socket`:
/// start the stream-local test listener (SSH hosts only).
pub fn script(workroot: &Workroot, socket: bool) -> String {
    let mut s = String::from(PRELUDE);
    if socket {
        s.push_str(&SOCKET_START.replace("{lifetime}", &SOCKET_LIFETIME_S.to_string()));
    }
    s.push_str(LOGIN_SHELL);
    s.push_str(&WORKROOT.replace("{workroot}", &workroot.0));
    s.push_str(LOGIND);
    s.push_str(TOOLS);
    if socket {
        s.push_str(SOCKET_WAIT);
    }
    // Last, so that it is as close as can be to the reply's arrival.
    s.push_str("echo \"clock_ms=$(belay_ms)\"\n");
    s
}

/// Stops the test listener and removes its directory (when the forward
/// was refused, nothing connected to it).
pub fn socket_cleanup(pid: &str, path: &str) -> String {
    let dir = path.rsplit_once('/').map_or(path, |(d, _)| d);
    format!(
        "kill {} 2>/dev/null; rm -rf {} 2>/dev/null; true\n",
        quote(pid),
        quote(dir)
    )
}

const PRELUDE: &str = r#"belay_ms() { t=$(date +%s%N 2>/dev/null); case $t in ''|*[!0-9]*) ;; *) echo $((t / 1000000)) ;; esac; }
belay_line() { tr -cd '[:print:]' | cut -c 1-160; }
belay_t=; command -v timeout >/dev/null 2>&1 && belay_t="timeout 10"
echo "user=$(id -un 2>/dev/null)"
belay_node=; read -r belay_node 2>/dev/null < /proc/sys/kernel/hostname || belay_node=$(hostname 2>/dev/null)
echo "node=$belay_node"
echo "pidns=$(stat -L -c %i /proc/$$/ns/pid 2>/dev/null)"
"#;

const SOCKET_START: &str = r#"if command -v python3 >/dev/null 2>&1 && belay_sd=$(mktemp -d 2>/dev/null); then
  python3 -c 'import os, socket, sys
p = sys.argv[1]
s = socket.socket(socket.AF_UNIX)
s.bind(p)
s.listen(4)
s.settimeout({lifetime})
try:
    s.accept()
except OSError:
    pass
os.unlink(p)
os.rmdir(os.path.dirname(p))' "$belay_sd/s" </dev/null >/dev/null 2>&1 &
  echo "sock_pid=$!"
fi
"#;

const SOCKET_WAIT: &str = r#"if [ -n "$belay_sd" ]; then
  i=0; while [ ! -S "$belay_sd/s" ] && [ $i -lt 100 ]; do sleep 0.02 2>/dev/null || sleep 1; i=$((i + 1)); done
  [ -S "$belay_sd/s" ] && echo "sock=$belay_sd/s"
fi
"#;

// The user's shell run twice: as sshd runs a command (`SHELL -c`, with
// SSH_CLIENT as the session has it and no SHLVL, so bash reads ~/.bashrc
// exactly as for scp/rsync/sftp), and as a login shell (`-l`, as belay
// runs jobs).
const LOGIN_SHELL: &str = r#"belay_sh=$(getent passwd "$(id -un)" 2>/dev/null | cut -d: -f7)
[ -n "$belay_sh" ] || belay_sh=${SHELL:-/bin/sh}
echo "shell=$belay_sh"
belay_f=$(mktemp 2>/dev/null) || belay_f=/tmp/belay-doctor.$$
for belay_m in command login; do
  belay_l=; [ $belay_m = login ] && belay_l=-l
  a=$(belay_ms)
  (unset SHLVL; exec $belay_t "$belay_sh" $belay_l -c true) </dev/null >"$belay_f" 2>/dev/null
  echo "${belay_m}_status=$?"
  b=$(belay_ms)
  [ -n "$a" ] && [ -n "$b" ] && echo "${belay_m}_ms=$((b - a))"
  echo "${belay_m}_bytes=$(wc -c < "$belay_f" | tr -d ' ')"
  echo "${belay_m}_first=$(head -n 1 "$belay_f" | belay_line)"
done
rm -f "$belay_f"
for x in .bashrc .bash_profile .bash_login .profile .zshenv .zprofile .zlogin .cshrc .tcshrc .login; do
  [ -e "$HOME/$x" ] && echo "dotfile=$x"
done
"#;

// The nearest existing directory is the one tried: belay creates the rest.
const WORKROOT: &str = r#"belay_w={workroot}
echo "workroot=$belay_w"
belay_p=$belay_w
while [ -n "$belay_p" ] && [ "$belay_p" != / ] && [ ! -d "$belay_p" ]; do belay_p=$(dirname "$belay_p"); done
echo "workroot_dir=$belay_p"
if belay_tf=$(mktemp "$belay_p/.belay-doctor.XXXXXX" 2>&1); then
  rm -f "$belay_tf"; echo "workroot_writable=yes"
else
  echo "workroot_writable=no"; echo "workroot_error=$(printf '%s' "$belay_tf" | head -n 1 | belay_line)"
fi
echo "fs=$(stat -f -c '%S %b %a %c %d %T' "$belay_p" 2>/dev/null)"
"#;

// logind: the running daemon's view when it answers, else its files (the
// main file, then drop-ins; the last setting wins).
const LOGIND: &str = r#"belay_lk=
if command -v loginctl >/dev/null 2>&1 && belay_lk=$(loginctl show-session -p KillUserProcesses --value 2>/dev/null) && [ -n "$belay_lk" ]; then
  echo "logind_kill=$belay_lk"; echo "logind_from=loginctl"
  echo "logind_exclude=$(loginctl show-session -p KillExcludeUsers --value 2>/dev/null | belay_line)"
  echo "logind_only=$(loginctl show-session -p KillOnlyUsers --value 2>/dev/null | belay_line)"
  echo "linger=$(loginctl show-user "$(id -un)" -p Linger --value 2>/dev/null | belay_line)"
else
  for f in /etc/systemd/logind.conf /usr/lib/systemd/logind.conf.d/*.conf /run/systemd/logind.conf.d/*.conf /etc/systemd/logind.conf.d/*.conf; do
    [ -r "$f" ] || continue
    echo "logind_file=$f"
    for k in KillUserProcesses KillExcludeUsers KillOnlyUsers; do
      v=$(sed -n "s/^[[:space:]]*$k[[:space:]]*=\(.*\)/\1/p" "$f" | tail -n 1)
      if sed -n "/^[[:space:]]*$k[[:space:]]*=/p" "$f" | grep -q .; then
        echo "logind_set=$k $f $(printf '%s' "$v" | belay_line)"
      fi
    done
  done
fi
"#;

const TOOLS: &str = r#"for c in tmux python3 sbatch squeue scontrol scancel sacct nvidia-smi; do
  p=$(command -v $c 2>/dev/null) && echo "cmd=$c $p"
done
command -v tmux >/dev/null 2>&1 && echo "tmux_version=$(tmux -V 2>&1 | head -n 1 | belay_line)"
command -v python3 >/dev/null 2>&1 && echo "python3_version=$(python3 --version 2>&1 | head -n 1 | belay_line)"
if command -v nvidia-smi >/dev/null 2>&1; then
  belay_g=$($belay_t nvidia-smi --query-gpu=index,uuid,name,memory.used,memory.total,utilization.gpu --format=csv,noheader,nounits 2>&1)
  echo "gpu_status=$?"
  printf '%s\n' "$belay_g" | head -n 64 | while IFS= read -r l; do echo "gpu=$(printf '%s' "$l" | belay_line)"; done
fi
"#;

/// What the facts script printed, in order (`gpu`, `cmd`, … repeat).
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    lines: Vec<(String, String)>,
}

impl HostFacts {
    pub fn parse(stdout: &str) -> HostFacts {
        HostFacts {
            lines: stdout
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The last value of `key` (empty values count as absent).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines
            .iter()
            .rev()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.lines
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn number(&self, key: &str) -> Option<i64> {
        self.get(key)?.trim().parse().ok()
    }

    /// Where `command` is on the host's PATH, if it is.
    pub fn command(&self, command: &str) -> Option<&str> {
        self.all("cmd").find_map(|v| {
            let (c, path) = v.split_once(' ')?;
            (c == command).then_some(path)
        })
    }

    /// Did the script run to its end (its last line is the clock)?
    pub fn complete(&self) -> bool {
        self.lines.iter().any(|(k, _)| k == "clock_ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_runs_here_and_says_what_it_saw() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("jobs");
        let script = script(&Workroot(quote(&root.display().to_string())), false);
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        let facts = HostFacts::parse(&String::from_utf8_lossy(&out.stdout));
        assert!(facts.complete(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(facts.get("workroot_writable"), Some("yes"));
        assert_eq!(
            facts.get("workroot_dir"),
            Some(dir.path().to_str().unwrap()),
            "the nearest existing directory is tried"
        );
        assert_eq!(facts.get("workroot"), Some(root.to_str().unwrap()));
        assert_eq!(facts.command("sh"), None, "only the tools asked about");
        assert!(facts.get("fs").unwrap().split(' ').count() >= 6);
        assert!(facts.number("login_ms").is_some());
        let now = crate::time::now_ms();
        assert!((facts.number("clock_ms").unwrap() - now).abs() < 5_000);
    }

    #[test]
    fn repeated_keys_keep_their_order_and_the_last_wins() {
        let f = HostFacts::parse("cmd=tmux /usr/bin/tmux\ngpu=0, A\ngpu=1, B\nx=1\nx=\nx=2\n");
        assert_eq!(f.all("gpu").collect::<Vec<_>>(), vec!["0, A", "1, B"]);
        assert_eq!(f.command("tmux"), Some("/usr/bin/tmux"));
        assert_eq!(f.number("x"), Some(2));
        assert!(!f.complete());
    }
}
