//! Bounded text values: names and labels whose length the wire constrains.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is outside its bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be {min} to {max} characters long")]
pub struct LengthError {
    pub min: usize,
    pub max: usize,
}

/// Checks a length in characters (not bytes), as JSON Schema counts.
pub fn check_length(s: &str, min: usize, max: usize) -> Result<(), LengthError> {
    // A character takes one to four bytes, so the byte length bounds the count from both
    // sides; when both bounds are within limits (nearly always) nothing needs counting.
    let bytes = s.len();
    if bytes <= max && bytes.div_ceil(4) >= min {
        return Ok(());
    }
    let n = s.chars().count();
    if n < min || n > max {
        return Err(LengthError { min, max });
    }
    Ok(())
}

macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const MIN: usize = $min;
            pub const MAX: usize = $max;

            pub fn parse(s: &str) -> Result<Self, LengthError> {
                check_length(s, $min, $max)?;
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

bounded_text!(
    /// The name of an API: 3..=256 characters.
    ApiName, 3, 256
);
bounded_text!(
    /// The name of a key: 1..=255 characters.
    KeyName, 1, 255
);
bounded_text!(
    /// The name of a workspace or root key: 1..=255 characters.
    Label, 1, 255
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_count_characters() {
        assert!(ApiName::parse("ab").is_err());
        assert!(ApiName::parse("abc").is_ok());
        assert!(ApiName::parse(&"é".repeat(256)).is_ok());
        assert!(ApiName::parse(&"a".repeat(257)).is_err());
        assert!(KeyName::parse("").is_err());
    }

    #[test]
    fn the_byte_length_shortcut_agrees_with_counting() {
        for text in ["", "a", "ab", "é", "éé", "€", "€€a", "𝄞", "𝄞𝄞", "a𝄞é€"]
        {
            for repeat in [1, 2, 3, 5] {
                let s = text.repeat(repeat);
                let n = s.chars().count();
                for min in 0..=12 {
                    for max in min..=24 {
                        let counted = n >= min && n <= max;
                        assert_eq!(
                            check_length(&s, min, max).is_ok(),
                            counted,
                            "{s:?} {min}..={max}"
                        );
                    }
                }
            }
        }
    }
}
