//! `belay logs`: print a job's stdout (or stderr) from the start; with -f,
//! keep printing until the job ends.

use std::io::Write;

use anyhow::Result;

use super::{Ctx, finish, warn_problems};
use crate::cli::LogsArgs;
use crate::follow::{self, Outcome, Streams};

pub fn logs(ctx: &Ctx, a: LogsArgs) -> Result<u8> {
    let mut engine = ctx.existing_engine(&a.job)?;
    let (job, problems) = engine.job(&a.job)?;
    warn_problems(&problems);
    let streams = Streams {
        stdout: !a.stderr,
        stderr: a.stderr,
    };
    if a.follow {
        return Ok(match follow::follow(&mut engine, job, streams)? {
            // logs -f reports how the job ended but is not the job.
            Outcome::Ended(_) => 0,
            detached => finish(detached),
        });
    }
    // Everything there is now, in bounded chunks.
    let (mut out_off, mut err_off) = if a.stderr { (1 << 62, 0) } else { (0, 1 << 62) };
    loop {
        let chunk = engine.read_output(&job, out_off, err_off, false)?;
        if chunk.stdout.is_empty() && chunk.stderr.is_empty() {
            return Ok(0);
        }
        let data = if a.stderr {
            &chunk.stderr
        } else {
            &chunk.stdout
        };
        let mut o = std::io::stdout().lock();
        o.write_all(data)?;
        o.flush()?;
        out_off += chunk.stdout.len() as u64;
        err_off += chunk.stderr.len() as u64;
    }
}
