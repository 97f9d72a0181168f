//! First start: an empty store gets a workspace and a root key holding every permission.

use keywarden_core::audit::{AuditAction, AuditContext};
use keywarden_core::id::{RootKeyId, WorkspaceId};
use keywarden_core::key_format::start_of;
use keywarden_core::root_key::{
    MIN_BOOTSTRAP_KEY_LEN, RootKey, RootPermissions, end_of, generate_root_key,
};
use keywarden_core::secret::PlaintextKey;
use keywarden_core::store::{Store, StoreError};
use keywarden_core::text::Label;
use keywarden_core::time::UnixMillis;
use keywarden_core::workspace::Workspace;

/// What the bootstrap did.
#[derive(Debug)]
pub enum Bootstrap {
    /// The store already had a root key; nothing was created.
    AlreadyInitialised,
    /// A root key was generated; it must be shown to the operator once.
    Generated {
        workspace: WorkspaceId,
        root_key: PlaintextKey,
    },
    /// The root key given in the environment was installed.
    FromEnvironment { workspace: WorkspaceId },
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("KEYWARDEN_BOOTSTRAP_ROOT_KEY must be at least {MIN_BOOTSTRAP_KEY_LEN} characters")]
    TooShort,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates the first workspace and root key when the store has no root key. `from_env` is the
/// value of `KEYWARDEN_BOOTSTRAP_ROOT_KEY`, used instead of a generated key when set.
pub async fn bootstrap(
    store: &dyn Store,
    now: UnixMillis,
    from_env: Option<PlaintextKey>,
) -> Result<Bootstrap, BootstrapError> {
    if !store.root_keys().await?.is_empty() {
        return Ok(Bootstrap::AlreadyInitialised);
    }
    if from_env
        .as_ref()
        .is_some_and(|k| k.expose().chars().count() < MIN_BOOTSTRAP_KEY_LEN)
    {
        return Err(BootstrapError::TooShort);
    }
    let workspace = Workspace {
        id: WorkspaceId::generate(now),
        name: Label::parse("default").expect("a valid label"),
        created_at: now,
    };
    let (secret, generated) = match from_env {
        Some(secret) => (secret, false),
        None => (generate_root_key().plaintext, true),
    };
    let root_key = RootKey {
        id: RootKeyId::generate(now),
        workspace_id: workspace.id.clone(),
        digest: secret.digest(),
        start: start_of(secret.expose()),
        end: end_of(secret.expose()),
        name: Some(Label::parse("bootstrap").expect("a valid label")),
        permissions: RootPermissions::everything(),
        expires: None,
        enabled: true,
        created_at: now,
        revoked_at: None,
    };
    let audit = AuditContext::system()
        .entry(&workspace.id, now, AuditAction::RootKeyCreate)
        .target("root_key", root_key.id.as_str(), Some("bootstrap"))
        .change("permissions", root_key.permissions.to_strings())
        .change("workspace", workspace.id.as_str());
    if !store.bootstrap(&workspace, &root_key, &audit).await? {
        return Ok(Bootstrap::AlreadyInitialised);
    }
    Ok(if generated {
        Bootstrap::Generated {
            workspace: workspace.id,
            root_key: secret,
        }
    } else {
        Bootstrap::FromEnvironment {
            workspace: workspace.id,
        }
    })
}
