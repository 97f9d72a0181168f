//! Root-key authentication: every active root key is held in memory, so authenticating a
//! request never touches the store, and unknown root keys cannot load it. The set is reloaded
//! when the store's root-key revision changes, which also picks up keys created or revoked by
//! the CLI in another process.

use std::net::IpAddr;
use std::sync::Arc;

use keywarden_core::audit::{Actor, AuditAction, AuditContext, AuditEntry};
use keywarden_core::digest::KeyDigest;
use keywarden_core::id::{RequestId, WorkspaceId};
use keywarden_core::root_key::{Access, Operation, RootKey};
use keywarden_core::store::{RootKeyStore, StoreResult};
use keywarden_core::time::UnixMillis;
use parking_lot::RwLock;

use super::key_cache::DigestMap;
use crate::error::ApiError;

/// The active root keys, indexed by the head of their digest.
#[derive(Default)]
pub struct RootKeyDirectory {
    state: RwLock<DirectoryState>,
}

#[derive(Default)]
struct DirectoryState {
    revision: Option<i64>,
    /// Digest heads are uniformly random already: hashed as themselves, not with SipHash.
    by_index: DigestMap<Vec<Arc<RootKey>>>,
}

impl RootKeyDirectory {
    /// Reloads the root keys if the store's revision moved since the last load.
    pub async fn refresh(&self, store: &dyn RootKeyStore) -> StoreResult<()> {
        let revision = store.root_key_revision().await?;
        if self.state.read().revision == Some(revision) {
            return Ok(());
        }
        let mut by_index: DigestMap<Vec<Arc<RootKey>>> = DigestMap::default();
        for key in store.root_keys().await? {
            // Revoked and disabled keys never authenticate; expiry is checked per request.
            if key.revoked_at.is_none() && key.enabled {
                by_index
                    .entry(key.digest.index())
                    .or_default()
                    .push(Arc::new(key));
            }
        }
        let count: usize = by_index.values().map(Vec::len).sum();
        *self.state.write() = DirectoryState {
            revision: Some(revision),
            by_index,
        };
        tracing::debug!(revision, active = count, "root keys loaded");
        Ok(())
    }

    /// Finds the root key whose secret is `token`. The map lookup uses eight digest bytes; the
    /// full digests are then compared in constant time.
    pub fn authenticate(&self, token: &str, now: UnixMillis) -> Result<Caller, ApiError> {
        let digest = KeyDigest::of(token);
        let state = self.state.read();
        state
            .by_index
            .get(&digest.index())
            .and_then(|candidates| candidates.iter().find(|k| k.digest.ct_eq(&digest)))
            .filter(|key| key.is_usable(now))
            .map(|key| Caller {
                root_key: Arc::clone(key),
                request_id: None,
                client_ip: None,
            })
            .ok_or(ApiError::UnknownRootKey)
    }
}

/// An authenticated root key: the capability a request acts with.
#[derive(Debug, Clone)]
pub struct Caller {
    root_key: Arc<RootKey>,
    /// The request its changes are recorded under. Kept as the request's inline id (not the
    /// `String` an [`AuditContext`] holds): most requests, verifications above all, change
    /// nothing, so the audit context is built only for those that do.
    request_id: Option<RequestId>,
    client_ip: Option<IpAddr>,
}

impl Caller {
    /// The caller, with the request its changes will be recorded under.
    #[must_use]
    pub fn with_request(mut self, request_id: RequestId, client_ip: Option<IpAddr>) -> Self {
        self.request_id = Some(request_id);
        self.client_ip = client_ip;
        self
    }

    /// Who and where the request came from, for the audit entries of its changes.
    pub fn origin(&self) -> AuditContext {
        AuditContext {
            actor: Actor::RootKey(self.root_key.id.clone()),
            request_id: self.request_id.clone().map(String::from),
            client_ip: self.client_ip,
        }
    }

    /// A new audit entry for a change this caller makes in its workspace at `time`.
    pub fn audit(&self, time: UnixMillis, action: AuditAction) -> AuditEntry {
        self.origin().entry(self.workspace(), time, action)
    }

    pub fn workspace(&self) -> &WorkspaceId {
        &self.root_key.workspace_id
    }

    /// The authenticated root key itself.
    pub fn root_key(&self) -> &RootKey {
        &self.root_key
    }

    /// Whether the root key may perform `op` on `target`.
    pub fn access(&self, op: Operation, target: Option<&str>) -> Access {
        self.root_key.permissions.access(op, target)
    }

    /// Fails with 403 when the root key holds `op` nowhere. Holding it only for other objects
    /// passes here; the caller then answers "not found" for objects outside its reach.
    pub fn require_somewhere(&self, op: Operation) -> Result<(), ApiError> {
        match self.access(op, None) {
            Access::Denied => Err(missing(op, None)),
            Access::Granted | Access::OtherTargetsOnly => Ok(()),
        }
    }

    /// Requires `op` workspace-wide (`<resource>.*.<action>`).
    pub fn require_everywhere(&self, op: Operation) -> Result<(), ApiError> {
        match self.access(op, None) {
            Access::Granted => Ok(()),
            Access::Denied | Access::OtherTargetsOnly => Err(missing(op, None)),
        }
    }

    /// Requires `op` on `target`: 403 when the root key holds `op` nowhere, `not_found` when it
    /// holds it only for other objects, so existence does not leak.
    pub fn require_on(
        &self,
        op: Operation,
        target: &str,
        not_found: impl FnOnce() -> ApiError,
    ) -> Result<(), ApiError> {
        match self.access(op, Some(target)) {
            Access::Granted => Ok(()),
            Access::OtherTargetsOnly => Err(not_found()),
            Access::Denied => Err(missing(op, Some(target))),
        }
    }
}

fn missing(op: Operation, target: Option<&str>) -> ApiError {
    let wildcard = op.wildcard_permission();
    ApiError::MissingPermission(match target {
        Some(target) => format!("{wildcard} (or {})", op.permission_for(target)),
        None => wildcard,
    })
}
