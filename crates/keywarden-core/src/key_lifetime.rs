//! An API's expiry policy: how long its new keys live by default, and the longest any of its
//! keys may be set to live. Explicit expiries are never changed silently: one beyond the
//! maximum is refused. Only a reroll, whose expiry the caller did not choose, is clamped.
//! Policies apply to changes made after they are set; existing keys keep their expiries.

use crate::key::{MAX_EXPIRES, Patch};
use crate::time::UnixMillis;

/// The shortest lifetime a policy may set: one minute.
pub const MIN_LIFETIME_MS: i64 = 60_000;
/// The longest lifetime a policy may set: 100 years (365-day years).
pub const MAX_LIFETIME_MS: i64 = 100 * 365 * UnixMillis::MS_PER_DAY;

/// A lifetime in milliseconds, within [`MIN_LIFETIME_MS`]..=[`MAX_LIFETIME_MS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lifetime(i64);

impl Lifetime {
    pub fn from_millis(ms: i64) -> Option<Self> {
        (MIN_LIFETIME_MS..=MAX_LIFETIME_MS)
            .contains(&ms)
            .then_some(Self(ms))
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// `now` plus this lifetime, no later than the latest expiry the wire accepts.
    fn after(self, now: UnixMillis) -> UnixMillis {
        UnixMillis::from_millis(now.plus_millis(self.0).as_millis().min(MAX_EXPIRES))
    }
}

/// Why a policy or an expiry under it was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifetimeError {
    #[error("the default key lifetime ({default} ms) exceeds the maximum ({max} ms)")]
    DefaultAboveMax { default: i64, max: i64 },
    #[error(
        "exceeds this API's maximum key lifetime of {max} ms: expires must be at most {latest} \
         (now + maximum)"
    )]
    BeyondMax { max: i64, latest: i64 },
    #[error(
        "this API's keys must expire (maximum key lifetime {max} ms); expiry cannot be removed"
    )]
    MustExpire { max: i64 },
}

/// An API's expiry policy; the default is no policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyLifetime {
    default: Option<Lifetime>,
    max: Option<Lifetime>,
}

impl KeyLifetime {
    pub fn new(default: Option<Lifetime>, max: Option<Lifetime>) -> Result<Self, LifetimeError> {
        if let (Some(d), Some(m)) = (default, max)
            && d > m
        {
            return Err(LifetimeError::DefaultAboveMax {
                default: d.0,
                max: m.0,
            });
        }
        Ok(Self { default, max })
    }

    pub fn default_lifetime(&self) -> Option<Lifetime> {
        self.default
    }

    pub fn max_lifetime(&self) -> Option<Lifetime> {
        self.max
    }

    /// The expiry of a key created at `now` with `requested` (absent: none asked for). Without
    /// a request the default applies, or, with only a maximum, the maximum.
    pub fn for_new_key(
        &self,
        requested: Option<UnixMillis>,
        now: UnixMillis,
    ) -> Result<Option<UnixMillis>, LifetimeError> {
        match requested {
            Some(expires) => self.check(expires, now).map(Some),
            None => Ok(self.default.or(self.max).map(|l| l.after(now))),
        }
    }

    /// Refuses an update that would set an expiry beyond the maximum or remove it under one.
    pub fn check_update(
        &self,
        patch: &Patch<UnixMillis>,
        now: UnixMillis,
    ) -> Result<(), LifetimeError> {
        match (patch, self.max) {
            (Patch::Set(expires), _) => self.check(*expires, now).map(|_| ()),
            (Patch::Clear, Some(max)) => Err(LifetimeError::MustExpire { max: max.0 }),
            _ => Ok(()),
        }
    }

    /// The expiry of a key rerolled at `now` from one expiring at `inherited`: no later than
    /// the maximum allows.
    pub fn for_rerolled_key(
        &self,
        inherited: Option<UnixMillis>,
        now: UnixMillis,
    ) -> Option<UnixMillis> {
        match (inherited, self.max) {
            (_, None) => inherited,
            (None, Some(max)) => Some(max.after(now)),
            (Some(expires), Some(max)) => Some(expires.min(max.after(now))),
        }
    }

    fn check(&self, expires: UnixMillis, now: UnixMillis) -> Result<UnixMillis, LifetimeError> {
        match self.max {
            Some(max) if expires > max.after(now) => Err(LifetimeError::BeyondMax {
                max: max.0,
                latest: max.after(now).as_millis(),
            }),
            _ => Ok(expires),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = UnixMillis::MS_PER_DAY;

    fn now() -> UnixMillis {
        UnixMillis::from_millis(1_800_000_000_000)
    }

    fn policy(default: Option<i64>, max: Option<i64>) -> KeyLifetime {
        let l = |ms: Option<i64>| ms.map(|ms| Lifetime::from_millis(ms).unwrap());
        KeyLifetime::new(l(default), l(max)).unwrap()
    }

    #[test]
    fn new_keys_get_the_default_or_else_the_maximum() {
        assert_eq!(
            policy(Some(DAY), Some(7 * DAY)).for_new_key(None, now()),
            Ok(Some(now().plus_millis(DAY)))
        );
        assert_eq!(
            policy(None, Some(7 * DAY)).for_new_key(None, now()),
            Ok(Some(now().plus_millis(7 * DAY)))
        );
        assert_eq!(KeyLifetime::default().for_new_key(None, now()), Ok(None));
    }

    #[test]
    fn explicit_expiries_beyond_the_maximum_are_refused_not_clamped() {
        let p = policy(None, Some(DAY));
        let edge = now().plus_millis(DAY);
        assert_eq!(p.for_new_key(Some(edge), now()), Ok(Some(edge)));
        assert!(matches!(
            p.for_new_key(Some(edge.plus_millis(1)), now()),
            Err(LifetimeError::BeyondMax { max: DAY, .. })
        ));
        assert!(
            p.check_update(&Patch::Set(edge.plus_millis(1)), now())
                .is_err()
        );
        assert_eq!(
            p.check_update(&Patch::Clear, now()),
            Err(LifetimeError::MustExpire { max: DAY })
        );
        assert_eq!(p.check_update(&Patch::Keep, now()), Ok(()));
        assert_eq!(
            KeyLifetime::default().check_update(&Patch::Clear, now()),
            Ok(())
        );
    }

    #[test]
    fn rerolled_keys_are_clamped_to_the_maximum() {
        let p = policy(None, Some(DAY));
        assert_eq!(
            p.for_rerolled_key(None, now()),
            Some(now().plus_millis(DAY))
        );
        let later = now().plus_millis(5 * DAY);
        assert_eq!(
            p.for_rerolled_key(Some(later), now()),
            Some(now().plus_millis(DAY))
        );
        let sooner = now().plus_millis(DAY / 2);
        assert_eq!(p.for_rerolled_key(Some(sooner), now()), Some(sooner));
        assert_eq!(KeyLifetime::default().for_rerolled_key(None, now()), None);
    }

    #[test]
    fn policies_are_validated() {
        assert_eq!(Lifetime::from_millis(MIN_LIFETIME_MS - 1), None);
        assert_eq!(Lifetime::from_millis(MAX_LIFETIME_MS + 1), None);
        let l = |ms| Lifetime::from_millis(ms);
        assert_eq!(
            KeyLifetime::new(l(2 * DAY), l(DAY)),
            Err(LifetimeError::DefaultAboveMax {
                default: 2 * DAY,
                max: DAY
            })
        );
    }
}
