//! The agentless remote protocol: what belay leaves on a host and the POSIX
//! sh scripts that read and change it. Nothing runs on the host but `/bin/sh`
//! and coreutils.
//!
//! Each job has a directory `<workroot>/<job-key>/`:
//!
//! ```text
//! spec.json         what was asked (no secret values)
//! run.sh            the wrapper (generated, see `wrapper`)
//! launch.lock       created with noclobber: the single launch guard
//! launched          the scheduler accepted the job (atomic rename)
//! started           pid, session, start ticks, boot id (written by run.sh)
//! heartbeat         touched by run.sh while it lives (batch scheduler only)
//! stdout, stderr    the job's output, append-only
//! cancel-requested  `belay cancel` asked the job to stop
//! exit              exit code and end time (atomic rename): the job is over
//! ```
//!
//! Every script is idempotent: running it twice (after a dropped link, a
//! crashed belay) has the effect of running it once. `launch.lock` makes the
//! launch exactly-once; the `exit` file is the only proof a job ended.

pub mod follow;
pub mod functions;
pub mod report;
pub mod scripts;
pub mod sweep;
pub mod wrapper;

pub use report::{HostReport, JobReport, OutputChunk, RemoteStatus};
