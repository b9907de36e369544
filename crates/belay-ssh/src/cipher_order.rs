//! Which ciphers a connection offers, and in what order.
//!
//! The user's `Ciphers` line (as `ssh -G` prints it) is followed as given.
//! Only when it is OpenSSH's own default list — the user chose nothing —
//! does belay move AES-GCM ahead of ChaCha20-Poly1305 on a CPU with AES
//! instructions. OpenSSH puts ChaCha20 first because it is fast and
//! constant-time in software; with AES-NI (or ARMv8 AES) AES-GCM is both
//! too, and in belay's crypto (ring) it costs far less: ring's Poly1305 is
//! scalar C, and it took 38 % of the daemon's CPU while forwarding (perf,
//! bench/forward.py). Both ciphers are in OpenSSH's default lists on
//! either side, so the reordering never changes what a server accepts.
//! Go's x/crypto/ssh orders its defaults the same way.

use russh::cipher::Name;

/// OpenSSH's default client cipher list (6.9 to today), as `ssh -G`
/// prints it when the config sets none.
const OPENSSH_DEFAULT: &str = "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,\
                               aes128-gcm@openssh.com,aes256-gcm@openssh.com";

/// AES-GCM first, for a default list on AES hardware.
const AES_GCM: [&str; 2] = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"];

/// The ciphers to offer for `list` (the `ciphers` value of `ssh -G`),
/// limited to those russh implements; empty when none is.
pub fn preferred(list: &str, aes_hardware: bool) -> Vec<Name> {
    let mut names: Vec<&str> = list.split(',').map(str::trim).collect();
    if aes_hardware && list.trim() == OPENSSH_DEFAULT {
        names.retain(|n| !AES_GCM.contains(n));
        for (i, n) in AES_GCM.iter().enumerate() {
            names.insert(i, n);
        }
    }
    names
        .into_iter()
        .filter_map(|n| Name::try_from(n).ok())
        .collect()
}

/// Whether this CPU has the instructions that make AES-GCM fast and
/// constant-time (AES and carry-less multiply).
pub fn aes_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[Name]) -> Vec<&str> {
        v.iter().map(|n| n.as_ref()).collect()
    }

    #[test]
    fn the_default_list_puts_aes_gcm_first_on_aes_hardware() {
        let v = preferred(OPENSSH_DEFAULT, true);
        assert_eq!(
            names(&v),
            [
                "aes128-gcm@openssh.com",
                "aes256-gcm@openssh.com",
                "chacha20-poly1305@openssh.com",
                "aes128-ctr",
                "aes192-ctr",
                "aes256-ctr",
            ]
        );
    }

    #[test]
    fn the_default_list_is_kept_without_aes_hardware() {
        let v = preferred(OPENSSH_DEFAULT, false);
        assert_eq!(names(&v)[0], "chacha20-poly1305@openssh.com");
        assert_eq!(v.len(), 6);
    }

    #[test]
    fn a_list_the_user_chose_is_followed_as_given() {
        let chosen = "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com";
        assert_eq!(
            names(&preferred(chosen, true)),
            ["chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com"]
        );
        // The default list with one cipher removed is a choice too.
        let fewer = OPENSSH_DEFAULT.replace(",aes192-ctr", "");
        assert_eq!(
            names(&preferred(&fewer, true))[0],
            "chacha20-poly1305@openssh.com"
        );
    }

    #[test]
    fn ciphers_russh_lacks_are_dropped() {
        assert_eq!(
            names(&preferred("rijndael-cbc@lysator.liu.se,aes128-ctr", true)),
            ["aes128-ctr"]
        );
        assert!(preferred("rijndael-cbc@lysator.liu.se", true).is_empty());
    }
}
