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
