//! The standalone limiter (`ratelimit.*`): limits for any identifier in a namespace, and
//! per-identifier overrides.

use keywarden_core::audit::AuditAction;
use std::sync::Arc;

use keywarden_core::change::Change;
use keywarden_core::id::{NamespaceId, OverrideId};
use keywarden_core::namespace::{Identifier, Namespace, NamespaceName, RateOverride};
use keywarden_core::ratelimit::{
    CounterKey, LimitCheck, LimitDecision, LimitOutcome, WindowDuration,
};
use keywarden_core::root_key::ops;
use keywarden_core::store::{Page, PageRequest};

use super::namespaces::LoadedNamespace;
use super::{Caller, Keywarden};
use crate::error::ApiError;

/// One limit call: `cost` against `limit` per `duration` for `identifier` in `namespace`
/// (an id or a name).
#[derive(Debug, Clone)]
pub struct LimitRequest {
    pub namespace: String,
    pub identifier: Identifier,
    pub limit: u64,
    pub duration: WindowDuration,
    pub cost: u64,
}

/// The answer to one limit call.
#[derive(Debug, Clone)]
pub struct LimitResult {
    pub passed: bool,
    /// The limit applied: the request's, or the matching override's.
    pub limit: u64,
    pub remaining: u64,
    /// Unix ms at which the current window ends.
    pub reset: i64,
    pub override_id: Option<OverrideId>,
}

/// A namespace's counters are per identifier, kept in the namespace's workspace.
fn counter(namespace: &Namespace, identifier: &Identifier) -> CounterKey {
    let (id, identifier) = (namespace.id.as_str(), identifier.as_str());
    let mut name = String::with_capacity(4 + id.len() + identifier.len());
    name.push_str("ns:");
    name.push_str(id);
    name.push(':');
    name.push_str(identifier);
    CounterKey::scoped(namespace.workspace_id.as_str(), &name)
}

fn result(decision: &LimitDecision, override_id: Option<OverrideId>) -> LimitResult {
    LimitResult {
        passed: decision.passed,
        limit: decision.limit,
        remaining: decision.remaining,
        reset: decision.reset.as_millis(),
        override_id,
    }
}

impl Keywarden {
    /// The namespace `reference` names, if the caller may `op` in it. With `create`, a
    /// namespace that does not exist yet is created under that name when the caller may create
    /// namespaces; otherwise a missing one is a 404.
    async fn reachable_namespace(
        &self,
        caller: &Caller,
        reference: &str,
        op: keywarden_core::root_key::Operation,
        create: bool,
    ) -> Result<Arc<LoadedNamespace>, ApiError> {
        caller.require_somewhere(op)?;
        let entry = match self.namespaces.cached(caller.workspace(), reference) {
            Some(entry) => entry,
            None => {
                let found = self.store.namespace(caller.workspace(), reference).await?;
                let namespace = match found {
                    Some(namespace) => namespace,
                    None if create => {
                        caller.require_everywhere(ops::CREATE_NAMESPACE)?;
                        let name = NamespaceName::parse(reference).map_err(|e| {
                            ApiError::invalid_field("body.namespace", e.to_string())
                        })?;
                        let candidate = Namespace {
                            id: NamespaceId::generate(self.now()),
                            workspace_id: caller.workspace().clone(),
                            name,
                            created_at: self.now(),
                        };
                        let audit = caller
                            .audit(candidate.created_at, AuditAction::RatelimitNamespaceCreate)
                            .target(
                                "namespace",
                                candidate.id.as_str(),
                                Some(candidate.name.as_str()),
                            );
                        let namespace = self.store.upsert_namespace(&candidate, &audit).await?;
                        tracing::info!(namespace_id = %namespace.id, "rate-limit namespace created");
                        namespace
                    }
                    None => return Err(ApiError::namespace_not_found()),
                };
                self.namespaces
                    .load(namespace, reference, self.store.as_ref())
                    .await?
            }
        };
        caller.require_on(
            op,
            entry.namespace.id.as_str(),
            ApiError::namespace_not_found,
        )?;
        Ok(entry)
    }

    /// What one limit call checks: the request's limit, or that of the override its
    /// identifier matches (whose id the answer names).
    async fn limit_check(
        &self,
        caller: &Caller,
        request: &LimitRequest,
    ) -> Result<(LimitCheck, Option<OverrideId>), ApiError> {
        let entry = self
            .reachable_namespace(caller, &request.namespace, ops::LIMIT, true)
            .await?;
        let overrides = entry.overrides();
        let matched = overrides.matching(request.identifier.as_str());
        let check = LimitCheck {
            counter: counter(&entry.namespace, &request.identifier),
            limit: matched.map_or(request.limit, |o| o.limit),
            duration: matched.map_or(request.duration, |o| o.duration),
            cost: request.cost,
        };
        Ok((check, matched.map(|o| o.id.clone())))
    }

    async fn decide(&self, checks: &[LimitCheck]) -> Result<LimitOutcome, ApiError> {
        self.limit_counts
            .count(self.limiter.limit(checks).await)
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e)))
    }

    /// One limit call (`ratelimit.limit`).
    pub async fn limit(
        &self,
        caller: &Caller,
        request: &LimitRequest,
    ) -> Result<LimitResult, ApiError> {
        let (check, override_id) = self.limit_check(caller, request).await?;
        let outcome = self.decide(std::slice::from_ref(&check)).await?;
        let decision = outcome
            .decisions
            .first()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the limiter decided nothing")))?;
        Ok(result(decision, override_id))
    }

    /// Decides several limit calls together: all pass and are counted, or none is counted.
    pub async fn multi_limit(
        &self,
        caller: &Caller,
        requests: &[LimitRequest],
    ) -> Result<(bool, Vec<LimitResult>), ApiError> {
        let mut checks = Vec::with_capacity(requests.len());
        let mut override_ids = Vec::with_capacity(requests.len());
        for request in requests {
            let (check, override_id) = self.limit_check(caller, request).await?;
            checks.push(check);
            override_ids.push(override_id);
        }
        let outcome = self.decide(&checks).await?;
        let results = outcome
            .decisions
            .iter()
            .zip(override_ids)
            .map(|(decision, override_id)| result(decision, override_id))
            .collect();
        Ok((outcome.passed, results))
    }

    pub async fn set_override(
        &self,
        caller: &Caller,
        namespace: &str,
        identifier: Identifier,
        limit: u64,
        duration: WindowDuration,
    ) -> Result<OverrideId, ApiError> {
        let entry = self
            .reachable_namespace(caller, namespace, ops::SET_OVERRIDE, true)
            .await?;
        let now = self.now();
        let audit = caller
            .audit(now, AuditAction::RatelimitOverrideSet)
            .target(
                "namespace",
                entry.namespace.id.as_str(),
                Some(entry.namespace.name.as_str()),
            )
            .change("identifier", identifier.as_str())
            .change("limit", limit)
            .change("duration", duration.as_millis());
        let stored = self
            .store
            .set_override(
                &RateOverride {
                    id: OverrideId::generate(now),
                    workspace_id: caller.workspace().clone(),
                    namespace_id: entry.namespace.id.clone(),
                    identifier,
                    limit,
                    duration,
                    created_at: now,
                    updated_at: None,
                },
                &audit,
            )
            .await?;
        self.announce(vec![Change::OverridesChanged {
            workspace: entry.namespace.workspace_id.clone(),
            namespace: entry.namespace.id.clone(),
        }])
        .await;
        tracing::info!(override_id = %stored.id, namespace_id = %entry.namespace.id, "override set");
        Ok(stored.id)
    }

    pub async fn get_override(
        &self,
        caller: &Caller,
        namespace: &str,
        identifier: &Identifier,
    ) -> Result<RateOverride, ApiError> {
        let entry = self
            .reachable_namespace(caller, namespace, ops::READ_OVERRIDE, false)
            .await?;
        // Exactly this identifier: reading a pattern's override names the pattern.
        self.store
            .overrides(caller.workspace(), &entry.namespace.id)
            .await?
            .into_iter()
            .find(|o| &o.identifier == identifier)
            .ok_or_else(ApiError::override_not_found)
    }

    pub async fn list_overrides(
        &self,
        caller: &Caller,
        namespace: &str,
        page: PageRequest,
    ) -> Result<Page<RateOverride>, ApiError> {
        let entry = self
            .reachable_namespace(caller, namespace, ops::READ_OVERRIDE, false)
            .await?;
        Ok(self
            .store
            .overrides_page(caller.workspace(), &entry.namespace.id, page)
            .await?)
    }

    pub async fn delete_override(
        &self,
        caller: &Caller,
        namespace: &str,
        identifier: &Identifier,
    ) -> Result<(), ApiError> {
        let entry = self
            .reachable_namespace(caller, namespace, ops::DELETE_OVERRIDE, false)
            .await?;
        let audit = caller
            .audit(self.now(), AuditAction::RatelimitOverrideDelete)
            .target(
                "namespace",
                entry.namespace.id.as_str(),
                Some(entry.namespace.name.as_str()),
            )
            .change("identifier", identifier.as_str());
        let deleted = self
            .store
            .delete_override(caller.workspace(), &entry.namespace.id, identifier, &audit)
            .await?;
        self.announce(vec![Change::OverridesChanged {
            workspace: entry.namespace.workspace_id.clone(),
            namespace: entry.namespace.id.clone(),
        }])
        .await;
        if !deleted {
            return Err(ApiError::override_not_found());
        }
        tracing::info!(namespace_id = %entry.namespace.id, "override deleted");
        Ok(())
    }
}
