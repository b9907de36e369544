//! `[LOCAL:]REMOTE`, as `belay forward` takes it: REMOTE is a port,
//! `host:port` (as seen from the node) or `/path.sock` (a Unix socket on
//! the node); LOCAL is a port (absent or 0: chosen) or a local socket path.
//! A bad value is bad input that names it.

use std::path::PathBuf;

use belay_ssh::ForwardTarget;

/// Where a forward listens on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalEnd {
    /// A TCP port on 127.0.0.1 (0: the system chooses).
    Port(u16),
    /// A Unix socket path (mode 0600).
    Socket(PathBuf),
}

impl LocalEnd {
    /// Reads a recorded local address back (`127.0.0.1:PORT` or a path).
    pub fn from_recorded(text: &str) -> LocalEnd {
        match text.strip_prefix("127.0.0.1:").and_then(|p| p.parse().ok()) {
            Some(port) => LocalEnd::Port(port),
            None => LocalEnd::Socket(PathBuf::from(text)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardSpec {
    pub local: LocalEnd,
    pub remote: ForwardTarget,
}

impl ForwardSpec {
    pub fn parse(text: &str) -> Result<ForwardSpec, String> {
        let bad = |why: &str| format!("bad forward '{text}': {why}");
        if text.is_empty() {
            return Err(bad("expected [LOCAL:]REMOTE"));
        }
        // `/local.sock:REMOTE` (a local socket), or `/remote.sock` alone.
        if let Some(rest) = text.strip_prefix('/') {
            return match rest.split_once(':') {
                Some((path, remote)) => Ok(ForwardSpec {
                    local: LocalEnd::Socket(PathBuf::from(format!("/{path}"))),
                    remote: ForwardTarget::parse(remote).map_err(|e| bad(&e))?,
                }),
                None => Ok(ForwardSpec {
                    local: LocalEnd::Port(0),
                    remote: ForwardTarget::Unix(text.to_string()),
                }),
            };
        }
        // `LOCALPORT:REMOTE` when what follows the first colon is a whole
        // target (a port, host:port or a path); else the text is REMOTE.
        if let Some((head, rest)) = text.split_once(':')
            && !head.is_empty()
            && head.bytes().all(|b| b.is_ascii_digit())
            && (rest.starts_with('/')
                || rest.contains(':')
                || rest.bytes().all(|b| b.is_ascii_digit()))
        {
            let port = head
                .parse::<u32>()
                .ok()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| bad(&format!("local port '{head}' is not 0-65535")))?;
            return Ok(ForwardSpec {
                local: LocalEnd::Port(port),
                remote: ForwardTarget::parse(rest).map_err(|e| bad(&e))?,
            });
        }
        Ok(ForwardSpec {
            local: LocalEnd::Port(0),
            remote: ForwardTarget::parse(text).map_err(|e| bad(&e))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> ForwardTarget {
        ForwardTarget::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn specs_read_like_ssh_l() {
        let p = |t: &str| ForwardSpec::parse(t).unwrap();
        assert_eq!(p("8888").remote, tcp("localhost", 8888));
        assert_eq!(p("8888").local, LocalEnd::Port(0));
        assert_eq!(p("9000:8888").local, LocalEnd::Port(9000));
        assert_eq!(p("9000:8888").remote, tcp("localhost", 8888));
        assert_eq!(p("0:db:5432").remote, tcp("db", 5432));
        assert_eq!(p("db:5432").local, LocalEnd::Port(0));
        assert_eq!(
            p("9000:/run/app.sock").remote,
            ForwardTarget::Unix("/run/app.sock".into())
        );
        assert_eq!(
            p("/run/app.sock").remote,
            ForwardTarget::Unix("/run/app.sock".into())
        );
        let s = p("/tmp/here.sock:/run/app.sock");
        assert_eq!(s.local, LocalEnd::Socket("/tmp/here.sock".into()));
        assert_eq!(s.remote, ForwardTarget::Unix("/run/app.sock".into()));
    }

    #[test]
    fn bad_specs_name_the_value() {
        for (text, names) in [
            ("70000:80", "70000"),
            ("80000", "80000"),
            ("0", "'0'"),
            ("9000:0", "'0'"),
            ("host:", "host:"),
            ("", "''"),
            ("relative.sock", "relative.sock"),
        ] {
            let e = ForwardSpec::parse(text).unwrap_err();
            assert!(e.contains(names), "{text}: {e}");
        }
    }
}
