//! The SFTP movers: copies for hosts that refuse commands but serve SFTP
//! (`ForceCommand internal-sftp`, storage boxes). The same plan and the
//! same local landing as the exec movers; only the carrying differs.
//! This is the one place in belay-core that sees russh-sftp's types
//! (through `belay_ssh::Sftp`); [`files`] turns them into core ones.

pub(crate) mod files;
pub(crate) mod pull;
pub(crate) mod push;
