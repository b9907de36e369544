//! The sh an app's job runs before its template's command ([`prelude`]),
//! and the script belay runs to see whether the app listens yet
//! ([`ready`]). Values from belay are quoted with `crate::shell::quote`.

use super::Listen;

/// Sets `BELAY_APP_DIR` (0700), `BELAY_APP_SOCKET` or `BELAY_APP_PORT`,
/// `BELAY_APP_TOKEN_FILE`, and writes `$BELAY_APP_DIR/where`.
pub fn prelude(listen: Listen) -> String {
    let mut s = String::from(
        r#"BELAY_APP_DIR=$BELAY_JOB_DIR/app
mkdir -p -m 700 "$BELAY_APP_DIR" || { echo "belay app: cannot create $BELAY_APP_DIR" >&2; exit 126; }
BELAY_APP_TOKEN_FILE=$BELAY_APP_DIR/token
BELAY_APP_SOCKET=$BELAY_APP_DIR/http.sock
# A Unix socket path has room for about 100 bytes.
if [ ${#BELAY_APP_SOCKET} -gt 100 ]; then
  belay_t=${TMPDIR:-/tmp}/belay-app-$(id -u)
  mkdir -p -m 700 "$belay_t" || exit 126
  BELAY_APP_SOCKET=$belay_t/$BELAY_JOB_ID.sock
fi
export BELAY_APP_DIR BELAY_APP_TOKEN_FILE BELAY_APP_SOCKET
"#,
    );
    match listen {
        Listen::Socket => {
            s.push_str("printf 'socket=%s\\n' \"$BELAY_APP_SOCKET\" > \"$BELAY_APP_DIR/where\"\n");
        }
        Listen::Port => s.push_str(
            r#"# A free port on the node's loopback (python3 asks the kernel for one).
BELAY_APP_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null) ||
  BELAY_APP_PORT=$(awk 'BEGIN { srand(); print 20000 + int(rand() * 40000) }')
export BELAY_APP_PORT
printf 'port=%s\n' "$BELAY_APP_PORT" > "$BELAY_APP_DIR/where"
"#,
        ),
    }
    s
}

/// Whether the app in the job directory `dir_word` listens yet. Prints
/// `R ended` (its job is over or held), `R starting`, or the lines of
/// `where` plus `token=` and `R ready`.
pub fn ready(dir_word: &str) -> String {
    format!(
        r#"d={dir_word}
if [ -s "$d/exit" ] || [ -f "$d/held" ]; then echo "R ended"; exit 0; fi
[ -f "$d/app/where" ] || {{ echo "R starting"; exit 0; }}
sock=; port=; path=
while IFS='=' read -r k v; do
  case $k in socket) sock=$v ;; port) port=$v ;; path) path=$v ;; esac
done < "$d/app/where"
if [ -n "$sock" ] && [ ! -S "$sock" ]; then echo "R starting"; exit 0; fi
tok=; [ -f "$d/app/token" ] && read -r tok < "$d/app/token"
printf 'socket=%s\nport=%s\npath=%s\ntoken=%s\nR ready\n' "$sock" "$port" "$path" "$tok"
"#
    )
}

/// Remove an ended app's socket, if it is still there and a connect to it
/// is refused (a stale socket; something that accepts is left alone).
/// Prints `R removed …`, `R gone …`, `R in use …` or `R kept …`.
pub fn clear_socket(dir_word: &str) -> String {
    format!(
        r#"d={dir_word}
sock=
[ -f "$d/app/where" ] && while IFS='=' read -r k v; do [ "$k" = socket ] && sock=$v; done < "$d/app/where"
if [ -z "$sock" ] || [ ! -S "$sock" ]; then echo "R gone: no socket left"; exit 0; fi
if ! command -v python3 >/dev/null 2>&1; then echo "R kept $sock: no python3 here to check that nothing listens on it"; exit 0; fi
if python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except ConnectionRefusedError:
    sys.exit(1)
except OSError:
    sys.exit(2)
' "$sock" 2>/dev/null; then echo "R in use: something still accepts on $sock; left alone"
elif [ $? = 1 ]; then rm -f "$sock" && echo "R removed its stale socket $sock"
else echo "R kept $sock: could not check it"; fi
"#
    )
}

/// What [`ready`] said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ended,
    Starting,
    Ready(Listening),
}

/// Where a ready app listens, and its token (if it has one).
#[derive(Clone, PartialEq, Eq)]
pub struct Listening {
    /// `/path.sock` or `127.0.0.1:PORT`, as a forward's REMOTE.
    pub remote: String,
    /// The URL path the app's page is at (`/lab`).
    pub path: String,
    pub token: Option<String>,
}

impl std::fmt::Debug for Listening {
    // Never print the token, even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listening")
            .field("remote", &self.remote)
            .field("path", &self.path)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Readiness {
    pub fn parse(text: &str) -> Option<Readiness> {
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
                .unwrap_or_default()
                .to_string()
        };
        if text.lines().any(|l| l == "R ended") {
            return Some(Readiness::Ended);
        }
        if text.lines().any(|l| l == "R starting") {
            return Some(Readiness::Starting);
        }
        if !text.lines().any(|l| l == "R ready") {
            return None;
        }
        let (sock, port) = (field("socket"), field("port"));
        let remote = if !sock.is_empty() {
            sock
        } else if port.parse::<u16>().is_ok() {
            format!("127.0.0.1:{port}")
        } else {
            return None;
        };
        let path = Some(field("path"))
            .filter(|p| p.starts_with('/'))
            .unwrap_or_else(|| "/".into());
        let token = Some(field("token")).filter(|t| !t.is_empty());
        Some(Readiness::Ready(Listening {
            remote,
            path,
            token,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_script_reads_what_the_prelude_wrote() {
        let tmp = tempfile::tempdir().unwrap();
        let job = tmp.path().join("job");
        std::fs::create_dir(&job).unwrap();
        let run = |script: &str| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .env("BELAY_JOB_DIR", &job)
                .env("BELAY_JOB_ID", "1a2b3c4d")
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        let dir = crate::shell::quote(&job.display().to_string());
        assert_eq!(
            Readiness::parse(&run(&ready(&dir))),
            Some(Readiness::Starting)
        );
        run(&format!(
            "{}printf 'path=/lab\\n' >> \"$BELAY_APP_DIR/where\"; echo t0k > \"$BELAY_APP_TOKEN_FILE\"",
            prelude(Listen::Socket)
        ));
        // The socket is not there yet: still starting.
        assert_eq!(
            Readiness::parse(&run(&ready(&dir))),
            Some(Readiness::Starting)
        );
        let sock = job.join("app/http.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let Some(Readiness::Ready(l)) = Readiness::parse(&run(&ready(&dir))) else {
            panic!("not ready");
        };
        assert_eq!(l.remote, sock.display().to_string());
        assert_eq!(l.path, "/lab");
        assert_eq!(l.token.as_deref(), Some("t0k"));
        assert!(
            !format!("{l:?}").contains("t0k"),
            "the token is never printed"
        );
        std::fs::write(job.join("exit"), "code=0\n").unwrap();
        assert_eq!(Readiness::parse(&run(&ready(&dir))), Some(Readiness::Ended));
    }
}
