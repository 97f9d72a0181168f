//! Secrets in memory: key plaintexts that must never reach a log.

use std::fmt;

use crate::digest::KeyDigest;

/// The plaintext of a key or root key. Its `Debug` and `Display` never show the value; read it
/// with [`PlaintextKey::expose`] only where it must leave the process (the one response that
/// returns a new key, or the one line that prints a bootstrap root key).
#[derive(Clone, PartialEq, Eq)]
pub struct PlaintextKey(String);

impl PlaintextKey {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(&self.0)
    }
}

impl fmt::Debug for PlaintextKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlaintextKey(<redacted>)")
    }
}

impl fmt::Display for PlaintextKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_secret() {
        let key = PlaintextKey::new("sk_secretvalue".to_owned());
        assert!(!format!("{key:?}").contains("secretvalue"));
        assert!(!format!("{key}").contains("secretvalue"));
        assert_eq!(key.expose(), "sk_secretvalue");
    }
}
