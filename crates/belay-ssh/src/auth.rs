//! User authentication in OpenSSH's order, with an error that says what
//! was tried and why each attempt failed.
//!
//! Order: (1) agent keys that match a configured IdentityFile (their
//! certificate first, if one sits beside the key as `<key>-cert.pub` or is
//! named by CertificateFile), (2) the agent's other keys unless
//! IdentitiesOnly — so an agent full of keys cannot trigger "Too many
//! authentication failures" when IdentitiesOnly is set, (3) IdentityFile
//! keys read from disk (certificate first; see [`crate::key_file`]: a file
//! group or others may read is refused as OpenSSH refuses it, and a
//! passphrase is asked only through a [`Prompter`] with a terminal and
//! without BatchMode), (4) keyboard-interactive, again only with a terminal
//! and without BatchMode. Passwords are never tried. Each phase is one
//! method of [`Authenticator`].
//!
//! Certificates are checked client-side before use: an expired one is not
//! offered and the error says e.g. `certificate ~/.ssh/k-cert.pub expired
//! 2 h ago`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use russh::MethodKind;
use russh::client::{AuthResult, Handle, Handler, KeyboardInteractiveAuthResponse};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{Certificate, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};

use crate::key_file::{PassphrasePolicy, load_private};
use crate::known_hosts::fingerprint;
use crate::prompt::Prompter;
use crate::resolve::{IdentityAgent, ResolvedHost};
use crate::sanitize::terminal_safe;
use crate::tokens::home_dir;

/// One authentication attempt and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthAttempt {
    /// What was offered, e.g. `agent key ED25519 SHA256:… (comment)` or
    /// `key ~/.ssh/id_ed25519`.
    pub method: String,
    /// Why it did not work, e.g. `rejected by server`, `expired 2 h ago`.
    pub outcome: String,
}

/// Authentication failed: every attempt, in order.
#[derive(Debug, Clone, thiserror::Error)]
#[error("authentication as {user} to {host} failed (server accepts: {server_methods}); tried: {}", list_attempts(.attempts))]
pub struct AuthError {
    pub host: String,
    pub user: String,
    pub attempts: Vec<AuthAttempt>,
    pub server_methods: String,
}

fn list_attempts(a: &[AuthAttempt]) -> String {
    if a.is_empty() {
        return "nothing (no agent, no identity files)".into();
    }
    a.iter()
        .map(|t| format!("{} {}", t.method, t.outcome))
        .collect::<Vec<_>>()
        .join("; ")
}

/// How authentication ended when it did not succeed.
pub(crate) enum AuthFailure {
    /// The server refused everything we had.
    Rejected(AuthError),
    /// The connection failed during authentication (after these
    /// attempts).
    Link(String, Vec<AuthAttempt>),
}

/// `~/x` for paths under the home directory (for messages).
pub(crate) fn tilde(p: &Path) -> String {
    let home = home_dir();
    match p.strip_prefix(&home) {
        Ok(rest) if home != Path::new("/") => format!("~/{}", rest.display()),
        _ => p.display().to_string(),
    }
}

/// `2 h`, `5 min`, `3 d`, `40 s`.
pub(crate) fn human_secs(s: u64) -> String {
    match s {
        0..=89 => format!("{s} s"),
        90..=5399 => format!("{} min", (s + 30) / 60),
        5400..=172_799 => format!("{} h", (s + 1800) / 3600),
        _ => format!("{} d", (s + 43_200) / 86_400),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Client-side validity check; `Err(reason)` when not usable now.
pub(crate) fn cert_time_problem(cert: &Certificate, now: u64) -> Option<String> {
    if now >= cert.valid_before() {
        Some(format!(
            "expired {} ago",
            human_secs(now - cert.valid_before())
        ))
    } else if now < cert.valid_after() {
        Some(format!(
            "not valid for another {}",
            human_secs(cert.valid_after() - now)
        ))
    } else {
        None
    }
}

struct LocalIdentity {
    path: PathBuf,
    public: Option<PublicKey>,
    cert: Option<(PathBuf, Certificate)>,
}

fn load_identities(host: &ResolvedHost, attempts: &mut Vec<AuthAttempt>) -> Vec<LocalIdentity> {
    let mut ids = Vec::new();
    for path in &host.identity_files {
        let pub_path = with_suffix(path, ".pub");
        if !path.exists() && !pub_path.exists() {
            continue; // OpenSSH lists its defaults whether or not they exist.
        }
        let public = russh::keys::load_public_key(&pub_path).ok().or_else(|| {
            russh::keys::load_secret_key(path, None)
                .ok()
                .map(|k| k.public_key().clone())
        });
        let cert_path = with_suffix(path, "-cert.pub");
        let cert = if cert_path.exists() {
            match russh::keys::load_openssh_certificate(&cert_path) {
                Ok(c) => Some((cert_path, c)),
                Err(e) => {
                    attempts.push(AuthAttempt {
                        method: format!("certificate {}", tilde(&cert_path)),
                        outcome: format!("unreadable: {e}"),
                    });
                    None
                }
            }
        } else {
            None
        };
        ids.push(LocalIdentity {
            path: path.clone(),
            public,
            cert,
        });
    }
    // CertificateFile entries attach to the identity with the same key.
    for cpath in &host.certificate_files {
        match russh::keys::load_openssh_certificate(cpath) {
            Ok(c) => {
                let target = ids.iter_mut().find(|i| {
                    i.public
                        .as_ref()
                        .is_some_and(|p| p.key_data() == c.public_key())
                });
                match target {
                    Some(id) => id.cert = Some((cpath.clone(), c)),
                    None => ids.push(LocalIdentity {
                        path: cpath.clone(),
                        public: Some(PublicKey::new(c.public_key().clone(), "")),
                        cert: Some((cpath.clone(), c)),
                    }),
                }
            }
            Err(e) => attempts.push(AuthAttempt {
                method: format!("certificate {}", tilde(cpath)),
                outcome: format!("unreadable: {e}"),
            }),
        }
    }
    ids
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn describe_key(k: &PublicKey) -> String {
    let c = k.comment();
    if c.is_empty() {
        format!("{} {}", k.algorithm().as_str(), fingerprint(k))
    } else {
        format!("{} {} ({c})", k.algorithm().as_str(), fingerprint(k))
    }
}

type Agent = AgentClient<Box<dyn russh::keys::agent::client::AgentStream + Send + Unpin>>;

/// `named_agent`: the socket the latest command named, over this
/// process's own `SSH_AUTH_SOCK` (a daemon: [`crate::AgentSocket`]).
async fn connect_agent(
    host: &ResolvedHost,
    named_agent: Option<PathBuf>,
    attempts: &mut Vec<AuthAttempt>,
) -> Option<Agent> {
    let (path, explicit) = match &host.identity_agent {
        IdentityAgent::Disabled => return None,
        IdentityAgent::Socket(p) => (p.clone(), true),
        IdentityAgent::Environment => match named_agent
            .map(PathBuf::into_os_string)
            .or_else(|| std::env::var_os("SSH_AUTH_SOCK"))
        {
            Some(p) if !p.is_empty() => (PathBuf::from(p), false),
            _ => return None,
        },
    };
    match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        AgentClient::connect_uds(&path),
    )
    .await
    {
        Ok(Ok(a)) => Some(a.dynamic()),
        Ok(Err(e)) => {
            attempts.push(AuthAttempt {
                method: format!("agent {}", path.display()),
                outcome: format!(
                    "cannot connect{}: {e}",
                    if explicit { "" } else { " (SSH_AUTH_SOCK)" }
                ),
            });
            None
        }
        Err(_) => {
            attempts.push(AuthAttempt {
                method: format!("agent {}", path.display()),
                outcome: "did not answer within 5 s".into(),
            });
            None
        }
    }
}

/// Authenticates on `handle`. Returns a description of the method that
/// worked. `named_agent`: see [`connect_agent`].
pub(crate) async fn authenticate<H: Handler>(
    handle: &mut Handle<H>,
    host: &ResolvedHost,
    prompter: &dyn Prompter,
    named_agent: Option<PathBuf>,
) -> Result<String, AuthFailure> {
    let mut a = Authenticator::new(handle, host, prompter, named_agent).await;
    match a.run().await {
        Ok(Some(m)) => Ok(m),
        Ok(None) => {
            if a.learn_server_methods().await {
                return Ok("none (the server asks for no authentication)".into());
            }
            Err(AuthFailure::Rejected(a.into_error()))
        }
        // What was tried before the link failed (e.g. the server's "Too
        // many authentication failures") goes with the error.
        Err(AuthFailure::Link(d, _)) => Err(AuthFailure::Link(d, a.attempts)),
        Err(e) => Err(e),
    }
}

/// One hop's authentication in progress: what there is to offer, what the
/// server still accepts, and every attempt so far. One method per phase
/// (see the module header); each returns `Some(method)` once one worked.
struct Authenticator<'a, H: Handler> {
    handle: &'a mut Handle<H>,
    host: &'a ResolvedHost,
    prompter: &'a dyn Prompter,
    user: String,
    now: u64,
    attempts: Vec<AuthAttempt>,
    /// What the server said it still accepts (`None`: not asked yet).
    server_methods: Option<Vec<MethodKind>>,
    ids: Vec<LocalIdentity>,
    agent: Option<Agent>,
    agent_ids: Vec<AgentIdentity>,
    /// Agent identities already offered in phase 1.
    used_agent: Vec<bool>,
    rsa_hash: Option<HashAlg>,
}

impl<'a, H: Handler> Authenticator<'a, H> {
    /// Gathers identity files, the agent and its keys, and the server's
    /// preferred RSA hash.
    async fn new(
        handle: &'a mut Handle<H>,
        host: &'a ResolvedHost,
        prompter: &'a dyn Prompter,
        named_agent: Option<PathBuf>,
    ) -> Self {
        let mut attempts = Vec::new();
        let ids = load_identities(host, &mut attempts);
        let mut agent = connect_agent(host, named_agent, &mut attempts).await;
        let agent_ids: Vec<AgentIdentity> = match agent.as_mut() {
            Some(a) => match a.request_identities().await {
                Ok(v) => v,
                Err(e) => {
                    attempts.push(AuthAttempt {
                        method: "agent".into(),
                        outcome: format!("cannot list keys: {e}"),
                    });
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        tracing::debug!(
            hop = %host.alias,
            identity_files = ids.len(),
            agent_keys = agent_ids.len(),
            "authentication: identities gathered"
        );
        let rsa_hash: Option<HashAlg> = handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten();
        Authenticator {
            handle,
            host,
            prompter,
            user: host.user.clone(),
            now: now_secs(),
            attempts,
            server_methods: None,
            used_agent: vec![false; agent_ids.len()],
            ids,
            agent,
            agent_ids,
            rsa_hash,
        }
    }

    /// The phases in order; `Some(method)` once one worked.
    async fn run(&mut self) -> Result<Option<String>, AuthFailure> {
        if let Some(m) = self.agent_configured_keys().await? {
            return Ok(Some(m));
        }
        if let Some(m) = self.agent_other_keys().await? {
            return Ok(Some(m));
        }
        if let Some(m) = self.identity_files().await? {
            return Ok(Some(m));
        }
        self.keyboard_interactive().await
    }

    /// When nothing was offered, the server has not said what it accepts:
    /// ask it with the `none` method (as OpenSSH does first), so the error
    /// can name its methods.
    /// True if the server let us in with `none`.
    async fn learn_server_methods(&mut self) -> bool {
        if self.server_methods.is_some() {
            return false;
        }
        match tokio::time::timeout(
            std::time::Duration::from_secs(5),
            self.handle.authenticate_none(self.user.clone()),
        )
        .await
        {
            Ok(Ok(AuthResult::Failure {
                remaining_methods, ..
            })) => {
                self.server_methods = Some(remaining_methods.to_vec());
                false
            }
            Ok(Ok(AuthResult::Success)) => true,
            _ => false,
        }
    }

    fn hash_for(&self, alg: &russh::keys::Algorithm) -> Option<HashAlg> {
        if matches!(alg, russh::keys::Algorithm::Rsa { .. }) {
            self.rsa_hash
        } else {
            None
        }
    }

    fn publickey_allowed(&self) -> bool {
        self.server_methods
            .as_ref()
            .is_none_or(|v| v.contains(&MethodKind::PublicKey))
    }

    /// Records an attempt that was not made or failed before the server.
    fn note(&mut self, method: String, outcome: String) {
        tracing::debug!(hop = %self.host.alias, %method, %outcome, "authentication attempt");
        self.attempts.push(AuthAttempt { method, outcome });
    }

    /// Interprets the server's answer to `method`; true on success.
    fn judge(&mut self, r: AuthResult, method: &str) -> bool {
        match r {
            AuthResult::Success => {
                tracing::debug!(hop = %self.host.alias, %method, outcome = "accepted", "authentication attempt");
                true
            }
            AuthResult::Failure {
                remaining_methods,
                partial_success,
            } => {
                self.server_methods = Some(remaining_methods.to_vec());
                let why = if partial_success {
                    "accepted, but the server requires another factor"
                } else {
                    "rejected by server"
                };
                self.note(method.to_string(), why.into());
                false
            }
        }
    }

    fn agent_index(&self, k: &PublicKey) -> Option<usize> {
        self.agent_ids.iter().position(
            |a| matches!(a, AgentIdentity::PublicKey { key, .. } if key.key_data() == k.key_data()),
        )
    }

    /// (1) agent keys matching configured identities, certificate first.
    async fn agent_configured_keys(&mut self) -> Result<Option<String>, AuthFailure> {
        if self.agent.is_none() {
            return Ok(None);
        }
        for i in 0..self.ids.len() {
            let Some(public) = self.ids[i].public.clone() else {
                continue;
            };
            let Some(ai) = self.agent_index(&public) else {
                continue;
            };
            self.used_agent[ai] = true;
            let alg = public.algorithm();
            let hash = self.hash_for(&alg);
            if let Some((cpath, cert)) = self.ids[i].cert.take() {
                if let Some(p) = cert_time_problem(&cert, self.now) {
                    self.note(format!("certificate {}", tilde(&cpath)), p);
                } else if self.publickey_allowed() {
                    let Some(agent) = self.agent.as_mut() else {
                        return Ok(None);
                    };
                    let r = self
                        .handle
                        .authenticate_certificate_with(self.user.clone(), cert, hash, agent)
                        .await
                        .map_err(signer_failure)?;
                    let method = format!("certificate {} (agent)", tilde(&cpath));
                    if self.judge(r, &method) {
                        return Ok(Some(method));
                    }
                }
            }
            if !self.publickey_allowed() {
                break;
            }
            let Some(agent) = self.agent.as_mut() else {
                return Ok(None);
            };
            let r = self
                .handle
                .authenticate_publickey_with(self.user.clone(), public.clone(), hash, agent)
                .await
                .map_err(signer_failure)?;
            let method = format!("key {} (agent)", tilde(&self.ids[i].path));
            if self.judge(r, &method) {
                return Ok(Some(method));
            }
            // Tried through the agent: do not load it from disk again.
            self.ids[i].public = None;
            self.ids[i].path = PathBuf::new();
        }
        Ok(None)
    }

    /// (2) the agent's other identities, unless IdentitiesOnly.
    async fn agent_other_keys(&mut self) -> Result<Option<String>, AuthFailure> {
        if self.agent.is_none() {
            return Ok(None);
        }
        if self.host.identities_only {
            let skipped = self.used_agent.iter().filter(|u| !**u).count();
            if skipped > 0 {
                self.note(
                    format!("{skipped} other agent key(s)"),
                    "not offered (IdentitiesOnly yes)".into(),
                );
            }
            return Ok(None);
        }
        for i in 0..self.agent_ids.len() {
            if self.used_agent[i] || !self.publickey_allowed() {
                continue;
            }
            let (desc, res) = match self.agent_ids[i].clone() {
                AgentIdentity::PublicKey { key, .. } => {
                    let hash = self.hash_for(&key.algorithm());
                    let Some(agent) = self.agent.as_mut() else {
                        return Ok(None);
                    };
                    (
                        format!("agent key {}", describe_key(&key)),
                        self.handle
                            .authenticate_publickey_with(self.user.clone(), key, hash, agent)
                            .await,
                    )
                }
                AgentIdentity::Certificate {
                    certificate,
                    comment,
                } => {
                    let desc = format!("agent certificate {comment}");
                    if let Some(p) = cert_time_problem(&certificate, self.now) {
                        self.note(desc, p);
                        continue;
                    }
                    let Some(agent) = self.agent.as_mut() else {
                        return Ok(None);
                    };
                    (
                        desc,
                        self.handle
                            .authenticate_certificate_with(
                                self.user.clone(),
                                certificate,
                                None,
                                agent,
                            )
                            .await,
                    )
                }
            };
            let r = res.map_err(signer_failure)?;
            if self.judge(r, &desc) {
                return Ok(Some(desc));
            }
        }
        Ok(None)
    }

    /// (3) identity files from disk.
    async fn identity_files(&mut self) -> Result<Option<String>, AuthFailure> {
        let link = |e: russh::Error| AuthFailure::Link(e.to_string(), Vec::new());
        for i in 0..self.ids.len() {
            if self.ids[i].path.as_os_str().is_empty() || !self.publickey_allowed() {
                continue;
            }
            let shown = tilde(&self.ids[i].path);
            let policy = PassphrasePolicy {
                prompter: self.prompter,
                batch_mode: self.host.batch_mode,
            };
            let key: Arc<PrivateKey> = match load_private(&self.ids[i].path, &policy) {
                Ok(k) => Arc::new(k),
                Err(why) => {
                    if let Some((cpath, _)) = &self.ids[i].cert {
                        let method = format!("certificate {}", tilde(cpath));
                        self.note(method, format!("no usable private key ({why})"));
                    }
                    self.note(format!("key {shown}"), why);
                    continue;
                }
            };
            if let Some((cpath, cert)) = self.ids[i].cert.take() {
                if let Some(p) = cert_time_problem(&cert, self.now) {
                    self.note(format!("certificate {}", tilde(&cpath)), p);
                } else {
                    let r = self
                        .handle
                        .authenticate_openssh_cert(self.user.clone(), key.clone(), cert)
                        .await
                        .map_err(link)?;
                    let method = format!("certificate {}", tilde(&cpath));
                    if self.judge(r, &method) {
                        return Ok(Some(method));
                    }
                }
            }
            if !self.publickey_allowed() {
                break;
            }
            let hash = self.hash_for(&key.algorithm());
            let r = self
                .handle
                .authenticate_publickey(self.user.clone(), PrivateKeyWithHashAlg::new(key, hash))
                .await
                .map_err(link)?;
            let method = format!("key {shown}");
            if self.judge(r, &method) {
                return Ok(Some(method));
            }
        }
        Ok(None)
    }

    /// (4) keyboard-interactive, only with a terminal and without
    /// BatchMode.
    async fn keyboard_interactive(&mut self) -> Result<Option<String>, AuthFailure> {
        let kbd_allowed = self
            .server_methods
            .as_ref()
            .is_some_and(|v| v.contains(&MethodKind::KeyboardInteractive));
        if !kbd_allowed || !self.host.kbd_interactive_authentication {
            return Ok(None);
        }
        let method = "keyboard-interactive".to_string();
        if self.host.batch_mode {
            self.note(method, "not tried: BatchMode yes (no prompts)".into());
            return Ok(None);
        }
        if !self.prompter.has_terminal() {
            self.note(method, "not tried: no terminal to answer prompts".into());
            return Ok(None);
        }
        match keyboard_interactive(self.handle, &self.user, self.prompter).await? {
            Ok(()) => {
                tracing::debug!(hop = %self.host.alias, %method, outcome = "accepted", "authentication attempt");
                Ok(Some(method))
            }
            Err(why) => {
                self.note(method, why);
                Ok(None)
            }
        }
    }

    /// Everything that was tried, for the error.
    fn into_error(self) -> AuthError {
        let server_methods = match self.server_methods {
            Some(v) if !v.is_empty() => v
                .iter()
                .map(|m| <&str>::from(m).to_string())
                .collect::<Vec<_>>()
                .join(","),
            Some(_) => "nothing more (too many failures?)".into(),
            None => "unknown (nothing was offered)".into(),
        };
        AuthError {
            host: self.host.display_target(),
            user: self.user,
            attempts: self.attempts,
            server_methods,
        }
    }
}

fn signer_failure(e: russh::AgentAuthError) -> AuthFailure {
    match e {
        russh::AgentAuthError::Send(e) => AuthFailure::Link(e.to_string(), Vec::new()),
        russh::AgentAuthError::Key(e) => {
            AuthFailure::Link(format!("agent failed to sign: {e}"), Vec::new())
        }
    }
}

async fn keyboard_interactive<H: Handler>(
    handle: &mut Handle<H>,
    user: &str,
    prompter: &dyn Prompter,
) -> Result<Result<(), String>, AuthFailure> {
    let link = |e: russh::Error| AuthFailure::Link(e.to_string(), Vec::new());
    let mut resp = handle
        .authenticate_keyboard_interactive_start(user.to_string(), None)
        .await
        .map_err(link)?;
    for _ in 0..16 {
        match resp {
            KeyboardInteractiveAuthResponse::Success => return Ok(Ok(())),
            KeyboardInteractiveAuthResponse::Failure { .. } => {
                return Ok(Err("rejected by server".into()));
            }
            KeyboardInteractiveAuthResponse::InfoRequest {
                name,
                instructions,
                prompts,
            } => {
                // The server wrote these: no terminal control sequences
                // reach the user's terminal (as in OpenSSH).
                let ps: Vec<(String, bool)> = prompts
                    .into_iter()
                    .map(|p| (terminal_safe(&p.prompt), p.echo))
                    .collect();
                let (name, instructions) = (terminal_safe(&name), terminal_safe(&instructions));
                let answers = if ps.is_empty() {
                    Vec::new()
                } else {
                    match prompter.keyboard_interactive(&name, &instructions, &ps) {
                        Some(a) => a,
                        None => return Ok(Err("cancelled at the prompt".into())),
                    }
                };
                resp = handle
                    .authenticate_keyboard_interactive_respond(answers)
                    .await
                    .map_err(link)?;
            }
        }
    }
    Ok(Err("too many prompts".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human() {
        assert_eq!(human_secs(7200), "2 h");
        assert_eq!(human_secs(30), "30 s");
        assert_eq!(human_secs(600), "10 min");
        assert_eq!(human_secs(3 * 86_400), "3 d");
    }
}
