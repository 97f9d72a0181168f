//! Leaked keys (a Keywarden extension): reports from GitHub's secret scanning partner program
//! and from root keys, the workspace policy they apply, and the liveness check behind
//! `keywarden scan --check`.
//!
//! A report changes the key through the same store methods and change announcements as
//! `keys.deleteKey` and `keys.updateKey`, so verification on every node stops accepting a
//! revoked or disabled key at once. Its audit entry (`key.leaked`) is the report's record and
//! raises the `key.leaked` webhook event in the same transaction.

use keywarden_core::audit::{Actor, AuditAction, AuditContext, AuditEntry, AuditFilter};
use keywarden_core::change::Change;
use keywarden_core::digest::KeyDigest;
use keywarden_core::key::{KeyRecord, KeyUpdate};
use keywarden_core::key_change::KeyChange;
use keywarden_core::leak::{
    LeakLabel, LeakPolicy, PartnerKeys, PartnerReport, SignatureRejected, parse_reports,
};
use keywarden_core::root_key::ops;
use keywarden_core::store::{Page, PageRequest};
use keywarden_core::time::UnixMillis;

use super::{Caller, Keywarden};
use crate::error::ApiError;

/// Longest `url` and `source` kept in a report's record; longer values are cut.
const MAX_URL_CHARS: usize = 2048;
const MAX_SOURCE_CHARS: usize = 256;

/// Where a leak was seen, as the reporter says.
#[derive(Debug, Clone, Default)]
pub struct LeakSighting {
    pub url: Option<String>,
    pub source: Option<String>,
    /// The partner's name for the kind of token (GitHub's `type`).
    pub token_type: Option<String>,
}

/// What handling one report did to a live key.
#[derive(Debug, Clone)]
pub struct HandledLeak {
    pub key: KeyRecord,
    pub policy: LeakPolicy,
}

/// A partner request, as received: the signature headers (absent when not sent) and the raw
/// body they sign.
pub struct PartnerRequest<'a> {
    pub key_identifier: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
    pub request_id: String,
    pub client_ip: Option<std::net::IpAddr>,
}

fn clip(text: Option<String>, max_chars: usize) -> Option<String> {
    text.map(|t| match t.char_indices().nth(max_chars) {
        Some((end, _)) => t[..end].to_owned(),
        None => t,
    })
}

impl Keywarden {
    pub fn partner_keys(&self) -> &PartnerKeys {
        &self.partner_keys
    }

    pub async fn leak_policy(&self, caller: &Caller) -> Result<LeakPolicy, ApiError> {
        caller.require_somewhere(ops::MANAGE_LEAKS)?;
        Ok(self
            .store
            .leak_policy(caller.workspace())
            .await?
            .unwrap_or_default())
    }

    pub async fn set_leak_policy(
        &self,
        caller: &Caller,
        policy: LeakPolicy,
    ) -> Result<(), ApiError> {
        caller.require_somewhere(ops::MANAGE_LEAKS)?;
        let audit = caller
            .audit(self.now(), AuditAction::LeakPolicySet)
            .change("policy", policy.as_str());
        self.store
            .set_leak_policy(caller.workspace(), policy, &audit)
            .await?;
        tracing::info!(policy = %policy, "leak policy set");
        Ok(())
    }

    /// Reports handled in the caller's workspace, newest first: the `key.leaked` audit entries.
    pub async fn leak_reports(
        &self,
        caller: &Caller,
        since: Option<UnixMillis>,
        until: Option<UnixMillis>,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>, ApiError> {
        caller.require_somewhere(ops::MANAGE_LEAKS)?;
        let filter = AuditFilter {
            action: Some(AuditAction::KeyLeaked),
            since,
            until,
            ..AuditFilter::default()
        };
        Ok(self
            .store
            .audit_entries(caller.workspace(), &filter, page)
            .await?)
    }

    /// `leaks.reportKey`: a root key reports one of its workspace's keys by value. Keys that
    /// are not live keys of the workspace answer 404, like `keys.whoami`.
    pub async fn report_leaked_key(
        &self,
        caller: &Caller,
        key: &str,
        sighting: LeakSighting,
    ) -> Result<HandledLeak, ApiError> {
        caller.require_somewhere(ops::REPORT_LEAKED_KEY)?;
        let record = self
            .live_key(key)
            .await?
            .filter(|k| &k.workspace_id == caller.workspace())
            .ok_or_else(ApiError::key_not_found)?;
        self.apply_leak_policy(&caller.origin(), record, sighting)
            .await?
            .ok_or_else(ApiError::key_not_found)
    }

    /// `leaks.checkKeys`: for each key, the live key of the caller's workspace it is, if any.
    /// Reads only: nothing is recorded and no credits are spent.
    pub async fn check_keys(
        &self,
        caller: &Caller,
        keys: &[String],
    ) -> Result<Vec<Option<KeyRecord>>, ApiError> {
        caller.require_somewhere(ops::CHECK_KEYS)?;
        let mut answers = Vec::with_capacity(keys.len());
        for key in keys {
            answers.push(
                self.live_key(key)
                    .await?
                    .filter(|k| &k.workspace_id == caller.workspace()),
            );
        }
        Ok(answers)
    }

    /// A GitHub secret scanning partner request: checks its signature, then handles each
    /// report. Tokens that are keys of any workspace (deleted ones included) are true
    /// positives; live ones get their workspace's policy. Anything else is a false positive
    /// and nothing more is said or done.
    pub async fn receive_partner_reports(
        &self,
        request: PartnerRequest<'_>,
    ) -> Result<Vec<(PartnerReport, LeakLabel)>, ApiError> {
        let (Some(key_identifier), Some(signature)) = (request.key_identifier, request.signature)
        else {
            return Err(ApiError::PartnerSignature(
                "Github-Public-Key-Identifier and Github-Public-Key-Signature headers are required"
                    .into(),
            ));
        };
        self.partner_keys
            .verify(key_identifier, signature, request.body)
            .map_err(|e: SignatureRejected| {
                tracing::warn!(reason = %e, "partner report refused");
                ApiError::PartnerSignature(e.to_string())
            })?;
        let reports = parse_reports(request.body)
            .map_err(|e| ApiError::invalid_field("body", e.to_string()))?;
        let origin = AuditContext {
            actor: Actor::SecretScanning,
            request_id: Some(request.request_id),
            client_ip: request.client_ip,
        };
        let mut answers = Vec::with_capacity(reports.len());
        for report in reports {
            let digest = KeyDigest::of(&report.token);
            let found = self.keys.lookup_fresh(&digest, self.store.as_ref()).await?;
            let label = match found {
                None => LeakLabel::FalsePositive,
                Some(record) if record.deleted_at.is_some() => LeakLabel::TruePositive,
                Some(record) => {
                    let sighting = LeakSighting {
                        url: report.url.clone(),
                        source: report.source.clone(),
                        token_type: Some(report.token_type.clone()),
                    };
                    self.apply_leak_policy(&origin, record, sighting).await?;
                    LeakLabel::TruePositive
                }
            };
            answers.push((report, label));
        }
        Ok(answers)
    }

    /// The live (not deleted) key with this plaintext, in any workspace.
    async fn live_key(&self, key: &str) -> Result<Option<KeyRecord>, ApiError> {
        Ok(self
            .keys
            .lookup_fresh(&KeyDigest::of(key), self.store.as_ref())
            .await?
            .filter(|k| k.deleted_at.is_none()))
    }

    /// Applies the key's workspace policy and records the report; `None` when the key was
    /// deleted meanwhile (then nothing is recorded).
    async fn apply_leak_policy(
        &self,
        origin: &AuditContext,
        key: KeyRecord,
        sighting: LeakSighting,
    ) -> Result<Option<HandledLeak>, ApiError> {
        let workspace = key.workspace_id.clone();
        let policy = self
            .store
            .leak_policy(&workspace)
            .await?
            .unwrap_or_default();
        let now = self.now();
        let mut audit = origin
            .entry(&workspace, now, AuditAction::KeyLeaked)
            .target(
                "key",
                key.id.as_str(),
                key.name.as_ref().map(|n| n.as_str()),
            )
            .target("api", key.api_id.as_str(), None)
            .change("policy", policy.as_str())
            .change("action", policy.outcome());
        if let Some(url) = clip(sighting.url, MAX_URL_CHARS) {
            audit = audit.change("url", url);
        }
        if let Some(source) = clip(sighting.source, MAX_SOURCE_CHARS) {
            audit = audit.change("source", source);
        }
        if let Some(token_type) = clip(sighting.token_type, MAX_SOURCE_CHARS) {
            audit = audit.change("tokenType", token_type);
        }
        let changed = match policy {
            LeakPolicy::Revoke => self
                .store
                .delete_key(&workspace, &key.id, false, now, &audit)
                .await?
                .map(|k| (k, true)),
            LeakPolicy::Disable => {
                let update = KeyUpdate {
                    enabled: Some(false),
                    ..KeyUpdate::default()
                };
                self.store
                    .change_key(
                        &workspace,
                        &key.id,
                        KeyChange::Update(Box::new(update)),
                        now,
                        &audit,
                    )
                    .await?
                    .ok()
                    .map(|k| (k, true))
            }
            LeakPolicy::Flag => {
                self.store.record_leak(&audit).await?;
                Some((key, false))
            }
        };
        let Some((key, changed)) = changed else {
            return Ok(None);
        };
        if changed {
            self.announce(vec![Change::KeyChanged(key.digest)]).await;
        }
        tracing::warn!(key_id = %key.id, policy = %policy, actor = %origin.actor, "leaked key reported");
        Ok(Some(HandledLeak { key, policy }))
    }
}
