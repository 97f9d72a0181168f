//! Finding Keywarden keys in text (`keywarden scan`), offline and with almost no false
//! positives: a candidate counts only if its CRC32 checksum verifies.
//!
//! Candidates are the maximal runs of `[A-Za-z0-9_]` (so a key is never found inside a longer
//! word). In a run, the body is what follows the last `_`: 27 to 355 base58 characters, as
//! [`key_format::SCANNER_REGEX`] states. The prefix is not delimited on its left (a key can sit
//! in `API_KEY_sk_live_…`), so every prefix the format allows — none, or 1 to 16 characters
//! ending at that `_` — is tried; the checksum covers the prefix, so at most one fits.

use crate::key_format::{self, CHECKSUM_LEN};

/// Shortest and longest key body (see [`key_format::SCANNER_REGEX`]).
const MIN_BODY: usize = 21 + CHECKSUM_LEN;
const MAX_BODY: usize = 355;
/// Longest prefix the format allows.
const MAX_PREFIX: usize = 16;

/// A key found in text.
#[derive(Clone, PartialEq, Eq)]
pub struct FoundKey<'a> {
    /// Byte offset of the key in the text.
    pub offset: usize,
    pub key: &'a str,
}

impl std::fmt::Debug for FoundKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FoundKey({} at {})", mask(self.key), self.offset)
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Every key in `text` whose checksum verifies, in order.
pub fn find_keys_in(text: &str) -> Vec<FoundKey<'_>> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !is_word(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_word(bytes[i]) {
            i += 1;
        }
        if let Some(key) = key_in_run(text, start, i) {
            found.push(key);
        }
    }
    found
}

/// The key ending at `end` within the word run `text[start..end]`, if any.
fn key_in_run(text: &str, start: usize, end: usize) -> Option<FoundKey<'_>> {
    let run = &text[start..end];
    let body_start = run.rfind('_').map_or(0, |i| i + 1);
    let body_len = run.len() - body_start;
    if !(MIN_BODY..=MAX_BODY).contains(&body_len) {
        return None;
    }
    let body = &run[body_start..];
    // Without a prefix the key is the body alone.
    if key_format::has_valid_checksum(body) {
        return Some(FoundKey {
            offset: start + body_start,
            key: body,
        });
    }
    if body_start == 0 {
        return None;
    }
    let underscore = body_start - 1;
    (underscore.saturating_sub(MAX_PREFIX)..underscore)
        .map(|from| &run[from..])
        .zip(underscore.saturating_sub(MAX_PREFIX)..)
        .find(|(candidate, _)| key_format::has_valid_checksum(candidate))
        .map(|(key, from)| FoundKey {
            offset: start + from,
            key,
        })
}

/// A key as it may be shown: its display start (prefix and four body characters) and `…`.
pub fn mask(key: &str) -> String {
    format!("{}…", key_format::start_of(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_format::{ByteLength, KeyPrefix, compose, generate};

    fn key(prefix: Option<&str>) -> String {
        let prefix = prefix.map(|p| KeyPrefix::parse(p).unwrap());
        generate(prefix.as_ref(), ByteLength::DEFAULT)
            .plaintext
            .expose()
            .to_owned()
    }

    #[test]
    fn finds_keys_with_and_without_prefix_in_context() {
        let a = key(Some("sk_live"));
        let b = key(None);
        let c = key(Some("x"));
        let text = format!("KEY={a}\nother \"{b}\" and API_KEY_{c};");
        let found: Vec<_> = find_keys_in(&text).iter().map(|f| f.key).collect();
        assert_eq!(found, [a.as_str(), b.as_str(), c.as_str()]);
        let first = &find_keys_in(&text)[0];
        assert_eq!(&text[first.offset..first.offset + a.len()], a);
    }

    #[test]
    fn near_misses_are_not_keys() {
        let real = key(Some("sk"));
        let mut broken = real.clone();
        let last = broken.pop().unwrap();
        broken.push(if last == 'a' { 'b' } else { 'a' });
        let lookalike = "sk_0OIl".to_owned() + &real[3..real.len() - 4];
        let text = format!(
            "{broken} {lookalike} {}x {} sk_{}",
            real,
            "1".repeat(40),
            "A".repeat(30)
        );
        assert!(find_keys_in(&text).is_empty(), "{:?}", find_keys_in(&text));
    }

    #[test]
    fn a_long_prefix_run_still_finds_the_key() {
        let k = compose(
            Some(&KeyPrefix::parse("abcdefghijklmnop").unwrap()),
            &[9; 16],
        );
        let key = k.plaintext.expose();
        let text = format!("my_long_variable_{key}");
        assert_eq!(find_keys_in(&text)[0].key, key);
    }

    #[test]
    fn masking_keeps_only_the_start() {
        assert_eq!(mask("sk_live_ABCDEFGHJK"), "sk_live_ABCD…");
        assert_eq!(mask("ABCDEFGHJK"), "ABCD…");
    }
}
