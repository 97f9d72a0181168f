//! Named rate limits stored on keys and identities (`{name, limit, duration, autoApply}`), and
//! the rule for replacing a set of them by name.

use serde::{Deserialize, Serialize};

use crate::id::RatelimitId;
use crate::ratelimit::WindowDuration;
use crate::text::check_length;
use crate::time::UnixMillis;

/// The most named limits one key or identity may carry.
pub const MAX_NAMED_LIMITS: usize = 50;

/// The name of a stored limit: 3..=128 characters, unique within its key or identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LimitName(String);

impl LimitName {
    pub const MIN: usize = 3;
    pub const MAX: usize = 128;

    pub fn parse(s: &str) -> Result<Self, crate::text::LengthError> {
        check_length(s, Self::MIN, Self::MAX)?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A limit as a client asks for it: create and update requests carry these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSpec {
    pub name: LimitName,
    /// At least 1.
    pub limit: u64,
    pub duration: WindowDuration,
    /// Checked on every verification, not only when a request names it.
    pub auto_apply: bool,
}

/// A stored limit: a spec with the id it keeps for as long as its name stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedLimit {
    pub id: RatelimitId,
    pub name: LimitName,
    pub limit: u64,
    pub duration: WindowDuration,
    pub auto_apply: bool,
}

/// The set that replaces `current` when a client sends `wanted`: names not in `wanted` go,
/// every wanted name takes the wanted values, and a name that stays keeps its id, so
/// references to it (and its counters) survive an update that only changes the numbers.
pub fn replace_by_name(
    current: &[NamedLimit],
    wanted: Vec<LimitSpec>,
    now: UnixMillis,
) -> Vec<NamedLimit> {
    wanted
        .into_iter()
        .map(|spec| {
            let id = current
                .iter()
                .find(|l| l.name == spec.name)
                .map_or_else(|| RatelimitId::generate(now), |l| l.id.clone());
            NamedLimit {
                id,
                name: spec.name,
                limit: spec.limit,
                duration: spec.duration,
                auto_apply: spec.auto_apply,
            }
        })
        .collect()
}

/// How named limits are kept in storage: one JSON document per key or identity, read with
/// the record it belongs to.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredLimit {
    id: RatelimitId,
    name: LimitName,
    limit: u64,
    duration: u64,
    #[serde(rename = "autoApply")]
    auto_apply: bool,
}

impl From<&NamedLimit> for StoredLimit {
    fn from(l: &NamedLimit) -> Self {
        Self {
            id: l.id.clone(),
            name: l.name.clone(),
            limit: l.limit,
            duration: l.duration.as_millis(),
            auto_apply: l.auto_apply,
        }
    }
}

impl TryFrom<StoredLimit> for NamedLimit {
    type Error = crate::ratelimit::DurationError;

    fn try_from(s: StoredLimit) -> Result<Self, Self::Error> {
        Ok(Self {
            id: s.id,
            name: s.name,
            limit: s.limit,
            duration: WindowDuration::from_millis(i64::try_from(s.duration).unwrap_or(i64::MAX))?,
            auto_apply: s.auto_apply,
        })
    }
}

/// Encodes limits for storage; `None` when there are none.
pub fn encode_limits(limits: &[NamedLimit]) -> Option<String> {
    if limits.is_empty() {
        return None;
    }
    let stored: Vec<StoredLimit> = limits.iter().map(StoredLimit::from).collect();
    serde_json::to_string(&stored).ok()
}

/// Why stored limits could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeLimitsError {
    #[error("stored limits are not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("stored limit has an invalid duration: {0}")]
    Duration(#[from] crate::ratelimit::DurationError),
}

/// Decodes what [`encode_limits`] stored.
pub fn decode_limits(stored: Option<&str>) -> Result<Vec<NamedLimit>, DecodeLimitsError> {
    let Some(text) = stored else {
        return Ok(Vec::new());
    };
    let stored: Vec<StoredLimit> = serde_json::from_str(text)?;
    Ok(stored
        .into_iter()
        .map(NamedLimit::try_from)
        .collect::<Result<_, _>>()?)
}

/// Values the tests of several modules build limits from.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn now() -> UnixMillis {
        UnixMillis::from_millis(1_795_816_081_000)
    }

    /// A limit of `limit` per minute.
    pub fn spec(name: &str, limit: u64, auto_apply: bool) -> LimitSpec {
        LimitSpec {
            name: LimitName::parse(name).unwrap(),
            limit,
            duration: WindowDuration::from_millis(60_000).unwrap(),
            auto_apply,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{now, spec};
    use super::*;

    #[test]
    fn replacing_keeps_ids_of_names_that_stay_and_drops_the_rest() {
        let current = replace_by_name(
            &[],
            vec![spec("requests", 10, true), spec("tokens", 5, false)],
            now(),
        );
        let next = replace_by_name(
            &current,
            vec![spec("requests", 99, false), spec("uploads", 1, true)],
            now(),
        );
        assert_eq!(next.len(), 2);
        assert_eq!(next[0].id, current[0].id, "the id of a kept name survives");
        assert_eq!((next[0].limit, next[0].auto_apply), (99, false));
        assert_ne!(next[1].id, current[1].id, "a new name gets a new id");
        assert_eq!(next[1].name.as_str(), "uploads");
        assert!(replace_by_name(&next, vec![], now()).is_empty());
    }

    #[test]
    fn storage_round_trips() {
        let limits = replace_by_name(
            &[],
            vec![spec("requests", 10, true), spec("tokens", 5, false)],
            now(),
        );
        let text = encode_limits(&limits).unwrap();
        assert_eq!(decode_limits(Some(&text)).unwrap(), limits);
        assert_eq!(encode_limits(&[]), None);
        assert!(decode_limits(None).unwrap().is_empty());
        assert!(decode_limits(Some("{")).is_err());
    }

    #[test]
    fn names_are_three_to_128_characters() {
        assert!(LimitName::parse("ab").is_err());
        assert!(LimitName::parse("abc").is_ok());
        assert!(LimitName::parse(&"x".repeat(128)).is_ok());
        assert!(LimitName::parse(&"x".repeat(129)).is_err());
    }
}
