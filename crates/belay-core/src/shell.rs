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

/// A shell command that writes `body` to `path` atomically (a temporary
/// name in the same directory, then rename), with a quoted heredoc so
/// nothing in `body` is expanded.
pub fn write_file_atomically(path: &str, body: &str, mode: &str) -> String {
    let tag = heredoc_delimiter(body);
    let tmp = format!("{path}.tmp.$$");
    let nl = if body.ends_with('\n') || body.is_empty() {
        ""
    } else {
        "\n"
    };
    // A heredoc always ends with a newline; `body` is text we generate, so a
    // trailing newline is harmless and keeps the file POSIX text.
    format!(
        "cat > \"{tmp}\" <<'{tag}'\n{body}{nl}{tag}\nchmod {mode} \"{tmp}\" && mv -f \"{tmp}\" {p}\n",
        p = quote(path)
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
