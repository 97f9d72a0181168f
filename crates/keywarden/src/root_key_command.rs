//! `keywarden root-key create | list | revoke`, working on the store directly. A running
//! server notices the change within about a second.

use anyhow::{Context as _, bail};
use keywarden_core::audit::{AuditAction, AuditContext, AuditEntry};
use keywarden_core::id::{RootKeyId, WorkspaceId};
use keywarden_core::root_key::{RootKey, RootPermissions, end_of, generate_root_key};
use keywarden_core::store::Store;
use keywarden_core::text::Label;
use keywarden_core::time::{Clock, SystemClock, UnixMillis};
use keywarden_store::StoreLocation;

use crate::cli::{RootKeyCommand, StoreArgs};
use crate::config::{self, Overrides};

pub async fn open_store(args: StoreArgs) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    let config = config::load(
        args.config.as_deref(),
        Overrides {
            database_url: args.database,
            ..Overrides::default()
        },
    )?;
    let location = StoreLocation::parse(&config.database_url)?;
    keywarden_store::open(&location)
        .await
        .context("could not open the store")
}

pub async fn run(command: RootKeyCommand) -> anyhow::Result<()> {
    match command {
        RootKeyCommand::Create {
            permissions,
            name,
            workspace,
            store,
        } => {
            create(
                open_store(store).await?.as_ref(),
                &permissions,
                name,
                workspace,
            )
            .await
        }
        RootKeyCommand::List { store } => list(open_store(store).await?.as_ref()).await,
        RootKeyCommand::Revoke { id, store } => {
            revoke(open_store(store).await?.as_ref(), &id).await
        }
    }
}

pub async fn choose_workspace(
    store: &dyn Store,
    requested: Option<String>,
) -> anyhow::Result<WorkspaceId> {
    let workspaces = store.workspaces().await?;
    match requested {
        Some(id) => workspaces
            .into_iter()
            .find(|w| w.id.as_str() == id)
            .map(|w| w.id)
            .with_context(|| format!("no workspace {id} in this store")),
        None => match workspaces.as_slice() {
            [] => {
                bail!("the store has no workspace yet; start `keywarden serve` once to create one")
            }
            [only] => Ok(only.id.clone()),
            _ => bail!("the store has several workspaces; choose one with --workspace"),
        },
    }
}

async fn create(
    store: &dyn Store,
    permissions: &[String],
    name: Option<String>,
    workspace: Option<String>,
) -> anyhow::Result<()> {
    let permissions = RootPermissions::parse_all(permissions)?;
    let name = name
        .map(|n| Label::parse(&n))
        .transpose()
        .context("--name must be 1 to 255 characters")?;
    let workspace_id = choose_workspace(store, workspace).await?;
    let now = SystemClock.now();
    let issued = generate_root_key();
    let key = RootKey {
        id: RootKeyId::generate(now),
        workspace_id,
        digest: issued.plaintext.digest(),
        end: end_of(issued.plaintext.expose()),
        start: issued.start,
        name,
        permissions,
        expires: None,
        enabled: true,
        created_at: now,
        revoked_at: None,
    };
    let audit = root_key_created(&key);
    store.insert_root_key(&key, &audit).await?;
    store.flush().await?;
    eprintln!(
        "Created root key {} for workspace {}. It is printed below once; store it now.",
        key.id, key.workspace_id
    );
    println!("{}", issued.plaintext.expose());
    Ok(())
}

pub fn format_time(t: UnixMillis) -> String {
    time::OffsetDateTime::from_unix_timestamp(t.as_millis() / 1000)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.as_millis().to_string())
}

async fn list(store: &dyn Store) -> anyhow::Result<()> {
    let keys = store.root_keys().await?;
    if keys.is_empty() {
        eprintln!("no root keys");
    }
    for key in keys {
        let status = match key.revoked_at {
            Some(t) => format!("revoked {}", format_time(t)),
            None => "active".into(),
        };
        println!(
            "{}\t{}\t{}…\t{}\tcreated {}\t{}\t{}",
            key.id,
            key.workspace_id,
            key.start,
            key.name.as_ref().map_or("-", |n| n.as_str()),
            format_time(key.created_at),
            status,
            key.permissions.to_strings().join(","),
        );
    }
    Ok(())
}

async fn revoke(store: &dyn Store, id: &str) -> anyhow::Result<()> {
    let id = RootKeyId::parse(id).context("not a root key id")?;
    let Some(key) = store
        .root_keys()
        .await?
        .into_iter()
        .find(|k| k.id == id && k.revoked_at.is_none())
    else {
        bail!("no active root key {id}");
    };
    let now = SystemClock.now();
    let audit = AuditContext::cli()
        .entry(&key.workspace_id, now, AuditAction::RootKeyRevoke)
        .target(
            "root_key",
            id.as_str(),
            key.name.as_ref().map(|n| n.as_str()),
        );
    if !store.revoke_root_key(&id, now, &audit).await? {
        bail!("no active root key {id}");
    }
    store.flush().await?;
    eprintln!("Revoked root key {id}.");
    Ok(())
}

/// The audit entry of a root key created with the command line.
pub fn root_key_created(key: &RootKey) -> AuditEntry {
    AuditContext::cli()
        .entry(
            &key.workspace_id,
            key.created_at,
            AuditAction::RootKeyCreate,
        )
        .target(
            "root_key",
            key.id.as_str(),
            key.name.as_ref().map(|n| n.as_str()),
        )
        .change("permissions", key.permissions.to_strings())
}
