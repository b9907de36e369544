//! `belay logs`: print a job's stdout (or stderr) from the start; with -f,
//! keep printing until the job ends.

use anyhow::Result;

use super::{Ctx, finish, warn_problems};
use crate::cli::LogsArgs;
use crate::follow::{self, Outcome, Streams};

pub fn logs(ctx: &Ctx, a: LogsArgs) -> Result<u8> {
    let streams = Streams {
        stdout: !a.stderr,
        stderr: a.stderr,
    };
    if let Some(client) = ctx.daemon(ctx.home.store_exists()) {
        let (job, _, problems) = crate::daemon::job(client, &a.job)?;
        warn_problems(&problems);
        crate::secrets::remember_from_env(&job.secrets);
        if a.follow {
            return Ok(match crate::daemon::follow(client, job, streams)? {
                Outcome::Ended(_) => 0,
                detached => finish(detached),
            });
        }
        crate::daemon::print_log(client, &job.id, a.stderr)?;
        return Ok(0);
    }
    let mut engine = ctx.existing_engine(&a.job)?;
    let (job, problems) = engine.job(&a.job)?;
    warn_problems(&problems);
    crate::secrets::remember_from_env(&job.secrets);
    if a.follow {
        return Ok(match follow::follow(&mut engine, job, streams)? {
            // logs -f reports how the job ended but is not the job.
            Outcome::Ended(_) => 0,
            detached => finish(detached),
        });
    }
    // Everything there is now, in bounded chunks: up to the size seen by
    // the first read, so a job that writes fast cannot keep us here.
    let mut offset = 0u64;
    let mut end: Option<u64> = None;
    loop {
        let (out_off, err_off) = if a.stderr {
            (follow::SKIP, offset)
        } else {
            (offset, follow::SKIP)
        };
        let chunk = engine.read_output(&job, out_off, err_off, false)?;
        let (data, size) = if a.stderr {
            (&chunk.stderr, chunk.err_size)
        } else {
            (&chunk.stdout, chunk.out_size)
        };
        let end = *end.get_or_insert(size);
        let take = data.len().min(end.saturating_sub(offset) as usize);
        if take == 0 {
            crate::secrets::flush_held(0, &mut std::io::stdout().lock())?;
            return Ok(0);
        }
        crate::secrets::write_masked(0, &mut std::io::stdout().lock(), &data[..take])?;
        offset += take as u64;
    }
}
