//! The stored form of a key: SHA-256 of the whole key string.
//!
//! Stored and exchanged as standard base64 with padding (44 characters), the form Unkey uses,
//! so hashes exported from Unkey import unchanged through `keys.migrateKeys`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// SHA-256 of a key's UTF-8 bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyDigest([u8; 32]);

/// Hashes only [`KeyDigest::index`]: a digest is already uniformly distributed, so eight bytes
/// of it are as good a hash as any, and hash maps keyed by digests skip rehashing 32 bytes.
impl std::hash::Hash for KeyDigest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.index());
    }
}

/// Why a string is not a SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a SHA-256 digest in standard base64 (44 characters) or hex (64 characters)")]
pub struct DigestFormatError;

impl KeyDigest {
    /// Hashes a presented key.
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses the stored form, standard base64.
    pub fn from_base64(s: &str) -> Result<Self, DigestFormatError> {
        let bytes = STANDARD.decode(s).map_err(|_| DigestFormatError)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| DigestFormatError)?;
        Ok(Self(bytes))
    }

    /// Parses a digest given either as standard base64 or as hex, the two ways other systems
    /// export SHA-256 hashes.
    pub fn from_base64_or_hex(s: &str) -> Result<Self, DigestFormatError> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut bytes = [0u8; 32];
            for (i, pair) in s.as_bytes().chunks_exact(2).enumerate() {
                let hex = std::str::from_utf8(pair).map_err(|_| DigestFormatError)?;
                bytes[i] = u8::from_str_radix(hex, 16).map_err(|_| DigestFormatError)?;
            }
            return Ok(Self(bytes));
        }
        Self::from_base64(s)
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The first eight bytes as a number: well distributed, so it indexes in-memory sets of
    /// known keys without holding whole digests.
    pub fn index(&self) -> u64 {
        let mut head = [0u8; 8];
        head.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(head)
    }

    /// Equality in constant time, for comparisons that stand in for comparing secrets.
    pub fn ct_eq(&self, other: &Self) -> bool {
        // Compared as four words rather than 32 bytes: `subtle` keeps the optimiser from
        // short-cutting each element it compares, so words are as constant-time as bytes and
        // an eighth of the work (this runs on every authenticated request).
        self.words().ct_eq(&other.words()).into()
    }

    fn words(&self) -> [u64; 4] {
        let (chunks, _) = self.0.as_chunks::<8>();
        let mut words = [0u64; 4];
        for (word, chunk) in words.iter_mut().zip(chunks) {
            *word = u64::from_ne_bytes(*chunk);
        }
        words
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({})", self.to_base64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_sha256_base64() {
        // printf 'hello' | sha256sum | xxd -r -p | base64
        let d = KeyDigest::of("hello");
        assert_eq!(
            d.to_base64(),
            "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
        );
        assert_eq!(KeyDigest::from_base64(&d.to_base64()), Ok(d));
    }

    #[test]
    fn hex_and_base64_forms_parse_to_the_same_digest() {
        let hex = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert_eq!(
            KeyDigest::from_base64_or_hex(hex),
            Ok(KeyDigest::of("hello"))
        );
        assert_eq!(
            KeyDigest::from_base64_or_hex("LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="),
            Ok(KeyDigest::of("hello"))
        );
    }

    #[test]
    fn malformed_digests_are_rejected() {
        assert_eq!(KeyDigest::from_base64("abc"), Err(DigestFormatError));
        assert_eq!(
            KeyDigest::from_base64_or_hex(&"z".repeat(64)),
            Err(DigestFormatError)
        );
        // valid base64 of the wrong length
        assert_eq!(KeyDigest::from_base64("aGVsbG8="), Err(DigestFormatError));
    }

    #[test]
    fn constant_time_equality_agrees_with_equality() {
        let a = KeyDigest::of("a");
        let b = KeyDigest::of("b");
        assert!(a.ct_eq(&a));
        assert!(!a.ct_eq(&b));
        // A difference in any one byte, whichever word it falls in, is seen.
        for i in 0..32 {
            let mut bytes = *a.as_bytes();
            bytes[i] ^= 0x80;
            assert!(!a.ct_eq(&KeyDigest(bytes)), "byte {i}");
        }
    }
}
