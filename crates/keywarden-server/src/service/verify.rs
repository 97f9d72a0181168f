//! `keys.verifyKey`: the hot path.
//!
//! Everything up to the credit check is answered from memory: the root key from the
//! directory, the key from the key cache (unknown keys from the digest set). The only store
//! operation is spending credits, for keys that have a balance, and that is an atomic write.
//! Each outcome for a known key is handed to the usage recorder, and every outcome (unknown
//! keys included) to anomaly detection; neither ever waits.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::HeaderValue;

use keywarden_core::anomaly::CreditsAfter;
use keywarden_core::credits::SpendOutcome;
use keywarden_core::id::{ApiId, KeyId, RequestId};
use keywarden_core::restriction::{CallSite, OriginHost};
use keywarden_core::root_key::{Access, ops};
use keywarden_core::secret::PlaintextKey;
use keywarden_core::store::CreditSpend;
use keywarden_core::time::UnixMillis;
use keywarden_core::usage::VerificationEvent;
use keywarden_core::verify::{VerifyCode, check_key_state};
use keywarden_core::verify_limits::RequestedLimit;

use super::anomaly_watch::ObservedVerification;
use super::verify_limits::CheckedLimits;
use super::{CachedKey, Caller, Keywarden};
use crate::error::ApiError;

/// A verification request, validated.
#[derive(Debug)]
pub struct VerifyInput {
    /// The presented key; its `Debug` is redacted.
    pub key: PlaintextKey,
    /// Credits to spend; `None` spends 1 from keys that have a balance.
    pub cost: Option<i64>,
    /// When given, keys outside these keyspaces (APIs) are `NOT_FOUND`.
    pub keyspaces: Option<Vec<ApiId>>,
    /// Limits to check besides the key's and identity's auto-applied ones.
    pub ratelimits: Vec<RequestedLimit>,
    /// A permission query the key must satisfy (§5.3).
    pub permissions: Option<String>,
    /// Recorded with the verification event.
    pub tags: Vec<String>,
    /// Where the call came from, for keys and APIs with restrictions.
    pub site: SiteInput,
}

/// Where a verified call came from, as restrictions see it. Gathered cheaply for every
/// verification, resolved (the origin parsed) only for keys that have restrictions.
#[derive(Debug, Default)]
pub struct SiteInput {
    /// The end client's address: given in the request body, else the request's client.
    pub ip: Option<IpAddr>,
    /// The end client's origin given in the request body; it takes precedence over headers.
    pub origin: Option<OriginHost>,
    /// The request's `Origin` header, or else its `Referer`.
    pub origin_header: Option<HeaderValue>,
}

impl SiteInput {
    fn resolve(&self) -> CallSite {
        CallSite {
            ip: self.ip,
            origin: self.origin.clone().or_else(|| {
                self.origin_header
                    .as_ref()
                    .and_then(|v| v.to_str().ok())
                    .and_then(OriginHost::parse)
            }),
        }
    }
}

/// Where a verification request came from, for its event.
#[derive(Debug, Clone)]
pub struct RequestOrigin {
    pub request_id: RequestId,
    pub client_ip: Option<IpAddr>,
}

/// The outcome of a verification, with the key when the outcome may show it.
#[derive(Debug)]
pub struct Verification {
    pub code: VerifyCode,
    /// Present for every outcome except `NOT_FOUND`.
    pub key: Option<Arc<CachedKey>>,
    /// The balance after this verification, for keys with a balance.
    pub credits: Option<i64>,
    /// The limits checked, when any was.
    pub ratelimits: Option<CheckedLimits>,
    /// Credits this verification took from the key's balance.
    pub spent_credits: i64,
}

impl Verification {
    fn not_found() -> Self {
        Self {
            code: VerifyCode::NotFound,
            key: None,
            credits: None,
            ratelimits: None,
            spent_credits: 0,
        }
    }
}

impl Keywarden {
    /// Whether verifications are recorded or watched, so callers gather a [`RequestOrigin`]
    /// only then.
    pub fn wants_origin(&self) -> bool {
        self.usage.is_on() || self.anomalies.is_on()
    }

    /// Verifies a key; with an origin, records the outcome (for keys that exist) and hands it
    /// to anomaly detection (for every outcome).
    ///
    /// The input is borrowed, not moved: an async function keeps its arguments for its whole
    /// life, so a moved input would be held (and copied as the futures move) once per level.
    /// Its tags are taken for the verification's event.
    pub async fn verify(
        &self,
        caller: &Caller,
        input: &mut VerifyInput,
        origin: Option<RequestOrigin>,
    ) -> Result<Verification, ApiError> {
        let tags = std::mem::take(&mut input.tags);
        // One reading of the clock serves the checks and the records.
        let time = self.now();
        let verification = self.verification(caller, input, time).await?;
        let Some(origin) = origin else {
            return Ok(verification);
        };
        if self.anomalies.is_on() {
            self.anomalies
                .observe(observed(caller, &verification, &origin, time));
        }
        // Unknown keys (and keys this caller may not see) have no workspace to count in.
        if let Some(key) = &verification.key
            && self.usage.is_on()
        {
            self.usage.record(VerificationEvent {
                request_id: origin.request_id.as_str().into(),
                time,
                workspace_id: key.workspace_id.clone(),
                api_id: key.api_id.clone(),
                key_id: key.id.clone(),
                identity_id: key.identity.as_ref().map(|i| i.id.clone()),
                external_id: key.identity.as_ref().map(|i| i.external_id.clone()),
                outcome: verification.code,
                spent_credits: verification.spent_credits,
                tags,
                client_ip: origin.client_ip,
            });
        }
        Ok(verification)
    }

    /// The verification itself, without recording it.
    async fn verification(
        &self,
        caller: &Caller,
        input: &VerifyInput,
        now: UnixMillis,
    ) -> Result<Verification, ApiError> {
        caller.require_somewhere(ops::VERIFY_KEY)?;
        // A malformed query is the request's fault whatever the key: a 400 before anything.
        let query = match &input.permissions {
            Some(text) => Some(self.queries.compile(text)?),
            None => None,
        };
        let digest = input.key.digest();
        let entry = if self.cache_trusted(now) {
            self.keys.lookup(&digest, self.store.as_ref()).await?
        } else {
            self.keys
                .lookup_uncached(&digest, self.store.as_ref())
                .await?
        };
        let Some(key) = entry else {
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
        if let Err(code) = check_key_state(&key, now) {
            if code == VerifyCode::NotFound {
                return Ok(Verification::not_found());
            }
            return self.unsuccessful(key, code, None, now).await;
        }
        // Restrictions come after the key's state and before permissions (§5.2 step 7). Keys
        // and APIs without any cost one check of two options here.
        if key.restrictions.is_some() || key.api_restrictions.is_some() {
            let site = input.site.resolve();
            let allowed = [&key.api_restrictions, &key.restrictions]
                .into_iter()
                .flatten()
                .all(|r| r.check(&site).is_ok());
            if !allowed {
                return self
                    .unsuccessful(key, VerifyCode::Forbidden, None, now)
                    .await;
            }
        }
        // Checked before limits and credits, so a refused call consumes neither.
        if let Some(query) = &query
            && !query.is_satisfied_by(&|slug| key.holds(slug))
        {
            return self
                .unsuccessful(key, VerifyCode::InsufficientPermissions, None, now)
                .await;
        }
        let limits = self.decide_limits(&key, &input.ratelimits).await?;
        if !limits.passed() {
            // Rate limits come before credits, so a limited call spends none.
            return self
                .unsuccessful(key, VerifyCode::RateLimited, limits.report(false), now)
                .await;
        }
        if key.credits.is_none() {
            return Ok(Verification {
                code: VerifyCode::Valid,
                key: Some(key),
                credits: None,
                ratelimits: limits.report(false),
                spent_credits: 0,
            });
        }
        let cost = input.cost.unwrap_or(1);
        let spend = match self.store.spend_credits(&key.id, cost, now).await {
            Ok(spend) => spend,
            Err(e) => {
                // Not admitted: the limits must not stay counted.
                self.refund_limits(&limits).await;
                return Err(e.into());
            }
        };
        let (code, credits, spent_credits) = match spend {
            CreditSpend::Outcome(SpendOutcome::Spent { remaining }) => {
                (VerifyCode::Valid, Some(remaining), cost)
            }
            CreditSpend::Outcome(SpendOutcome::Insufficient { remaining }) => {
                (VerifyCode::UsageExceeded, Some(remaining), 0)
            }
            // The key changed since it was cached; the change invalidated the cache entry, so
            // answering from the store's current view is right.
            CreditSpend::Unlimited => (VerifyCode::Valid, None, 0),
            CreditSpend::KeyMissing => {
                self.refund_limits(&limits).await;
                return Ok(Verification::not_found());
            }
        };
        // A call denied for credits was not admitted, so it must not use up rate limits either.
        let refunded = code != VerifyCode::Valid;
        if refunded {
            self.refund_limits(&limits).await;
        }
        Ok(Verification {
            code,
            key: Some(key),
            credits,
            ratelimits: limits.report(refunded),
            spent_credits,
        })
    }

    /// An outcome other than `VALID` for a key that exists: it shows the key and its current
    /// balance. The cached record's balance may be behind recent spends; a zero-cost spend
    /// reads the current one (applying a refill that fell due).
    async fn unsuccessful(
        &self,
        key: Arc<CachedKey>,
        code: VerifyCode,
        ratelimits: Option<CheckedLimits>,
        now: UnixMillis,
    ) -> Result<Verification, ApiError> {
        let credits = match key.credits {
            None => None,
            Some(_) => match self.current_balance(&key.id, now).await? {
                Some(balance) => balance,
                None => return Ok(Verification::not_found()),
            },
        };
        Ok(Verification {
            code,
            credits,
            key: Some(key),
            ratelimits,
            spent_credits: 0,
        })
    }

    /// `Some(balance)` of a live key (`Some(None)`: unlimited), `None` when it is gone.
    async fn current_balance(
        &self,
        id: &KeyId,
        now: UnixMillis,
    ) -> Result<Option<Option<i64>>, ApiError> {
        Ok(match self.store.spend_credits(id, 0, now).await? {
            CreditSpend::Outcome(
                SpendOutcome::Spent { remaining } | SpendOutcome::Insufficient { remaining },
            ) => Some(Some(remaining)),
            CreditSpend::Unlimited => Some(None),
            CreditSpend::KeyMissing => None,
        })
    }
}

/// What anomaly detection learns from one verification. Unknown keys count in the caller's
/// workspace (the only one they have); a key replaced by a reroll that answers `EXPIRED` is
/// an old copy presented after its grace.
fn observed(
    caller: &Caller,
    verification: &Verification,
    origin: &RequestOrigin,
    time: UnixMillis,
) -> ObservedVerification {
    let key = verification.key.as_deref();
    ObservedVerification {
        time,
        workspace_id: caller.workspace().clone(),
        key_id: key.map(|k| k.id.clone()),
        outcome: verification.code,
        client_ip: origin.client_ip,
        credits: verification.credits.map(|remaining| CreditsAfter {
            remaining,
            spent: verification.spent_credits,
            refill_amount: key
                .and_then(|k| k.credits)
                .and_then(|c| c.refill())
                .map(|r| r.amount()),
        }),
        replaced: verification.code == VerifyCode::Expired
            && key.is_some_and(|k| k.rotated_to.is_some()),
    }
}
