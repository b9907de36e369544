//! belay-ssh: the SSH client engine. It knows hosts, keys and channels, and
//! nothing about jobs. Every connection parameter comes from the user's
//! OpenSSH configuration as resolved by `ssh -G`.
