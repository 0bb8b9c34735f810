//! A virtual key's secret: `sk-aigw-` and 43 characters of URL-safe base64 (32 random bytes),
//! made once and shown once. What is kept of it is its SHA-256 ([`SecretHash`]), which is how the
//! directory finds the key, and a hint for people (`sk-aigw-…` and its last four characters).
//!
//! SHA-256 and not a slow password hash: the secret carries 256 bits of randomness, so there is
//! nothing to guess from a leaked hash, and every request hashes the secret it presents, which
//! must cost microseconds (a slow hash would make every wrong key a denial of service).

use std::hash::{Hash, Hasher};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// What every virtual key's secret starts with (so scanners and people can tell it is aigw's).
pub const SECRET_PREFIX: &str = "sk-aigw-";

/// How many characters of a secret a hint shows (its last ones).
const HINT_CHARS: usize = 4;

/// A new secret: the prefix and 32 bytes from the thread's CSPRNG (rand's `ThreadRng`, ChaCha12
/// seeded and periodically reseeded from the operating system), URL-safe base64 without padding.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    let mut secret = String::with_capacity(SECRET_PREFIX.len() + 43);
    secret.push_str(SECRET_PREFIX);
    URL_SAFE_NO_PAD.encode_string(bytes, &mut secret);
    secret
}

/// What admin output and error messages show of a secret: `sk-aigw-…` and its last four
/// characters. For a string a client presented that is not one of ours, `…` and its last four;
/// one too short to spare four shows none of them (its tail could be most of it).
pub fn hint(secret: &str) -> String {
    let prefix = if secret.starts_with(SECRET_PREFIX) {
        SECRET_PREFIX
    } else {
        ""
    };
    let rest = &secret[prefix.len()..];
    let chars = rest.chars().count();
    let tail: String = if chars >= 3 * HINT_CHARS {
        rest.chars().skip(chars - HINT_CHARS).collect()
    } else {
        String::new()
    };
    format!("{prefix}…{tail}")
}

/// The SHA-256 of a secret: what the store keeps and the directory is keyed by.
///
/// Equality is constant-time (a fold of XORs over all 32 bytes, no early exit). Even so, a map
/// lookup by this hash does not leak the secret through timing: whatever the map's probing
/// compares is the *hash* of what the client sent, and learning how many leading bytes of some
/// stored hash it matches tells nothing about a secret that would produce that hash (finding one
/// is a SHA-256 preimage). The constant-time equality keeps the final comparison from being the
/// one place that could be timed.
#[derive(Clone, Copy)]
pub struct SecretHash(pub(crate) [u8; 32]);

impl SecretHash {
    /// The hash of `secret` (any string a client presents).
    pub fn of(secret: &str) -> SecretHash {
        SecretHash(Sha256::digest(secret.as_bytes()).into())
    }

    /// The hash as stored (a 32-byte blob).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A stored hash; `None` if `bytes` is not 32 long.
    pub fn from_slice(bytes: &[u8]) -> Option<SecretHash> {
        bytes.try_into().ok().map(SecretHash)
    }
}

impl PartialEq for SecretHash {
    fn eq(&self, other: &SecretHash) -> bool {
        let difference = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        // Keeps the optimiser from turning the fold back into an early-exit comparison.
        std::hint::black_box(difference) == 0
    }
}

impl Eq for SecretHash {}

impl Hash for SecretHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The map's hasher (SipHash, keyed per process) over the first 16 bytes: SHA-256 output
        // is uniform already, and the rest adds nothing but time.
        state.write(&self.0[..16]);
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not secret, but not useful in logs either: the first bytes are enough to tell apart.
        write!(
            f,
            "SecretHash({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_url_safe() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX));
        let body = &a[SECRET_PREFIX.len()..];
        assert_eq!(body.len(), 43);
        assert!(
            body.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "{a}"
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(body).unwrap().len(), 32);
    }

    #[test]
    fn hints_show_only_the_last_four() {
        let secret = "sk-aigw-0123456789abcdefWXYZ";
        assert_eq!(hint(secret), "sk-aigw-…WXYZ");
        assert_eq!(hint("sk-aigw-short"), "sk-aigw-…");
        assert_eq!(hint("short"), "…");
        assert_eq!(hint("sk-proj-0123456789abcdef"), "…cdef");
        // Characters, not bytes: never a split character.
        assert_eq!(hint("ééééééééééééé€€€€"), "…€€€€");
    }

    #[test]
    fn hashes_are_sha256_and_compare_by_value() {
        // SHA-256("abc"), FIPS 180-2's test vector.
        let abc = SecretHash::of("abc");
        assert_eq!(abc.as_bytes()[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(abc.as_bytes()[28..], [0xf2, 0x00, 0x15, 0xad]);
        assert_eq!(abc, SecretHash::of("abc"));
        assert_ne!(abc, SecretHash::of("abd"));
        let mut last_differs = *abc.as_bytes();
        last_differs[31] ^= 1;
        assert_ne!(abc, SecretHash(last_differs));
        assert_eq!(SecretHash::from_slice(abc.as_bytes()), Some(abc));
        assert_eq!(SecretHash::from_slice(&[0; 31]), None);
    }
}
