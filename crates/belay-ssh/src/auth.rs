//! User authentication in OpenSSH's order, with an error that says what
//! was tried and why each attempt failed.
//!
//! Order: (1) agent keys that match a configured IdentityFile (their
//! certificate first, if one sits beside the key as `<key>-cert.pub` or is
//! named by CertificateFile), (2) the agent's other keys unless
//! IdentitiesOnly — so an agent full of keys cannot trigger "Too many
//! authentication failures" when IdentitiesOnly is set, (3) IdentityFile
//! keys read from disk (certificate first), asking for a passphrase only
//! through a [`Prompter`] with a terminal, (4) keyboard-interactive, again
//! only with a terminal. Passwords are never tried.
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

use crate::known_hosts::fingerprint;
use crate::prompt::Prompter;
use crate::resolve::{IdentityAgent, ResolvedHost};
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
    /// The connection failed during authentication.
    Link(String),
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

async fn connect_agent(host: &ResolvedHost, attempts: &mut Vec<AuthAttempt>) -> Option<Agent> {
    let (path, explicit) = match &host.identity_agent {
        IdentityAgent::Disabled => return None,
        IdentityAgent::Socket(p) => (p.clone(), true),
        IdentityAgent::Environment => match std::env::var_os("SSH_AUTH_SOCK") {
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
/// worked.
pub(crate) async fn authenticate<H: Handler>(
    handle: &mut Handle<H>,
    host: &ResolvedHost,
    prompter: &dyn Prompter,
) -> Result<String, AuthFailure> {
    let user = host.user.clone();
    let mut attempts = Vec::new();
    let mut server_methods: Option<Vec<MethodKind>> = None;
    let now = now_secs();
    let mut ids = load_identities(host, &mut attempts);
    let mut agent = connect_agent(host, &mut attempts).await;
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
    let rsa_hash: Option<HashAlg> = handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten();
    let hash_for = |alg: &russh::keys::Algorithm| {
        if matches!(alg, russh::keys::Algorithm::Rsa { .. }) {
            rsa_hash
        } else {
            None
        }
    };

    // Macro-like helper: interpret an AuthResult; returns true on success.
    fn outcome(
        r: AuthResult,
        server_methods: &mut Option<Vec<MethodKind>>,
    ) -> Result<bool, String> {
        match r {
            AuthResult::Success => Ok(true),
            AuthResult::Failure {
                remaining_methods,
                partial_success,
            } => {
                *server_methods = Some(remaining_methods.to_vec());
                if partial_success {
                    Err("accepted, but the server requires another factor".into())
                } else {
                    Err("rejected by server".into())
                }
            }
        }
    }
    let publickey_allowed = |m: &Option<Vec<MethodKind>>| {
        m.as_ref()
            .is_none_or(|v| v.contains(&MethodKind::PublicKey))
    };

    let mut used_agent = vec![false; agent_ids.len()];
    let agent_index = |k: &PublicKey| {
        agent_ids.iter().position(
            |a| matches!(a, AgentIdentity::PublicKey { key, .. } if key.key_data() == k.key_data()),
        )
    };

    // (1) agent keys matching configured identities, certificate first.
    if let Some(agent) = agent.as_mut() {
        for id in ids.iter_mut() {
            let Some(public) = id.public.clone() else {
                continue;
            };
            let Some(ai) = agent_index(&public) else {
                continue;
            };
            used_agent[ai] = true;
            if let Some((cpath, cert)) = id.cert.take() {
                if let Some(p) = cert_time_problem(&cert, now) {
                    attempts.push(AuthAttempt {
                        method: format!("certificate {}", tilde(&cpath)),
                        outcome: p,
                    });
                } else if publickey_allowed(&server_methods) {
                    let alg = public.algorithm();
                    match handle
                        .authenticate_certificate_with(user.clone(), cert, hash_for(&alg), agent)
                        .await
                    {
                        Ok(r) => match outcome(r, &mut server_methods) {
                            Ok(true) => {
                                return Ok(format!("certificate {} (agent)", tilde(&cpath)));
                            }
                            Ok(false) => {}
                            Err(why) => attempts.push(AuthAttempt {
                                method: format!("certificate {} (agent)", tilde(&cpath)),
                                outcome: why,
                            }),
                        },
                        Err(e) => return Err(signer_failure(e)),
                    }
                }
            }
            if !publickey_allowed(&server_methods) {
                break;
            }
            let alg = public.algorithm();
            match handle
                .authenticate_publickey_with(user.clone(), public.clone(), hash_for(&alg), agent)
                .await
            {
                Ok(r) => match outcome(r, &mut server_methods) {
                    Ok(true) => return Ok(format!("key {} (agent)", tilde(&id.path))),
                    Ok(false) => {}
                    Err(why) => attempts.push(AuthAttempt {
                        method: format!("key {} (agent)", tilde(&id.path)),
                        outcome: why,
                    }),
                },
                Err(e) => return Err(signer_failure(e)),
            }
            // Tried through the agent: do not load it from disk again.
            id.public = None;
            id.path = PathBuf::new();
        }
        // (2) the agent's other identities, unless IdentitiesOnly.
        if host.identities_only {
            let skipped = used_agent.iter().filter(|u| !**u).count();
            if skipped > 0 {
                attempts.push(AuthAttempt {
                    method: format!("{skipped} other agent key(s)"),
                    outcome: "not offered (IdentitiesOnly yes)".into(),
                });
            }
        } else {
            for (i, aid) in agent_ids.iter().enumerate() {
                if used_agent[i] || !publickey_allowed(&server_methods) {
                    continue;
                }
                let (desc, res) = match aid {
                    AgentIdentity::PublicKey { key, .. } => {
                        let alg = key.algorithm();
                        (
                            format!("agent key {}", describe_key(key)),
                            handle
                                .authenticate_publickey_with(
                                    user.clone(),
                                    key.clone(),
                                    hash_for(&alg),
                                    agent,
                                )
                                .await,
                        )
                    }
                    AgentIdentity::Certificate {
                        certificate,
                        comment,
                    } => {
                        let desc = format!("agent certificate {comment}");
                        if let Some(p) = cert_time_problem(certificate, now) {
                            attempts.push(AuthAttempt {
                                method: desc,
                                outcome: p,
                            });
                            continue;
                        }
                        (
                            desc,
                            handle
                                .authenticate_certificate_with(
                                    user.clone(),
                                    certificate.clone(),
                                    None,
                                    agent,
                                )
                                .await,
                        )
                    }
                };
                match res {
                    Ok(r) => match outcome(r, &mut server_methods) {
                        Ok(true) => return Ok(desc),
                        Ok(false) => {}
                        Err(why) => attempts.push(AuthAttempt {
                            method: desc,
                            outcome: why,
                        }),
                    },
                    Err(e) => return Err(signer_failure(e)),
                }
            }
        }
    }

    // (3) identity files from disk.
    for id in ids.iter_mut() {
        if id.path.as_os_str().is_empty() || !publickey_allowed(&server_methods) {
            continue;
        }
        let shown = tilde(&id.path);
        let key: Arc<PrivateKey> = match load_private(&id.path, prompter) {
            Ok(k) => Arc::new(k),
            Err(why) => {
                if let Some((cpath, _)) = &id.cert {
                    attempts.push(AuthAttempt {
                        method: format!("certificate {}", tilde(cpath)),
                        outcome: format!("no usable private key ({why})"),
                    });
                }
                attempts.push(AuthAttempt {
                    method: format!("key {shown}"),
                    outcome: why,
                });
                continue;
            }
        };
        if let Some((cpath, cert)) = id.cert.take() {
            if let Some(p) = cert_time_problem(&cert, now) {
                attempts.push(AuthAttempt {
                    method: format!("certificate {}", tilde(&cpath)),
                    outcome: p,
                });
            } else {
                let r = handle
                    .authenticate_openssh_cert(user.clone(), key.clone(), cert)
                    .await
                    .map_err(|e| AuthFailure::Link(e.to_string()))?;
                match outcome(r, &mut server_methods) {
                    Ok(true) => return Ok(format!("certificate {}", tilde(&cpath))),
                    Ok(false) => {}
                    Err(why) => attempts.push(AuthAttempt {
                        method: format!("certificate {}", tilde(&cpath)),
                        outcome: why,
                    }),
                }
            }
        }
        if !publickey_allowed(&server_methods) {
            break;
        }
        let alg = key.algorithm();
        let r = handle
            .authenticate_publickey(
                user.clone(),
                PrivateKeyWithHashAlg::new(key, hash_for(&alg)),
            )
            .await
            .map_err(|e| AuthFailure::Link(e.to_string()))?;
        match outcome(r, &mut server_methods) {
            Ok(true) => return Ok(format!("key {shown}")),
            Ok(false) => {}
            Err(why) => attempts.push(AuthAttempt {
                method: format!("key {shown}"),
                outcome: why,
            }),
        }
    }

    // (4) keyboard-interactive, only with a terminal.
    let kbd_allowed = server_methods
        .as_ref()
        .is_some_and(|v| v.contains(&MethodKind::KeyboardInteractive));
    if kbd_allowed && host.kbd_interactive_authentication {
        if prompter.has_terminal() && !host.batch_mode {
            match keyboard_interactive(handle, &user, prompter).await? {
                Ok(()) => return Ok("keyboard-interactive".into()),
                Err(why) => attempts.push(AuthAttempt {
                    method: "keyboard-interactive".into(),
                    outcome: why,
                }),
            }
        } else {
            attempts.push(AuthAttempt {
                method: "keyboard-interactive".into(),
                outcome: "not tried: no terminal to answer prompts".into(),
            });
        }
    }

    let server_methods = match server_methods {
        Some(v) if !v.is_empty() => v
            .iter()
            .map(|m| <&str>::from(m).to_string())
            .collect::<Vec<_>>()
            .join(","),
        Some(_) => "nothing more (too many failures?)".into(),
        None => "unknown (nothing was offered)".into(),
    };
    Err(AuthFailure::Rejected(AuthError {
        host: host.display_target(),
        user,
        attempts,
        server_methods,
    }))
}

fn signer_failure(e: russh::AgentAuthError) -> AuthFailure {
    match e {
        russh::AgentAuthError::Send(e) => AuthFailure::Link(e.to_string()),
        russh::AgentAuthError::Key(e) => AuthFailure::Link(format!("agent failed to sign: {e}")),
    }
}

/// Loads a private key, asking for a passphrase only with a terminal.
fn load_private(path: &Path, prompter: &dyn Prompter) -> Result<PrivateKey, String> {
    match russh::keys::load_secret_key(path, None) {
        Ok(k) => Ok(k),
        Err(russh::keys::Error::KeyIsEncrypted) => {
            if !prompter.has_terminal() {
                return Err(
                    "encrypted, and no terminal to ask for its passphrase (add it to ssh-agent)"
                        .into(),
                );
            }
            let Some(pass) = prompter.passphrase(path) else {
                return Err("encrypted; no passphrase given".into());
            };
            russh::keys::load_secret_key(path, Some(&pass))
                .map_err(|e| format!("cannot decrypt: {e}"))
        }
        Err(russh::keys::Error::IO(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            Err("private key file not found (only the .pub exists)".into())
        }
        Err(e) => Err(format!("unreadable: {e}")),
    }
}

async fn keyboard_interactive<H: Handler>(
    handle: &mut Handle<H>,
    user: &str,
    prompter: &dyn Prompter,
) -> Result<Result<(), String>, AuthFailure> {
    let link = |e: russh::Error| AuthFailure::Link(e.to_string());
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
                let ps: Vec<(String, bool)> =
                    prompts.into_iter().map(|p| (p.prompt, p.echo)).collect();
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
