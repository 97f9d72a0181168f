//! What a node does with rate limits while it cannot reach Redis.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How calls are decided while Redis is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultMode {
    /// Admit every call (`fail-open`): availability over limits. A limit of 0 still denies,
    /// because it needs no shared count to decide: it is an explicit block.
    FailOpen,
    /// Deny every call (`fail-closed`): limits over availability.
    FailClosed,
    /// Decide in this process (`local`): each node enforces every limit on its own, so a
    /// cluster of n nodes admits up to n times a limit until Redis is back.
    #[default]
    Local,
}

impl FaultMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FailOpen => "fail-open",
            Self::FailClosed => "fail-closed",
            Self::Local => "local",
        }
    }
}

impl fmt::Display for FaultMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fault mode name that is none of `fail-open`, `fail-closed`, `local`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rate-limit fault mode {0:?}: expected fail-open, fail-closed or local")]
pub struct FaultModeError(String);

impl FromStr for FaultMode {
    type Err = FaultModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::FailOpen, Self::FailClosed, Self::Local]
            .into_iter()
            .find(|mode| mode.as_str() == s)
            .ok_or_else(|| FaultModeError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_serde() {
        for mode in [FaultMode::FailOpen, FaultMode::FailClosed, FaultMode::Local] {
            assert_eq!(mode.to_string().parse::<FaultMode>(), Ok(mode));
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("\"{mode}\""));
            assert_eq!(serde_json::from_str::<FaultMode>(&json).unwrap(), mode);
        }
        assert_eq!(FaultMode::default(), FaultMode::Local);
        assert!("open".parse::<FaultMode>().is_err());
        assert!(serde_json::from_str::<FaultMode>("\"Local\"").is_err());
    }
}
