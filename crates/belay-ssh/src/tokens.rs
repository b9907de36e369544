//! Expansion of `~` and `%` tokens in values that `ssh -G` prints
//! unexpanded (IdentityFile, CertificateFile, IdentityAgent, ProxyCommand,
//! UserKnownHostsFile, ...), following ssh_config(5) TOKENS.
//!
//! `%C` is the OpenSSH 9.x connection hash: SHA-1 hex of `%l%h%p%r`.

use std::path::PathBuf;

use sha1::Digest;

/// The values tokens expand to, for one host.
#[derive(Debug, Clone)]
pub(crate) struct TokenContext {
    /// `%h`: the remote host name (after HostName).
    pub hostname: String,
    /// `%n`: the name as given on the command line / hop spec.
    pub original: String,
    /// `%p`
    pub port: u16,
    /// `%r`
    pub remote_user: String,
    /// `%k`: HostKeyAlias if set, else the original name.
    pub key_alias: String,
}

fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            // SAFETY: geteuid cannot fail.
            let uid = unsafe { libc::geteuid() };
            if uid == 0 {
                "root".into()
            } else {
                uid.to_string()
            }
        })
}

/// The local user's home directory (`%d`, `~`).
pub(crate) fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn local_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for buf.len() bytes; gethostname NUL-terminates
    // on success (and we bound the read by the first NUL anyway).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Expands a leading `~` or `~/` to the home directory.
pub(crate) fn expand_tilde(s: &str) -> String {
    if s == "~" {
        return home_dir().display().to_string();
    }
    if let Some(rest) = s.strip_prefix("~/") {
        return home_dir().join(rest).display().to_string();
    }
    s.to_string()
}

/// Expands `%` tokens; an unknown token is an error (as in OpenSSH).
pub(crate) fn expand_percent(s: &str, ctx: &TokenContext) -> Result<String, String> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(t) = chars.next() else {
            return Err(format!("'{s}': '%' at end of string"));
        };
        match t {
            '%' => out.push('%'),
            'h' => out.push_str(&ctx.hostname),
            'n' => out.push_str(&ctx.original),
            'p' => out.push_str(&ctx.port.to_string()),
            'r' => out.push_str(&ctx.remote_user),
            'k' => out.push_str(&ctx.key_alias),
            'u' => out.push_str(&local_user()),
            'd' => out.push_str(&home_dir().display().to_string()),
            'i' => {
                // SAFETY: getuid cannot fail.
                out.push_str(&unsafe { libc::getuid() }.to_string())
            }
            'l' => out.push_str(&local_hostname()),
            'L' => {
                let h = local_hostname();
                out.push_str(h.split('.').next().unwrap_or(&h))
            }
            'C' => out.push_str(&connection_hash(ctx)),
            other => return Err(format!("'{s}': unknown token %{other}")),
        }
    }
    Ok(out)
}

/// `%C`: hex SHA-1 of `%l%h%p%r`.
fn connection_hash(ctx: &TokenContext) -> String {
    let mut h = sha1::Sha1::new();
    h.update(local_hostname().as_bytes());
    h.update(ctx.hostname.as_bytes());
    h.update(ctx.port.to_string().as_bytes());
    h.update(ctx.remote_user.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `~` then `%` expansion, as OpenSSH does for file names.
pub(crate) fn expand_path(s: &str, ctx: &TokenContext) -> Result<PathBuf, String> {
    Ok(PathBuf::from(expand_percent(&expand_tilde(s), ctx)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> TokenContext {
        TokenContext {
            hostname: "daint.example".into(),
            original: "alps".into(),
            port: 2222,
            remote_user: "iam".into(),
            key_alias: "alps".into(),
        }
    }

    #[test]
    fn expands_tokens() {
        let c = ctx();
        assert_eq!(
            expand_percent("nc %h %p %r %n %%", &c).unwrap(),
            "nc daint.example 2222 iam alps %"
        );
        assert!(expand_percent("%z", &c).is_err());
        assert_eq!(expand_percent("%C", &c).unwrap().len(), 40);
        let p = expand_path("~/.ssh/%h", &c).unwrap();
        assert!(p.ends_with(".ssh/daint.example"));
    }
}
