//! Identifiers of stored objects: `<prefix>_<16 characters>`, sortable by creation time.
//!
//! The first 8 characters encode the creation time in milliseconds and the last 8 are random,
//! both in base62 with an ASCII-ordered alphabet, so ordering ids as strings orders objects by
//! creation. Pagination relies on this: a page is "ids greater than or equal to the cursor".

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::random;
use crate::time::UnixMillis;

/// ASCII-ordered, so lexicographic order of encoded numbers equals numeric order.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const TIME_CHARS: usize = 8;
const RANDOM_CHARS: usize = 8;

/// The longest id any endpoint accepts.
pub const MAX_ID_LEN: usize = 255;

/// Why a string is not an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_ID_LEN} characters")]
    TooLong,
    #[error("may contain only letters, digits and underscores")]
    InvalidCharacter,
}

/// Checks the shape every id shares on the wire: `^[a-zA-Z0-9_]+$`, at most 255 characters.
fn check_id_shape(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong);
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(IdError::InvalidCharacter);
    }
    Ok(())
}

/// A new id body: creation time then randomness, 16 base62 characters.
fn new_id_body(prefix: &str, now: UnixMillis) -> String {
    let mut out = String::with_capacity(prefix.len() + 1 + TIME_CHARS + RANDOM_CHARS);
    out.push_str(prefix);
    out.push('_');
    let mut t = u64::try_from(now.as_millis()).unwrap_or(0);
    let mut time_chars = [b'0'; TIME_CHARS];
    for slot in time_chars.iter_mut().rev() {
        *slot = BASE62[(t % 62) as usize];
        t /= 62;
    }
    out.extend(time_chars.iter().map(|&b| char::from(b)));
    let mut bytes = [0u8; RANDOM_CHARS];
    random::fill(&mut bytes);
    // 256 is not a multiple of 62, so `% 62` is slightly biased; ids need uniqueness, not
    // uniformity, and 62^8 values per millisecond leave collisions out of reach.
    out.extend(
        bytes
            .iter()
            .map(|&b| char::from(BASE62[usize::from(b) % 62])),
    );
    out
}

/// Generates a request id, `req_…`, for the response envelope.
pub fn new_request_id(now: UnixMillis) -> String {
    new_id_body("req", now)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The prefix of ids this server generates for this kind of object.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id created at `now`.
            pub fn generate(now: UnixMillis) -> Self {
                Self(new_id_body($prefix, now))
            }

            /// Accepts any string of id shape. Ids from elsewhere (imports, other servers)
            /// need not carry this server's prefix; they simply will not be found.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check_id_shape(s)?;
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                check_id_shape(&s)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A workspace (tenant): every other object belongs to exactly one.
    WorkspaceId,
    "ws"
);
id_type!(
    /// An API, the namespace that owns a keyspace. Also serves as the keyspace id.
    ApiId,
    "api"
);
id_type!(
    /// A key issued to an end user.
    KeyId,
    "key"
);
id_type!(
    /// An administrative root key.
    RootKeyId,
    "rootkey"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_the_prefix_and_shape() {
        let id = KeyId::generate(UnixMillis::from_millis(1_795_816_081_000));
        assert!(id.as_str().starts_with("key_"));
        assert_eq!(id.as_str().len(), 4 + 16);
        assert!(KeyId::parse(id.as_str()).is_ok());
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let earlier = ApiId::generate(UnixMillis::from_millis(1_000));
        let later = ApiId::generate(UnixMillis::from_millis(1_001));
        let much_later = ApiId::generate(UnixMillis::from_millis(4_102_444_800_000));
        assert!(earlier < later);
        assert!(later < much_later);
    }

    #[test]
    fn ids_at_the_same_millisecond_differ() {
        let now = UnixMillis::from_millis(42);
        assert_ne!(KeyId::generate(now), KeyId::generate(now));
    }

    #[test]
    fn parse_rejects_bad_shapes() {
        assert_eq!(KeyId::parse(""), Err(IdError::Empty));
        assert_eq!(KeyId::parse("key-1"), Err(IdError::InvalidCharacter));
        assert_eq!(KeyId::parse(&"a".repeat(256)), Err(IdError::TooLong));
        assert!(KeyId::parse("key_2cGKbMxRyIzhCxo1Idjz8q").is_ok());
    }
}
