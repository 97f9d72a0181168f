//! `keys.verifyKey`: the hot path.
//!
//! Everything up to the credit check is answered from memory: the root key from the
//! directory, the key from the key cache (unknown keys from the digest set). The only store
//! operation is spending credits, for keys that have a balance, and that is an atomic write.

use std::sync::Arc;

use keywarden_core::credits::SpendOutcome;
use keywarden_core::digest::KeyDigest;
use keywarden_core::id::ApiId;
use keywarden_core::root_key::{Access, ops};
use keywarden_core::store::CreditSpend;
use keywarden_core::verify::{VerifyCode, check_key_state};

use super::{CachedKey, Caller, Keywarden};
use crate::error::ApiError;

/// A verification request, validated.
#[derive(Debug)]
pub struct VerifyInput {
    pub key: String,
    /// Credits to spend; `None` spends 1 from keys that have a balance.
    pub cost: Option<i64>,
    /// When given, keys outside these keyspaces (APIs) are `NOT_FOUND`.
    pub keyspaces: Option<Vec<ApiId>>,
}

/// The outcome of a verification, with the key when the outcome may show it.
#[derive(Debug)]
pub struct Verification {
    pub code: VerifyCode,
    /// Present for every outcome except `NOT_FOUND`.
    pub key: Option<Arc<CachedKey>>,
    /// The balance after this verification, for keys with a balance.
    pub credits: Option<i64>,
}

impl Verification {
    fn not_found() -> Self {
        Self {
            code: VerifyCode::NotFound,
            key: None,
            credits: None,
        }
    }
}

impl Keywarden {
    pub async fn verify(
        &self,
        caller: &Caller,
        input: VerifyInput,
    ) -> Result<Verification, ApiError> {
        caller.require_somewhere(ops::VERIFY_KEY)?;
        let digest = KeyDigest::of(&input.key);
        let Some(key) = self.keys.lookup(&digest, self.store.as_ref()).await? else {
            return Ok(Verification::not_found());
        };
        // Other workspaces' keys, keys of APIs this root key may not verify, and keys outside
        // the requested keyspaces look exactly like keys that do not exist.
        if &key.workspace_id != caller.workspace()
            || caller.access(ops::VERIFY_KEY, Some(key.api_id.as_str())) != Access::Granted
            || input
                .keyspaces
                .as_ref()
                .is_some_and(|spaces| !spaces.contains(&key.api_id))
        {
            return Ok(Verification::not_found());
        }
        let now = self.now();
        if let Err(code) = check_key_state(&key, now) {
            if code == VerifyCode::NotFound {
                return Ok(Verification::not_found());
            }
            // The cached record's balance may be behind recent spends; a zero-cost spend
            // reads the current one (applying a refill that fell due).
            let credits = match key.credits {
                None => None,
                Some(_) => match self.store.spend_credits(&key.id, 0, now).await? {
                    CreditSpend::Outcome(
                        SpendOutcome::Spent { remaining }
                        | SpendOutcome::Insufficient { remaining },
                    ) => Some(remaining),
                    CreditSpend::Unlimited => None,
                    CreditSpend::KeyMissing => return Ok(Verification::not_found()),
                },
            };
            return Ok(Verification {
                code,
                credits,
                key: Some(key),
            });
        }
        if key.credits.is_none() {
            return Ok(Verification {
                code: VerifyCode::Valid,
                key: Some(key),
                credits: None,
            });
        }
        let cost = input.cost.unwrap_or(1);
        let (code, credits) = match self.store.spend_credits(&key.id, cost, now).await? {
            CreditSpend::Outcome(SpendOutcome::Spent { remaining }) => {
                (VerifyCode::Valid, Some(remaining))
            }
            CreditSpend::Outcome(SpendOutcome::Insufficient { remaining }) => {
                (VerifyCode::UsageExceeded, Some(remaining))
            }
            // The key changed since it was cached; the change invalidated the cache entry, so
            // answering from the store's current view is right.
            CreditSpend::Unlimited => (VerifyCode::Valid, None),
            CreditSpend::KeyMissing => return Ok(Verification::not_found()),
        };
        Ok(Verification {
            code,
            key: Some(key),
            credits,
        })
    }
}
