//! The exec movers: copies through the host's shell (`/bin/sh`, coreutils,
//! GNU find and tar) over [`crate::transport::Transport::open_stream`].
//! Small files travel as one tar stream per batch, big files one by one;
//! the host sums what it received. Works on `local` and on hosts without
//! an SFTP subsystem. The movers ([`push`], [`pull`]) carry bytes and
//! check answers; the shell they send is built in [`scripts`], and a
//! pulled batch's archive is read in [`archive`].

mod archive;
pub(super) mod pull;
pub(super) mod push;
mod scripts;

/// Runs `script` on the host; a non-zero status is the host's failure,
/// told as `what` (built only then) with the first line of its stderr.
fn run_checked(
    t: &dyn crate::transport::Transport,
    script: &str,
    what: impl FnOnce() -> String,
) -> crate::error::Result<crate::transport::ScriptOutput> {
    let out = t.run_script(script)?;
    if out.status != 0 {
        return Err(super::remote_failure(t.host(), &what(), &out.stderr));
    }
    Ok(out)
}
