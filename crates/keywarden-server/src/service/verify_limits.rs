//! The rate-limit step of verification: which limits a call checks, the limiter's decision,
//! and giving counts back when a later step denies the call.
//!
//! A key's auto-applied limits do not change while it is cached, so their plan (counter names
//! included) is made once per cached key and shared by every verification that names no
//! limits of its own; only requests with a `ratelimits` field plan afresh.

use std::sync::{Arc, OnceLock};

use keywarden_core::key::KeyRecord;
use keywarden_core::ratelimit::{LimitCheck, LimitDecision, LimitOutcome};
use keywarden_core::verify_limits::{PlannedLimit, RequestedLimit, plan_limits};

use super::{CachedKey, Keywarden};
use crate::error::ApiError;

/// The limits one verification checks, and the checks the limiter is asked to decide.
#[derive(Debug)]
pub struct LimitPlan {
    planned: Vec<PlannedLimit>,
    checks: Vec<LimitCheck>,
    /// Where the HTTP layer keeps the part of each limit's response entry that is the same
    /// for every call (id, name, duration, autoApply), rendered on first use.
    presentation: OnceLock<Vec<Box<[u8]>>>,
}

impl LimitPlan {
    fn new(planned: Vec<PlannedLimit>) -> Self {
        let checks = planned.iter().map(PlannedLimit::check).collect();
        Self {
            planned,
            checks,
            presentation: OnceLock::new(),
        }
    }

    /// The plan of a key verified without a `ratelimits` field: its auto-applied limits;
    /// `None` when it has none.
    pub fn automatic(key: &KeyRecord) -> Option<Self> {
        // Without requested limits there is no name that could be missing.
        let planned = plan_limits(key, &[]).unwrap_or_default();
        (!planned.is_empty()).then(|| Self::new(planned))
    }
}

/// The limits a verification checked and what the limiter decided for each.
#[derive(Debug)]
pub struct CheckedLimits {
    plan: Arc<LimitPlan>,
    decisions: Vec<LimitDecision>,
}

impl CheckedLimits {
    /// Each limit's rendering (made by `render` the first time this plan is shown) with its
    /// decision, in the order they were planned.
    pub fn presented(
        &self,
        render: impl Fn(&PlannedLimit) -> Vec<u8>,
    ) -> impl Iterator<Item = (&[u8], &LimitDecision)> {
        let rendered = self.plan.presentation.get_or_init(|| {
            self.plan
                .planned
                .iter()
                .map(|limit| render(limit).into_boxed_slice())
                .collect()
        });
        rendered.iter().map(|r| &**r).zip(&self.decisions)
    }
}

/// The limits of one verification after the limiter decided them.
pub(super) struct LimitsDecided {
    /// What was checked and the limiter's outcome; `None` when nothing was checked: no
    /// limits, or the limiter failed.
    checked: Option<(Arc<LimitPlan>, LimitOutcome)>,
}

impl LimitsDecided {
    pub fn passed(&self) -> bool {
        self.checked.as_ref().is_none_or(|(_, o)| o.passed)
    }

    /// The checked limits for the response; `refunded` when their counts were taken back.
    pub fn report(self, refunded: bool) -> Option<CheckedLimits> {
        let (plan, outcome) = self.checked?;
        let mut decisions = outcome.decisions;
        if refunded {
            for (decision, limit) in decisions.iter_mut().zip(&plan.planned) {
                decision.remaining = decision
                    .remaining
                    .saturating_add(limit.cost)
                    .min(decision.limit);
            }
        }
        Some(CheckedLimits { plan, decisions })
    }
}

impl Keywarden {
    /// Plans the key's limits for this request and lets the limiter decide them. A request
    /// naming a limit the key does not have is a 412. When the limiter fails, the call is let
    /// through (fail-open, as Unkey does) and the failure logged.
    pub(super) async fn decide_limits(
        &self,
        key: &CachedKey,
        requested: &[RequestedLimit],
    ) -> Result<LimitsDecided, ApiError> {
        let plan = if requested.is_empty() {
            key.automatic_limits().cloned()
        } else {
            let planned = plan_limits(key, requested)
                .map_err(|e| ApiError::PreconditionFailed(format!("{e}.")))?;
            Some(Arc::new(LimitPlan::new(planned)))
        };
        let Some(plan) = plan.filter(|plan| !plan.checks.is_empty()) else {
            return Ok(LimitsDecided { checked: None });
        };
        let checked = match self
            .limit_counts
            .count(self.limiter.limit(&plan.checks).await)
        {
            Ok(outcome) => Some((plan, outcome)),
            Err(e) => {
                tracing::error!(error = ?e, key_id = %key.id, "rate limiter failed; letting the call through");
                None
            }
        };
        Ok(LimitsDecided { checked })
    }

    /// Takes back what a call counted, because a later step denied it.
    pub(super) async fn refund_limits(&self, limits: &LimitsDecided) {
        if let Some((plan, outcome)) = limits.checked.as_ref().filter(|(_, o)| o.passed)
            && let Err(e) = self.limiter.refund(&plan.checks, outcome).await
        {
            tracing::error!(error = ?e, "could not refund rate limits");
        }
    }
}
