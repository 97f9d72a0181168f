//! The key format: `<prefix>_<body>`, where the body is base58 (Bitcoin alphabet) of random
//! bytes followed by a 6-character base58 CRC32 checksum of everything before it.
//!
//! The checksum lets a scanner tell a real Keywarden key from random text offline: a candidate
//! that matches [`SCANNER_REGEX`] is a key only if [`has_valid_checksum`] holds, which a random
//! string does with probability 2^-32. CRC32 detects every error burst of 32 bits or fewer, so
//! any single changed character is always caught.

use std::fmt;

use crate::random;
use crate::secret::PlaintextKey;

/// The Bitcoin base58 alphabet.
const BASE58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
/// Characters of the checksum; 58^6 > 2^32, so every CRC32 fits.
pub const CHECKSUM_LEN: usize = 6;
/// Characters of the body shown in `start`.
const START_BODY_CHARS: usize = 4;

/// A regular expression (RE2/PCRE/Rust `regex` syntax) matching every key this server
/// issues, for secret scanners. A match is a key only if its checksum verifies.
///
/// The body is at least 27 characters: 16 random bytes give at least 21 base58 characters
/// (leading zero bytes encode as `1`), plus the checksum; 255 bytes give at most 349.
pub const SCANNER_REGEX: &str = r"\b(?:[A-Za-z0-9_]{1,16}_)?[1-9A-HJ-NP-Za-km-z]{27,355}\b";

/// Why a value cannot be a key prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("must be 1 to 16 characters")]
    Length,
    #[error("may contain only letters, digits and underscores")]
    InvalidCharacter,
}

/// What comes before the last `_` of a key: 1..16 of `[a-zA-Z0-9_]`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyPrefix(String);

impl KeyPrefix {
    pub fn parse(s: &str) -> Result<Self, PrefixError> {
        if s.is_empty() || s.len() > 16 {
            return Err(PrefixError::Length);
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(PrefixError::InvalidCharacter);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How many random bytes a key carries: 16..=255.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteLength(u8);

impl ByteLength {
    pub const DEFAULT: Self = Self(16);
    pub const MIN: i64 = 16;
    pub const MAX: i64 = 255;

    pub fn new(n: i64) -> Option<Self> {
        if (Self::MIN..=Self::MAX).contains(&n) {
            u8::try_from(n).ok().map(Self)
        } else {
            None
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// A key just generated: its plaintext (to be returned once) and its display start.
#[derive(Debug)]
pub struct IssuedKey {
    pub plaintext: PlaintextKey,
    pub start: String,
}

/// Generates a key with `len` bytes from the OS CSPRNG.
pub fn generate(prefix: Option<&KeyPrefix>, len: ByteLength) -> IssuedKey {
    let mut bytes = vec![0u8; usize::from(len.get())];
    random::fill(&mut bytes);
    compose(prefix, &bytes)
}

/// Builds the key for given random bytes. Deterministic, so the format can be tested.
pub fn compose(prefix: Option<&KeyPrefix>, random_bytes: &[u8]) -> IssuedKey {
    let encoded = bs58::encode(random_bytes).into_string();
    let mut key = String::with_capacity(17 + encoded.len() + CHECKSUM_LEN);
    if let Some(prefix) = prefix {
        key.push_str(prefix.as_str());
        key.push('_');
    }
    let body_start = key.len();
    key.push_str(&encoded);
    let checksum = checksum_chars(crc32fast::hash(key.as_bytes()));
    key.push_str(&checksum);
    let start_len = body_start + START_BODY_CHARS.min(encoded.len());
    let start = key[..start_len].to_owned();
    IssuedKey {
        plaintext: PlaintextKey::new(key),
        start,
    }
}

/// The display start of a key: the prefix, `_` and the first four body characters, or the
/// first four characters when there is no prefix.
pub fn start_of(key: &str) -> String {
    let body_start = key.rfind('_').map_or(0, |i| i + 1);
    let end = key[body_start..]
        .char_indices()
        .nth(START_BODY_CHARS)
        .map_or(key.len(), |(i, _)| body_start + i);
    key[..end].to_owned()
}

/// The parts of a well-formed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyParts<'a> {
    pub prefix: Option<&'a str>,
    pub random: &'a str,
    pub checksum: &'a str,
}

/// Splits `key` into prefix, random part and checksum if it has the shape of a key, without
/// checking the checksum.
pub fn split(key: &str) -> Option<KeyParts<'_>> {
    let (prefix, body) = match key.rfind('_') {
        Some(i) => (Some(&key[..i]), &key[i + 1..]),
        None => (None, key),
    };
    if let Some(p) = prefix {
        KeyPrefix::parse(p).ok()?;
    }
    if body.len() <= CHECKSUM_LEN || !body.bytes().all(|b| BASE58.contains(&b)) {
        return None;
    }
    let (random, checksum) = body.split_at(body.len() - CHECKSUM_LEN);
    Some(KeyParts {
        prefix,
        random,
        checksum,
    })
}

/// Whether `key` is a key this format could have produced: right shape and right checksum.
pub fn has_valid_checksum(key: &str) -> bool {
    let Some(parts) = split(key) else {
        return false;
    };
    let covered = &key[..key.len() - CHECKSUM_LEN];
    checksum_chars(crc32fast::hash(covered.as_bytes())) == parts.checksum
}

/// A CRC32 as a big-endian base58 number left-padded with `1` (base58's zero) to 6 characters.
fn checksum_chars(crc: u32) -> String {
    let mut digits = [BASE58[0]; CHECKSUM_LEN];
    let mut n = crc;
    for slot in digits.iter_mut().rev() {
        *slot = BASE58[(n % 58) as usize];
        n /= 58;
    }
    digits.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn checksum_is_padded_big_endian_base58() {
        assert_eq!(checksum_chars(0), "111111");
        assert_eq!(checksum_chars(57), "11111z");
        assert_eq!(checksum_chars(58), "111121");
        assert_eq!(checksum_chars(u32::MAX), "7YXq9G");
    }

    #[test]
    fn a_key_with_prefix_has_the_documented_shape() {
        let prefix = KeyPrefix::parse("sk_live").unwrap();
        let issued = compose(Some(&prefix), &[7u8; 16]);
        let key = issued.plaintext.expose();
        assert!(key.starts_with("sk_live_"));
        let body = &key["sk_live_".len()..];
        assert_eq!(
            &body[..body.len() - 6],
            bs58::encode([7u8; 16]).into_string()
        );
        let expected = checksum_chars(crc32fast::hash(&key.as_bytes()[..key.len() - 6]));
        assert_eq!(&key[key.len() - 6..], expected);
        assert_eq!(issued.start, format!("sk_live_{}", &body[..4]));
        assert_eq!(start_of(key), issued.start);
    }

    #[test]
    fn a_key_without_prefix_is_the_body_alone() {
        let issued = compose(None, &[200u8; 32]);
        let key = issued.plaintext.expose();
        assert!(!key.contains('_'));
        assert_eq!(issued.start, &key[..4]);
        assert!(has_valid_checksum(key));
    }

    #[test]
    fn generated_keys_are_random_and_valid() {
        let a = generate(None, ByteLength::DEFAULT);
        let b = generate(None, ByteLength::DEFAULT);
        assert_ne!(a.plaintext, b.plaintext);
        assert!(has_valid_checksum(a.plaintext.expose()));
    }

    #[test]
    fn scanner_regex_matches_minimum_and_maximum_keys() {
        // The regex is documented for external scanners; check its bounds against real keys.
        let shortest = compose(None, &[0u8; 16]);
        assert!(shortest.plaintext.expose().len() >= 16 + CHECKSUM_LEN);
        let body_len = |k: &IssuedKey| {
            let key = k.plaintext.expose();
            key.len() - key.rfind('_').map_or(0, |i| i + 1)
        };
        assert!(body_len(&compose(None, &[1u8; 16])) >= 27);
        assert!(body_len(&compose(None, &[255u8; 255])) <= 355);
    }

    #[test]
    fn the_documented_example_verifies() {
        // docs/keys.md
        assert!(has_valid_checksum("sk_live_CN2pTu9mN7xqZ8fK3kX8vQ1w16ZjeL"));
        assert!(!has_valid_checksum(
            "sk_live_CN2pTu9mN7xqZ8fK3kX8vQ1x16ZjeL"
        ));
    }

    #[test]
    fn wrong_shapes_are_not_keys() {
        assert!(!has_valid_checksum(""));
        assert!(!has_valid_checksum("sk_"));
        assert!(!has_valid_checksum("sk_0OIl0OIl0OIl0OIl0OIl0OIl"));
        assert!(!has_valid_checksum(
            "this-prefix-is-far-too-long_abcdefghijkmnopqrs"
        ));
    }

    #[test]
    fn byte_length_bounds() {
        assert_eq!(ByteLength::new(15), None);
        assert_eq!(ByteLength::new(16).map(ByteLength::get), Some(16));
        assert_eq!(ByteLength::new(255).map(ByteLength::get), Some(255));
        assert_eq!(ByteLength::new(256), None);
    }

    fn prefix_strategy() -> impl Strategy<Value = Option<KeyPrefix>> {
        proptest::option::of("[a-zA-Z0-9_]{1,16}".prop_map(|s| KeyPrefix::parse(&s).unwrap()))
    }

    proptest! {
        #[test]
        fn generated_keys_parse_and_verify(
            prefix in prefix_strategy(),
            bytes in proptest::collection::vec(any::<u8>(), 16..=255),
        ) {
            let issued = compose(prefix.as_ref(), &bytes);
            let key = issued.plaintext.expose();
            prop_assert!(has_valid_checksum(key));
            let parts = split(key).expect("a generated key splits");
            prop_assert_eq!(parts.prefix, prefix.as_ref().map(KeyPrefix::as_str));
            prop_assert_eq!(bs58::decode(parts.random).into_vec().unwrap(), bytes);
            prop_assert!(key.starts_with(&issued.start));
            prop_assert_eq!(start_of(key), issued.start);
        }

        #[test]
        fn any_one_character_change_is_detected(
            prefix in prefix_strategy(),
            bytes in proptest::collection::vec(any::<u8>(), 16..=64),
            position in any::<prop::sample::Index>(),
            replacement in proptest::char::range('!', '~'),
        ) {
            let issued = compose(prefix.as_ref(), &bytes);
            let key = issued.plaintext.expose();
            let i = position.index(key.len());
            prop_assume!(key.as_bytes()[i] != replacement as u8);
            let mut changed = key.to_owned();
            changed.replace_range(i..=i, &replacement.to_string());
            prop_assert!(!has_valid_checksum(&changed), "{} -> {}", key, changed);
        }
    }
}
