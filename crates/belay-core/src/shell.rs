//! POSIX sh quoting. Every value that reaches a remote shell goes through
//! [`quote`]; the remote protocol never interpolates a raw string.

/// Quote `s` as one word for POSIX sh: single quotes, with embedded single
/// quotes written as `'\''`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// A heredoc delimiter that cannot occur in `body`: random, and checked.
pub fn heredoc_delimiter(body: &str) -> String {
    loop {
        let tag = format!(
            "BELAY_EOF_{}",
            crate::job::id::random_hex(8).unwrap_or_else(|_| "0f1e2d3c4b5a6978".into())
        );
        if !body.lines().any(|l| l == tag) {
            return tag;
        }
    }
}

/// A shell command that writes `body` to the file `name` in the current
/// directory atomically (a temporary name of this writer's own, then
/// rename: two concurrent writers never share a half-written file). The
/// body is one quoted word for the `printf` builtin, so nothing in it is
/// expanded and it costs one `write`, not a read per byte as a heredoc
/// through `read` does (4 KiB of wrapper took milliseconds that way); the
/// file's mode comes from the script's umask.
pub fn write_file_atomically(name: &str, body: &str) -> String {
    debug_assert!(!name.contains('/') && !name.contains('\''));
    format!(
        "printf '%s' {body} > '{name}.tmp'.$$ && mv -f '{name}.tmp'.$$ '{name}'\n",
        body = quote(body)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sh_echo(word: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {word}"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn atomic_write_copies_text_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let body = "line one\n  indented \\ back\\slash $HOME `x` 'q'\n\nlast\n";
        let script = write_file_atomically("f.txt", body);
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("f.txt")).unwrap(),
            body
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn quoting_survives_a_real_shell() {
        for s in [
            "plain",
            "it's",
            "a b",
            "$HOME",
            "`x`",
            "\"q\"",
            "back\\slash",
            "",
            "\n",
        ] {
            assert_eq!(sh_echo(&quote(s)), s, "value {s:?}");
        }
    }
}
