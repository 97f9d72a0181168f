//! Free-form metadata attached to keys: a JSON object of at most 100 properties.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The most properties a meta object may have.
pub const MAX_META_PROPERTIES: usize = 100;

/// A JSON object with at most [`MAX_META_PROPERTIES`] top-level properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Meta(Map<String, Value>);

/// Why a value cannot be meta.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must have at most {MAX_META_PROPERTIES} properties")]
pub struct TooManyProperties;

impl Meta {
    pub fn new(map: Map<String, Value>) -> Result<Self, TooManyProperties> {
        if map.len() > MAX_META_PROPERTIES {
            return Err(TooManyProperties);
        }
        Ok(Self(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_hundred_properties() {
        let map = |n: usize| (0..n).map(|i| (i.to_string(), Value::from(i))).collect();
        assert!(Meta::new(map(100)).is_ok());
        assert_eq!(Meta::new(map(101)), Err(TooManyProperties));
    }
}
