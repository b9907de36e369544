//! Text from a remote host made safe to print on a terminal.
//!
//! A hostile or broken host controls banners, keyboard-interactive prompts
//! and instructions, and whatever a failing command wrote to stderr; printed
//! raw, an escape sequence in them could retitle the window, rewrite the
//! screen, fake a prompt, or worse. Like OpenSSH (`utf8.c`), every control
//! character other than newline and tab — C0, DEL and the C1 range, ESC
//! included — is shown as a visible `\ooo` octal escape of its bytes;
//! printable text (UTF-8 included) passes unchanged.

/// `s` with terminal control characters made visible (`ESC` → `\033`).
pub fn terminal_safe(s: &str) -> String {
    if !s.chars().any(is_unsafe) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\{b:03o}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Bytes from the host (lossy UTF-8), made safe to print.
pub fn terminal_safe_bytes(b: &[u8]) -> String {
    terminal_safe(&String::from_utf8_lossy(b))
}

fn is_unsafe(c: char) -> bool {
    c != '\n' && c != '\t' && (c.is_control() || c == '\u{2028}' || c == '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_sequences_and_keeps_text() {
        assert_eq!(terminal_safe("plain ünïcode\tok\n"), "plain ünïcode\tok\n");
        assert_eq!(terminal_safe("\x1b]0;pwned\x07x"), "\\033]0;pwned\\007x");
        assert_eq!(terminal_safe("a\rb\x7f"), "a\\015b\\177");
        // C1 CSI (U+009B) as its two UTF-8 bytes.
        assert_eq!(terminal_safe("\u{9b}2J"), "\\302\\2332J");
    }
}
