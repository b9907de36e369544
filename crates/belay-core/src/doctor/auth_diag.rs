//! Authentication verdicts: every identity tried on a hop and why it
//! failed, each with its fix — a key file others may read (`chmod 600`),
//! an encrypted key with no agent and no terminal (`ssh-add`), a
//! certificate expired, not yet valid or for other principals (with its
//! validity window), an agent holding more keys than the server's
//! MaxAuthTries (`IdentitiesOnly yes` + `IdentityFile`), a key the server
//! does not know — and the methods the server accepts.

use belay_ssh::{AuthAttempt, Cause, ResolvedHost, TraceEvent, certificate_terms};

use super::report::{Check, Section};

/// The checks for a hop's authentication step `e` (`host`: the hop as
/// resolved, for its user and identity files).
pub fn checks(e: &TraceEvent, host: Option<&ResolvedHost>) -> Vec<Check> {
    let hop = e.hop.as_str();
    let user = host.map(|h| h.user.as_str()).unwrap_or("?");
    if e.failure.is_none() {
        return vec![
            Check::ok(
                Section::Authentication,
                hop,
                "auth",
                format!("as {user} by {}", e.seen),
            )
            .took(e.took),
        ];
    }
    let mut out: Vec<Check> = e
        .attempts
        .iter()
        .map(|a| attempt(hop, user, host, a))
        .collect();
    if let Some(m) = e
        .server_methods
        .as_ref()
        .filter(|m| !m.starts_with("nothing more") && !m.starts_with("unknown"))
    {
        let verdict_ok = m.contains("publickey");
        let c = Check::new(
            Section::Authentication,
            hop,
            "methods",
            if verdict_ok {
                super::report::Verdict::Ok
            } else {
                super::report::Verdict::Warn
            },
            format!("server accepts: {m}"),
        );
        out.push(if verdict_ok {
            c
        } else {
            c.remedy("belay authenticates with keys and certificates (and keyboard-interactive on a terminal); ask the admin to allow publickey")
        });
    }
    out.push(summary(e, hop, user, host));
    out
}

/// The verdict of the whole step, with the fix when one cause stands out.
fn summary(e: &TraceEvent, hop: &str, user: &str, host: Option<&ResolvedHost>) -> Check {
    let offered_agent = e
        .attempts
        .iter()
        .filter(|a| a.method.starts_with("agent key") && a.outcome == "rejected by server")
        .count();
    let too_many = e.seen.contains("Too many authentication failures")
        || (e.failure == Some(Cause::Closed) && offered_agent > 0)
        || e.server_methods
            .as_deref()
            .is_some_and(|m| m.contains("nothing more"));
    let c = Check::fail(Section::Authentication, hop, "auth", e.seen.clone()).took(e.took);
    if too_many {
        let key = host
            .and_then(|h| h.identity_files.iter().find(|p| p.exists()))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "~/.ssh/YOUR_KEY".into());
        return Check::fail(
            Section::Authentication,
            hop,
            "auth",
            format!(
                "too many authentication failures: the agent offered {offered_agent} key(s) the server \
                 refused, and the server closed the connection (MaxAuthTries) before the right one"
            ),
        )
        .remedy(format!(
            "offer only the right key to '{hop}': `IdentitiesOnly yes` and `IdentityFile {key}` in its Host block"
        ))
        .took(e.took);
    }
    if e.attempts.is_empty() {
        return c.remedy(format!(
            "no key to offer: add `IdentityFile KEY` to the Host block of '{hop}', or load a key into ssh-agent"
        ));
    }
    Check::fail(
        Section::Authentication,
        hop,
        "auth",
        format!(
            "no identity worked for {user} ({} tried, as listed above)",
            e.attempts.len()
        ),
    )
    .remedy(format!(
        "fix the first identity above that should work for {user}@{hop}"
    ))
    .took(e.took)
}

/// One identity tried, and its fix.
fn attempt(hop: &str, user: &str, host: Option<&ResolvedHost>, a: &AuthAttempt) -> Check {
    let seen = format!("{}: {}", a.method, a.outcome);
    let what = a.method.trim_end_matches(" (agent)");
    let path = what
        .strip_prefix("key ")
        .or_else(|| what.strip_prefix("certificate "))
        .unwrap_or("")
        .to_string();
    let check = |verdict_fail: bool, remedy: Option<String>| {
        let c = if verdict_fail {
            Check::fail(Section::Authentication, hop, "identity", seen.clone())
        } else {
            Check::ok(Section::Authentication, hop, "identity", seen.clone())
        };
        match remedy {
            Some(r) => c.remedy(r),
            None => c,
        }
    };
    let o = a.outcome.as_str();
    if o.contains("UNPROTECTED PRIVATE KEY FILE") {
        let fix = o
            .rsplit_once("fix: ")
            .map(|(_, f)| f.to_string())
            .unwrap_or_else(|| format!("chmod 600 {path}"));
        return check(
            true,
            Some(format!("`{fix}` (ssh ignores a key others may read)")),
        );
    }
    if o.starts_with("encrypted") {
        return check(
            true,
            Some(format!(
                "load it into your agent once: `ssh-add {path}` (belay cannot ask for a passphrase without a terminal)"
            )),
        );
    }
    if o.contains("not offered (IdentitiesOnly yes)") {
        return check(false, None);
    }
    if what.starts_with("certificate ") || what.starts_with("agent certificate") {
        let terms = certificate_terms(&expand_tilde(&path)).ok();
        let window = terms
            .as_ref()
            .map(|t| format!(" (valid {})", t.window()))
            .unwrap_or_default();
        let seen = format!("{seen}{window}");
        let c = Check::fail(Section::Authentication, hop, "identity", seen);
        if o.starts_with("expired") {
            return c.remedy(format!(
                "get a new certificate: {path} has expired (e.g. log in to your CA's portal / step ssh login again)"
            ));
        }
        if o.starts_with("not valid for another") {
            return c.remedy(format!(
                "{path} is not valid yet: check this machine's clock, or wait until its validity starts"
            ));
        }
        if let Some(t) = &terms
            && !t.allows_user(user)
        {
            return Check::fail(
                Section::Authentication,
                hop,
                "identity",
                format!(
                    "{}: {} — it is for principals {}, not '{user}'{window}",
                    a.method,
                    a.outcome,
                    t.principals.join(", ")
                ),
            )
            .remedy(format!(
                "log in as one of its principals (`User {}` in the Host block of '{hop}'), or get a certificate for '{user}'",
                t.principals.first().map(String::as_str).unwrap_or("?")
            ));
        }
        return c.remedy(format!(
            "the server does not accept its CA for {user} (TrustedUserCAKeys / AuthorizedPrincipalsFile on '{hop}')"
        ));
    }
    if o == "rejected by server" {
        if what.starts_with("agent key") {
            return check(
                true,
                Some(format!(
                    "not authorized for {user} on '{hop}'; if another key should be used, set `IdentitiesOnly yes` + `IdentityFile KEY`"
                )),
            );
        }
        return check(
            true,
            Some(format!(
                "add {path}.pub to ~{user}/.ssh/authorized_keys on '{hop}' (e.g. `ssh-copy-id -i {path} {hop}`)"
            )),
        );
    }
    if o.starts_with("cannot connect") || o.starts_with("did not answer") {
        return check(
            true,
            Some(
                "start an agent (`eval $(ssh-agent)`) or fix SSH_AUTH_SOCK / IdentityAgent".into(),
            ),
        );
    }
    if o.contains("private key file not found") {
        return check(
            true,
            Some(format!(
                "the private key for {path} is missing: fix IdentityFile of '{hop}'"
            )),
        );
    }
    if what == "keyboard-interactive" {
        return Check::warn(Section::Authentication, hop, "identity", seen)
            .remedy("run on a terminal, or set up a key for this host");
    }
    let _ = host;
    check(true, None)
}

fn expand_tilde(p: &str) -> std::path::PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => std::path::Path::new(&home).join(rest),
        _ => std::path::PathBuf::from(p),
    }
}
