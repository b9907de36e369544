//! Connection parameters from the user's OpenSSH configuration, resolved by
//! OpenSSH itself.
//!
//! belay never parses ssh_config: it runs `ssh -G [-F FILE] HOST` and reads
//! the `key value` lines it prints, so Include, Match, Host patterns,
//! canonicalisation and defaults behave exactly as in `ssh`. Each ProxyJump
//! hop is resolved the same way OpenSSH resolves it — `ssh -G` on the hop
//! spec `[user@]host[:port]` itself — so a hop named `ela.example` gets
//! `Host ela.example` parameters even if the config only has `Host ela`
//! (the seed-000 story). For a chain `a,b` OpenSSH connects `a` (whose own
//! ProxyJump/ProxyCommand apply) and reaches `b` through it with `-J a`,
//! which overrides `b`'s own ProxyJump; this module reproduces that.
//!
//! `ssh -G` leaves `~` and `%` tokens in file names and ProxyCommand; they
//! are expanded here (see [`crate::tokens`]). Because `%h`/`%n`/`%r` reach
//! a shell through ProxyCommand, a host or user name given on the command
//! line is checked first, as OpenSSH 9.6 checks it (`valid_hostname`,
//! `valid_ruser`): shell metacharacters, whitespace, control characters and
//! a leading `-` are refused, whatever the local `ssh` version would do.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::error::SshError;
use crate::tokens::{TokenContext, expand_path, expand_percent};

/// Environment variable naming an alternative ssh config file (as
/// `ssh -F FILE`), used when no file is passed explicitly.
pub const CONFIG_ENV: &str = "BELAY_SSH_CONFIG";

/// How long `ssh -G` may take (it can run `Match exec` commands).
const RESOLVE_DEADLINE: Duration = Duration::from_secs(30);

/// Longest ProxyJump chain followed (guards against loops in the config).
const MAX_HOPS: usize = 16;

/// StrictHostKeyChecking as printed by `ssh -G`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrictHostKeyChecking {
    /// `yes`: unknown keys are refused.
    Yes,
    /// `accept-new`: unknown keys are recorded and accepted; changed refused.
    AcceptNew,
    /// `no`: like accept-new for belay (a changed key is still refused —
    /// belay never disables host-key checking).
    No,
    /// `ask` (OpenSSH's default): ask on a terminal; without one, refuse
    /// with the remedy `belay host trust HOST`.
    Ask,
}

/// Where the agent is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityAgent {
    /// `SSH_AUTH_SOCK` from the environment (the default).
    Environment,
    /// `IdentityAgent none`: do not use an agent.
    Disabled,
    /// An explicit socket path.
    Socket(PathBuf),
}

/// One host's parameters, as `ssh -G` resolved them, with tokens expanded.
#[derive(Debug, Clone)]
pub struct ResolvedHost {
    /// The name that was resolved (alias or hop spec's host part).
    pub alias: String,
    /// What was asked of `ssh -G` (`-l USER -p PORT HOST`).
    pub spec: HopSpec,
    pub hostname: String,
    pub user: String,
    pub port: u16,
    /// IdentityFile entries in order (expanded; may not exist: OpenSSH
    /// lists its defaults).
    pub identity_files: Vec<PathBuf>,
    pub certificate_files: Vec<PathBuf>,
    pub identities_only: bool,
    pub identity_agent: IdentityAgent,
    /// ProxyJump as written (`None` when unset or `none`).
    pub proxy_jump: Option<String>,
    /// ProxyCommand with tokens expanded (`None` when unset or `none`).
    pub proxy_command: Option<String>,
    pub user_known_hosts_files: Vec<PathBuf>,
    pub global_known_hosts_files: Vec<PathBuf>,
    pub host_key_alias: Option<String>,
    /// RevokedHostKeys (expanded; `None` when unset or `none`).
    pub revoked_host_keys: Option<PathBuf>,
    pub strict_host_key_checking: StrictHostKeyChecking,
    /// ServerAliveInterval; `None` when 0 (unset or off). belay then uses
    /// its default, see [`crate::session::DEFAULT_KEEPALIVE_INTERVAL`].
    pub server_alive_interval: Option<Duration>,
    pub server_alive_count_max: u32,
    /// ConnectTimeout; `None` when unset (belay then uses
    /// [`crate::session::DEFAULT_CONNECT_TIMEOUT`]).
    pub connect_timeout: Option<Duration>,
    pub batch_mode: bool,
    pub kbd_interactive_authentication: bool,
    pub host_key_algorithms: Vec<String>,
    pub pubkey_accepted_algorithms: Vec<String>,
    /// Every `key value` line `ssh -G` printed, by key (lowercase).
    pub raw: BTreeMap<String, Vec<String>>,
}

impl ResolvedHost {
    /// The name this host's key is recorded under in known_hosts:
    /// HostKeyAlias if set, else `hostname` for port 22, else
    /// `[hostname]:port` (as OpenSSH writes it).
    pub fn known_hosts_name(&self) -> String {
        if let Some(a) = &self.host_key_alias {
            return a.clone();
        }
        if self.port == 22 {
            self.hostname.clone()
        } else {
            format!("[{}]:{}", self.hostname, self.port)
        }
    }

    /// `user@hostname:port`, for messages.
    pub fn display_target(&self) -> String {
        format!("{}@{}:{}", self.user, self.hostname, self.port)
    }
}

/// A target and the hops to reach it.
#[derive(Debug, Clone)]
pub struct ResolvedChain {
    /// What was asked for.
    pub alias: String,
    /// Jump hosts in connection order: `jumps[0]` is connected to directly
    /// (or through its ProxyCommand), each next one through the previous.
    pub jumps: Vec<ResolvedHost>,
    /// The destination.
    pub target: ResolvedHost,
    /// The config file passed to `ssh -G -F`, if any.
    pub config_file: Option<PathBuf>,
}

impl ResolvedChain {
    /// All hosts in connection order, target last.
    pub fn hops(&self) -> impl Iterator<Item = &ResolvedHost> {
        self.jumps.iter().chain(std::iter::once(&self.target))
    }
}

/// A parsed ProxyJump element: `[ssh://][user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HopSpec {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl HopSpec {
    /// Parses one hop like OpenSSH's `parse_user_host_port` / `parse_ssh_uri`.
    pub fn parse(spec: &str) -> Result<HopSpec, String> {
        let s = spec.trim();
        let s = s.strip_prefix("ssh://").unwrap_or(s);
        let (user, hostport) = match s.rfind('@') {
            Some(i) => (Some(s[..i].to_string()), &s[i + 1..]),
            None => (None, s),
        };
        let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
            let end = rest
                .find(']')
                .ok_or_else(|| format!("bad jump host '{spec}': missing ']'"))?;
            let host = &rest[..end];
            let after = &rest[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("bad jump host '{spec}'")),
            };
            (host.to_string(), port)
        } else if hostport.matches(':').count() == 1 {
            let (h, p) = hostport.split_once(':').unwrap_or((hostport, ""));
            (h.to_string(), Some(p))
        } else {
            (hostport.to_string(), None)
        };
        let port = match port {
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| format!("bad port in jump host '{spec}'"))?,
            ),
            None => None,
        };
        if host.is_empty() || user.as_deref() == Some("") {
            return Err(format!("bad jump host '{spec}'"));
        }
        Ok(HopSpec { user, host, port })
    }
}

/// The config file to use: the explicit one, else `BELAY_SSH_CONFIG`.
pub fn config_file_from_env(explicit: Option<&Path>) -> Option<PathBuf> {
    explicit.map(Path::to_path_buf).or_else(|| {
        std::env::var_os(CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

/// Resolves `alias` (an ssh_config alias or `[user@]host[:port]`) and its
/// whole ProxyJump chain, without connecting. `config_file` is passed as
/// `ssh -G -F FILE`; when `None`, `BELAY_SSH_CONFIG` is honoured.
pub async fn resolve(alias: &str, config_file: Option<&Path>) -> Result<ResolvedChain, SshError> {
    let config = config_file_from_env(config_file);
    let spec = HopSpec::parse(alias).map_err(|m| SshError::Resolve {
        host: alias.to_string(),
        message: m,
    })?;
    check_command_line_names(&spec).map_err(|m| SshError::Resolve {
        host: alias.to_string(),
        message: m,
    })?;
    let target = resolve_host(&spec, config.as_deref()).await?;
    let jumps = resolve_jumps(&target, config.as_deref(), 0).await?;
    Ok(ResolvedChain {
        alias: alias.to_string(),
        jumps,
        target,
        config_file: config,
    })
}

/// OpenSSH 9.6's `valid_hostname` and `valid_ruser` for a name typed on
/// the command line: `Err` names the character that is refused.
pub(crate) fn check_command_line_names(spec: &HopSpec) -> Result<(), String> {
    const WHY: &str = "OpenSSH refuses it in a name given on the command line, \
                       since ProxyCommand's %h/%n/%r would hand it to a shell";
    let shown = |c: char| -> String {
        match c {
            ' ' => "a space".into(),
            c if c.is_whitespace() || c.is_control() => {
                format!("the control character {}", c.escape_default())
            }
            c => format!("'{c}'"),
        }
    };
    let host = &spec.host;
    if host.starts_with('-') {
        return Err(format!("host name '{host}' starts with '-'; {WHY}"));
    }
    if let Some(c) = host
        .chars()
        .find(|&c| "'`\"$\\;&<>|(){}".contains(c) || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "host name '{}' contains {}; {WHY}",
            host.escape_default(),
            shown(c)
        ));
    }
    if let Some(user) = &spec.user {
        let bad = |why: String| {
            Err(format!(
                "user name '{}' {why}; {WHY}",
                user.escape_default()
            ))
        };
        if user.starts_with('-') {
            return bad("starts with '-'".into());
        }
        let chars: Vec<char> = user.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            if c.is_control() || "'`\";&<>|(){}".contains(c) {
                return bad(format!("contains {}", shown(c)));
            }
            if c.is_whitespace() && chars.get(i + 1) == Some(&'-') {
                return bad("has a '-' after whitespace".into());
            }
            if c == '\\' && i + 1 == chars.len() {
                return bad("ends with '\\'".into());
            }
        }
    }
    Ok(())
}

/// The hops in front of `host`, in connection order.
fn resolve_jumps<'a>(
    host: &'a ResolvedHost,
    config: Option<&'a Path>,
    depth: usize,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Vec<ResolvedHost>, SshError>> + Send + 'a>> {
    Box::pin(async move {
        // ProxyCommand (if set) wins and means "no jumps".
        if host.proxy_command.is_some() {
            return Ok(Vec::new());
        }
        let Some(pj) = &host.proxy_jump else {
            return Ok(Vec::new());
        };
        let specs: Vec<&str> = pj
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if depth + specs.len() > MAX_HOPS {
            return Err(SshError::Resolve {
                host: host.alias.clone(),
                message: format!("ProxyJump chain longer than {MAX_HOPS} hops (a loop?)"),
            });
        }
        let mut out = Vec::new();
        for (i, s) in specs.iter().enumerate() {
            let spec = HopSpec::parse(s).map_err(|m| SshError::Resolve {
                host: host.alias.clone(),
                message: m,
            })?;
            let mut hop = resolve_host(&spec, config).await?;
            if i == 0 {
                // The first hop is connected like `ssh HOP`: its own
                // ProxyJump / ProxyCommand apply.
                let before = resolve_jumps(&hop, config, depth + specs.len()).await?;
                out.extend(before);
            } else {
                // Later hops are reached with `-J previous`, which overrides
                // their own ProxyJump and ProxyCommand.
                hop.proxy_jump = None;
                hop.proxy_command = None;
            }
            out.push(hop);
        }
        Ok(out)
    })
}

/// How long one `ssh -G` answer is reused within this process. One
/// command checks a name before it records anything and then connects
/// (and a chain names its hops again): without this, `belay run HOST` ran
/// `ssh -G` three times per hop. An answer is reused only while the config
/// files `ssh -G` reads first are byte for byte the same (see
/// [`config_fingerprint`]); a file they Include is re-read after this
/// long at most.
const RESOLVE_REUSE: Duration = Duration::from_secs(5);

/// The hop, the `-F` file, and what the config files said.
type ResolveKey = (HopSpec, Option<PathBuf>, u64);

fn recent_answers() -> &'static Mutex<HashMap<ResolveKey, (Instant, ResolvedHost)>> {
    static ANSWERS: OnceLock<Mutex<HashMap<ResolveKey, (Instant, ResolvedHost)>>> = OnceLock::new();
    ANSWERS.get_or_init(Default::default)
}

/// A hash of the config files `ssh -G` starts from (`-F FILE`, else the
/// user's and the system's): an edit changes it at once.
fn config_fingerprint(config: Option<&Path>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let files: Vec<PathBuf> = match config {
        Some(f) => vec![f.to_path_buf()],
        None => vec![
            crate::tokens::home_dir().join(".ssh/config"),
            PathBuf::from("/etc/ssh/ssh_config"),
        ],
    };
    for f in files {
        std::fs::read(&f).ok().hash(&mut h);
    }
    h.finish()
}

/// One host spec's parameters: `ssh -G`'s answer, reused for
/// [`RESOLVE_REUSE`] within this process while the config is unchanged
/// (failures are never reused).
pub(crate) async fn resolve_host(
    spec: &HopSpec,
    config: Option<&Path>,
) -> Result<ResolvedHost, SshError> {
    let key = (
        spec.clone(),
        config.map(Path::to_path_buf),
        config_fingerprint(config),
    );
    if let Some((at, host)) = recent_answers()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        && at.elapsed() < RESOLVE_REUSE
    {
        return Ok(host.clone());
    }
    let host = run_ssh_g(spec, config).await?;
    recent_answers()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, (Instant::now(), host.clone()));
    Ok(host)
}

/// Runs `ssh -G` for one host spec and parses the result.
async fn run_ssh_g(spec: &HopSpec, config: Option<&Path>) -> Result<ResolvedHost, SshError> {
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.arg("-G");
    if let Some(f) = config {
        cmd.arg("-F").arg(f);
    }
    if let Some(u) = &spec.user {
        cmd.arg("-l").arg(u);
    }
    if let Some(p) = spec.port {
        cmd.arg("-p").arg(p.to_string());
    }
    // `--` keeps a host starting with '-' from being read as an option.
    cmd.arg("--").arg(&spec.host);
    cmd.stdin(std::process::Stdio::null());
    cmd.kill_on_drop(true);
    let started = std::time::Instant::now();
    let out = match tokio::time::timeout(RESOLVE_DEADLINE, cmd.output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            return Err(SshError::Resolve {
                host: spec.host.clone(),
                message: format!("cannot run `ssh -G` (is OpenSSH's client installed?): {e}"),
            });
        }
        Err(_) => {
            return Err(SshError::Resolve {
                host: spec.host.clone(),
                message: format!("`ssh -G` did not finish within {RESOLVE_DEADLINE:?}"),
            });
        }
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(SshError::Resolve {
            host: spec.host.clone(),
            message: if stderr.is_empty() {
                format!("`ssh -G` exited with {}", out.status)
            } else {
                stderr
            },
        });
    }
    let mut host = parse_ssh_g(&spec.host, &String::from_utf8_lossy(&out.stdout)).map_err(|m| {
        SshError::Resolve {
            host: spec.host.clone(),
            message: m,
        }
    })?;
    host.spec = spec.clone();
    tracing::info!(
        hop = %spec.host,
        target = %host.display_target(),
        proxy_jump = host.proxy_jump.as_deref().unwrap_or("none"),
        proxy_command = host.proxy_command.is_some(),
        identity_files = host.identity_files.len(),
        batch_mode = host.batch_mode,
        elapsed = ?started.elapsed(),
        "resolved with ssh -G"
    );
    Ok(host)
}

fn parse_bool(v: Option<&str>) -> bool {
    matches!(v, Some("yes" | "true"))
}

/// Parses `ssh -G` output into a [`ResolvedHost`] (tokens expanded).
pub(crate) fn parse_ssh_g(alias: &str, text: &str) -> Result<ResolvedHost, String> {
    let mut raw: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        raw.entry(k.to_ascii_lowercase())
            .or_default()
            .push(v.trim().to_string());
    }
    let one = |k: &str| raw.get(k).and_then(|v| v.first()).map(String::as_str);
    let all = |k: &str| raw.get(k).cloned().unwrap_or_default();
    let words = |k: &str| -> Vec<String> {
        all(k)
            .iter()
            .flat_map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect()
    };
    let hostname = one("hostname").unwrap_or(alias).to_string();
    let user = one("user").ok_or("ssh -G printed no user")?.to_string();
    let port: u16 = one("port")
        .unwrap_or("22")
        .parse()
        .map_err(|_| "ssh -G printed a bad port".to_string())?;
    let host_key_alias = one("hostkeyalias").map(str::to_string);
    let ctx = TokenContext {
        hostname: hostname.clone(),
        original: alias.to_string(),
        port,
        remote_user: user.clone(),
        key_alias: host_key_alias.clone().unwrap_or_else(|| alias.to_string()),
    };
    let paths = |vals: Vec<String>| -> Result<Vec<PathBuf>, String> {
        vals.iter().map(|v| expand_path(v, &ctx)).collect()
    };
    let none_or = |v: Option<&str>| {
        v.filter(|s| !s.eq_ignore_ascii_case("none"))
            .map(str::to_string)
    };
    let identity_agent = match one("identityagent") {
        None => IdentityAgent::Environment,
        Some(v) if v.eq_ignore_ascii_case("none") => IdentityAgent::Disabled,
        Some("SSH_AUTH_SOCK") => IdentityAgent::Environment,
        Some(v) if v.starts_with('$') => match std::env::var_os(&v[1..]) {
            Some(p) => IdentityAgent::Socket(PathBuf::from(p)),
            None => IdentityAgent::Disabled,
        },
        Some(v) => IdentityAgent::Socket(expand_path(v, &ctx)?),
    };
    let proxy_command = match none_or(one("proxycommand")) {
        Some(pc) => Some(expand_percent(&pc, &ctx)?),
        None => None,
    };
    let secs = |k: &str| -> Option<Duration> {
        one(k)
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&n| n > 0)
            .map(Duration::from_secs)
    };
    let strict = match one("stricthostkeychecking").unwrap_or("ask") {
        "yes" | "true" => StrictHostKeyChecking::Yes,
        "no" | "false" | "off" => StrictHostKeyChecking::No,
        "accept-new" => StrictHostKeyChecking::AcceptNew,
        _ => StrictHostKeyChecking::Ask,
    };
    let list = |k: &str| -> Vec<String> {
        one(k)
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    };
    Ok(ResolvedHost {
        alias: alias.to_string(),
        spec: HopSpec {
            user: None,
            host: alias.to_string(),
            port: None,
        },
        identity_files: paths(all("identityfile"))?,
        certificate_files: paths(all("certificatefile"))?,
        identities_only: parse_bool(one("identitiesonly")),
        identity_agent,
        proxy_jump: none_or(one("proxyjump")),
        proxy_command,
        user_known_hosts_files: paths(words("userknownhostsfile"))?,
        global_known_hosts_files: paths(words("globalknownhostsfile"))?,
        revoked_host_keys: match crate::revoked_keys::configured(one("revokedhostkeys")) {
            Some(p) => Some(expand_path(&p.to_string_lossy(), &ctx)?),
            None => None,
        },
        strict_host_key_checking: strict,
        server_alive_interval: secs("serveraliveinterval"),
        server_alive_count_max: one("serveralivecountmax")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3),
        connect_timeout: secs("connecttimeout"),
        batch_mode: parse_bool(one("batchmode")),
        kbd_interactive_authentication: one("kbdinteractiveauthentication") != Some("no"),
        host_key_algorithms: list("hostkeyalgorithms"),
        pubkey_accepted_algorithms: list("pubkeyacceptedalgorithms"),
        host_key_alias,
        hostname,
        user,
        port,
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_specs() {
        assert_eq!(
            HopSpec::parse("iam@ela.example:2222").unwrap(),
            HopSpec {
                user: Some("iam".into()),
                host: "ela.example".into(),
                port: Some(2222)
            }
        );
        assert_eq!(HopSpec::parse("ela").unwrap().host, "ela");
        assert_eq!(HopSpec::parse("ssh://[::1]:22").unwrap().host, "::1");
        assert_eq!(HopSpec::parse("fe80::1").unwrap().port, None);
        assert!(HopSpec::parse("h:x").is_err());
        assert!(HopSpec::parse("@h").is_err());
    }

    #[test]
    fn command_line_names_are_checked_as_openssh_9_6_does() {
        let ok = |s: &str| check_command_line_names(&HopSpec::parse(s).unwrap());
        assert!(ok("iam@ela.example:2222").is_ok());
        assert!(ok("node_7.cluster").is_ok());
        for bad in [
            "a;b",
            "a$(id)",
            "a`id`",
            "a|b",
            "-oProxyCommand=x",
            "a b",
            "x'y",
        ] {
            let e = ok(bad).expect_err(bad);
            assert!(e.contains("host name"), "{bad}: {e}");
        }
        assert!(
            ok("a;b@host")
                .unwrap_err()
                .contains("user name 'a;b' contains ';'")
        );
        assert!(ok("a$b@host").is_ok(), "OpenSSH allows $ in a user name");
        assert!(ok("a\\@host").unwrap_err().contains("ends with"));
    }

    #[test]
    fn parses_ssh_g() {
        let text = "host alps\nuser iam\nhostname daint.example\nport 22\n\
                    identityfile ~/.ssh/k1\nidentityfile ~/.ssh/%h.key\nidentitiesonly yes\n\
                    proxyjump ela.example\nserveraliveinterval 0\nserveralivecountmax 3\n\
                    connecttimeout none\nstricthostkeychecking true\n\
                    userknownhostsfile ~/.ssh/known_hosts ~/.ssh/known_hosts2\n\
                    identityagent none\n";
        let h = parse_ssh_g("alps", text).unwrap();
        assert_eq!(h.hostname, "daint.example");
        assert!(h.identity_files[1].ends_with(".ssh/daint.example.key"));
        assert!(h.identities_only);
        assert_eq!(h.proxy_jump.as_deref(), Some("ela.example"));
        assert_eq!(h.server_alive_interval, None);
        assert_eq!(h.connect_timeout, None);
        assert_eq!(h.strict_host_key_checking, StrictHostKeyChecking::Yes);
        assert_eq!(h.user_known_hosts_files.len(), 2);
        assert_eq!(h.identity_agent, IdentityAgent::Disabled);
        assert_eq!(h.known_hosts_name(), "daint.example");
    }
}
