//! The verification outcomes and the checks that depend only on a key's own state.

use crate::key::KeyRecord;
use crate::time::UnixMillis;

/// The outcome codes of `keys.verifyKey`, in the wire's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerifyCode {
    Valid,
    NotFound,
    Forbidden,
    InsufficientPermissions,
    UsageExceeded,
    RateLimited,
    Disabled,
    Expired,
}

impl VerifyCode {
    pub const ALL: [Self; 8] = [
        Self::Valid,
        Self::NotFound,
        Self::Forbidden,
        Self::InsufficientPermissions,
        Self::UsageExceeded,
        Self::RateLimited,
        Self::Disabled,
        Self::Expired,
    ];

    /// The code with this wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|code| code.as_str() == s)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "VALID",
            Self::NotFound => "NOT_FOUND",
            Self::Forbidden => "FORBIDDEN",
            Self::InsufficientPermissions => "INSUFFICIENT_PERMISSIONS",
            Self::UsageExceeded => "USAGE_EXCEEDED",
            Self::RateLimited => "RATE_LIMITED",
            Self::Disabled => "DISABLED",
            Self::Expired => "EXPIRED",
        }
    }
}

/// The state checks of verification, in the wire's order: deleted keys are not found, then
/// disabled, then expired (a key is expired when `now` is past `expires`).
pub fn check_key_state(key: &KeyRecord, now: UnixMillis) -> Result<(), VerifyCode> {
    if key.deleted_at.is_some() {
        return Err(VerifyCode::NotFound);
    }
    if !key.enabled {
        return Err(VerifyCode::Disabled);
    }
    if key.expires.is_some_and(|expires| now > expires) {
        return Err(VerifyCode::Expired);
    }
    Ok(())
}
