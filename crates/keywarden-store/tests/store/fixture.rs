//! A store with one workspace and one API, and builders of the records tests store.

use std::sync::Arc;

use keywarden_core::api::Api;
use keywarden_core::audit::{AuditAction, AuditContext, AuditEntry};
use keywarden_core::credits::Credits;
use keywarden_core::digest::KeyDigest;
use keywarden_core::id::{ApiId, KeyId, PermissionId, RoleId, RootKeyId, WorkspaceId};
use keywarden_core::identity::{ExternalId, Identity};
use keywarden_core::key::KeyRecord;
use keywarden_core::key_format::{self, ByteLength};
use keywarden_core::named_limit::{LimitName, LimitSpec};
use keywarden_core::ratelimit::WindowDuration;
use keywarden_core::rbac::{Permission, PermissionSlug, Role, RoleName};
use keywarden_core::root_key::{RootKey, RootPermissions};
use keywarden_core::store::{PageRequest, Store};
use keywarden_core::text::{ApiName, Label};
use keywarden_core::time::UnixMillis;
use keywarden_core::workspace::Workspace;

use crate::backend::{Backend, TestDb};

pub const NOW: UnixMillis = UnixMillis::from_millis(1_795_780_800_000);

/// Declared before the database, so the store closes before its database goes.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    pub db: TestDb,
    pub workspace: WorkspaceId,
    pub api: ApiId,
}

pub async fn fixture(backend: Backend) -> Fixture {
    let db = TestDb::new(backend).await;
    let store = db.open().await;
    let workspace = workspace("w");
    store.insert_workspace(&workspace).await.unwrap();
    let api = api_in(&workspace.id);
    store
        .insert_api(&api, &audit(&api.workspace_id))
        .await
        .unwrap();
    Fixture {
        store,
        db,
        workspace: workspace.id,
        api: api.id,
    }
}

impl Fixture {
    /// A key of the fixture's API, not yet stored; `credits` `None` is unlimited.
    pub fn key(&self, digest: KeyDigest, credits: Option<i64>) -> KeyRecord {
        key_in(&self.workspace, &self.api, digest, credits)
    }
}

/// A key of `api`, not yet stored; `credits` `None` is unlimited.
pub fn key_in(
    workspace: &WorkspaceId,
    api: &ApiId,
    digest: KeyDigest,
    credits: Option<i64>,
) -> KeyRecord {
    KeyRecord {
        id: KeyId::generate(NOW),
        workspace_id: workspace.clone(),
        api_id: api.clone(),
        digest,
        start: "sk_abcd".into(),
        prefix: None,
        byte_length: ByteLength::DEFAULT,
        name: None,
        meta: None,
        enabled: true,
        expires: None,
        credits: credits.map(|c| Credits::new(c, None, NOW).unwrap()),
        identity: None,
        ratelimits: Vec::new(),
        permissions: Vec::new(),
        roles: Vec::new(),
        created_at: NOW,
        updated_at: None,
        deleted_at: None,
        last_used: None,
        rotated_to: None,
        replaced_at: None,
        sealed: None,
        restrictions: None,
        api_restrictions: None,
    }
}

pub fn workspace(name: &str) -> Workspace {
    Workspace {
        id: WorkspaceId::generate(NOW),
        name: Label::parse(name).unwrap(),
        created_at: NOW,
    }
}

pub fn api_in(workspace: &WorkspaceId) -> Api {
    Api {
        id: ApiId::generate(NOW),
        workspace_id: workspace.clone(),
        name: ApiName::parse("api").unwrap(),
        default_prefix: None,
        default_byte_length: ByteLength::DEFAULT,
        delete_protection: false,
        created_at: NOW,
        restrictions: None,
        key_lifetime: Default::default(),
    }
}

pub fn random_digest() -> KeyDigest {
    key_format::generate(None, ByteLength::DEFAULT)
        .plaintext
        .digest()
}

pub fn page(limit: usize) -> PageRequest {
    PageRequest { from: None, limit }
}

pub fn page_from(from: Option<String>, limit: usize) -> PageRequest {
    PageRequest { from, limit }
}

pub fn identity_in(workspace: &WorkspaceId, external_id: &str) -> Identity {
    Identity::new(
        workspace.clone(),
        ExternalId::parse(external_id).unwrap(),
        None,
        vec![LimitSpec {
            name: LimitName::parse("requests").unwrap(),
            limit: 10,
            duration: WindowDuration::from_millis(60_000).unwrap(),
            auto_apply: true,
        }],
        NOW,
    )
}

pub fn root_key_in(workspace: &WorkspaceId) -> RootKey {
    RootKey {
        id: RootKeyId::generate(NOW),
        workspace_id: workspace.clone(),
        digest: random_digest(),
        start: "kw_root_abcd".into(),
        end: "wxyz".into(),
        name: None,
        permissions: RootPermissions::everything(),
        expires: None,
        enabled: true,
        created_at: NOW,
        revoked_at: None,
    }
}

pub fn permission_in(workspace: &WorkspaceId, slug: &str) -> Permission {
    Permission {
        id: PermissionId::generate(NOW),
        workspace_id: workspace.clone(),
        name: format!("Permission {slug}"),
        slug: PermissionSlug::parse(slug).unwrap(),
        description: None,
        created_at: NOW,
    }
}

pub fn role_in(workspace: &WorkspaceId, name: &str, permissions: Vec<Permission>) -> Role {
    Role {
        id: RoleId::generate(NOW),
        workspace_id: workspace.clone(),
        name: RoleName::parse(name).unwrap(),
        description: Some(format!("The {name} role")),
        permissions,
        created_at: NOW,
    }
}

/// An audit entry for a change made in `workspace`, as the CLI would record it; tests that
/// are not about the audit log pass one to every audited store call.
pub fn audit(workspace: &WorkspaceId) -> AuditEntry {
    AuditContext::cli().entry(workspace, NOW, AuditAction::KeyUpdate)
}
