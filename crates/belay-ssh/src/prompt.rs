//! The hook through which belay-ssh may ask the user something: a host key
//! confirmation (StrictHostKeyChecking ask), a key passphrase, or
//! keyboard-interactive answers. The engine asks only through a
//! [`Prompter`] whose [`Prompter::has_terminal`] is true; with
//! [`NoTerminal`] (the default, and what jobs and the server use) it never
//! prompts and fails with an error that names the remedy instead.

use std::path::Path;

/// Asks the user. Implemented by the CLI over `/dev/tty`.
pub trait Prompter: Send + Sync {
    /// Whether a user is there to answer. When false no other method is
    /// called.
    fn has_terminal(&self) -> bool;

    /// "The authenticity of host … can't be established … Continue?"
    fn confirm_host_key(&self, host: &str, key_type: &str, fingerprint: &str) -> bool;

    /// Passphrase for an encrypted private key; `None` to skip the key.
    fn passphrase(&self, key_file: &Path) -> Option<String>;

    /// Answers to keyboard-interactive prompts `(text, echo)`; `None` to
    /// give up on keyboard-interactive.
    fn keyboard_interactive(
        &self,
        name: &str,
        instructions: &str,
        prompts: &[(String, bool)],
    ) -> Option<Vec<String>>;
}

/// No terminal: never prompts.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTerminal;

impl Prompter for NoTerminal {
    fn has_terminal(&self) -> bool {
        false
    }
    fn confirm_host_key(&self, _: &str, _: &str, _: &str) -> bool {
        false
    }
    fn passphrase(&self, _: &Path) -> Option<String> {
        None
    }
    fn keyboard_interactive(&self, _: &str, _: &str, _: &[(String, bool)]) -> Option<Vec<String>> {
        None
    }
}
