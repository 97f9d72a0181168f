//! Changes to a stored key that are decided against its current state, inside the store's
//! transaction: partial updates and credit operations.

use crate::credits::{AdjustmentError, CreditAdjustment, Credits, NegativeCredits};
use crate::key::{KeyRecord, KeyUpdate, KeyUpdateError};
use crate::time::UnixMillis;

/// A change that depends on the key's current state.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyChange {
    /// `keys.updateKey`.
    Update(Box<KeyUpdate>),
    /// `keys.updateCredits` with `set`: `None` makes usage unlimited and removes any refill.
    SetCredits(Option<i64>),
    /// `keys.updateCredits` with `increment` or `decrement`.
    AdjustCredits(CreditAdjustment),
}

/// Why a change was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyChangeError {
    #[error("the key does not exist")]
    NotFound,
    #[error(transparent)]
    Update(#[from] KeyUpdateError),
    #[error(transparent)]
    Adjustment(#[from] AdjustmentError),
    #[error(transparent)]
    NegativeCredits(#[from] NegativeCredits),
}

impl KeyRecord {
    /// Applies `change` at `now`. On error the record is unchanged.
    pub fn apply(&mut self, change: KeyChange, now: UnixMillis) -> Result<(), KeyChangeError> {
        match change {
            KeyChange::Update(update) => self.apply_update(*update, now)?,
            KeyChange::SetCredits(None) => {
                self.credits = None;
                self.updated_at = Some(now);
            }
            KeyChange::SetCredits(Some(n)) => {
                self.credits = Some(match self.credits {
                    Some(c) => c.with_remaining(n)?,
                    None => Credits::new(n, None, now)?,
                });
                self.updated_at = Some(now);
            }
            KeyChange::AdjustCredits(adjustment) => {
                let mut credits = self.credits.ok_or(AdjustmentError::Unlimited)?;
                // A refill that fell due counts before the adjustment, as it would have had
                // anyone looked at midnight.
                credits.apply_due_refill(now);
                credits.adjust(adjustment)?;
                self.credits = Some(credits);
                self.updated_at = Some(now);
            }
        }
        Ok(())
    }
}
